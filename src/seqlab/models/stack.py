"""A language model around any sequence mixer: the skeleton Part VI's models share.

    lm = MixerLM(vocab_size=65, d_model=128, n_layer=4, mixer=lambda: HyenaOperator(128, max_len=256))
    logits = lm(idx)                              # idx: (B, T) -> (B, T, V)

A GPT block is  x <- x + Attention(LN(x));  x <- x + MLP(LN(x)). Hyena, RetNet and minGRU
keep that skeleton and replace only the attention, the part that mixes positions. This
class is the skeleton with the mixer left open, so that a comparison of mixers changes
nothing else:

    x_0   = Embed(idx)                                     (B, T, D)
    x    <- x + Mixer(LN(x))                               mixes positions (causally)
    x    <- x + MLP(LN(x))                                 per position: GPT's MLP, hidden width 4 D
    logits = LN(x) Embed^T                                 tied input and output embeddings

``mixer`` is a function that returns a new module (B, T, D) -> (B, T, D) for each layer.
Mamba and RWKV-7 have their own blocks (:mod:`seqlab.models.mamba`, :mod:`seqlab.models.rwkv`).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gpt import MLP, GPTConfig


class MixerBlock(nn.Module):
    """x <- x + Mixer(LN(x));  x <- x + MLP(LN(x))."""

    def __init__(self, d_model: int, mixer: nn.Module):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.mixer = mixer
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = MLP(GPTConfig(d_model=d_model))                          # W_proj GELU(W_fc z + b_fc) + b_proj

    def forward(self, x):
        x = x + self.mixer(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class MixerLM(nn.Module):
    """Embedding, n_layer MixerBlocks, final LayerNorm, tied output head: idx (B, T) -> logits (B, T, V)."""

    def __init__(self, vocab_size: int, d_model: int, n_layer: int, mixer: Callable[[], nn.Module]):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(MixerBlock(d_model, mixer()) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.embed.weight)                    # tied head: logits = LN(x) E^T

    def num_params(self) -> int:
        """Parameters, counting the tied embedding once: the count GPT.num_params() gives a GPT
        (which also leaves out its position table; a MixerLM has none)."""
        return sum(p.numel() for p in self.parameters())
