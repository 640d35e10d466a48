"""GPT: a decoder-only Transformer language model, with a key-value cache (Part IV).

    model = GPT(GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, d_model=384))
    logits = model(idx)                                   # idx: (B, T) -> logits (B, T, V)
    logits, cache = model(idx, return_state=True)         # ... and the keys/values of every layer
    logits, cache = model.step(next_token, cache)         # one more token: (B,) -> (B, V)
    gpt2 = GPT.from_hf_gpt2(hf_model.state_dict(), GPTConfig.gpt2())   # Hugging Face GPT-2 weights

The model of Radford et al. (2018, 2019): token and position embeddings, then n_layer
blocks, each (pre-LN, as GPT-2)

    x = x + Attn(LN_1(x))          causal multi-head self-attention
    x = x + MLP(LN_2(x))           MLP(z) = W_proj GELU(W_fc z + b_fc) + b_proj, width 4 d

then a final LayerNorm and a linear map to the vocabulary whose weight *is* the token
embedding matrix (weight tying). GELU is GPT-2's tanh approximation:
GELU(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))).

Parameter names follow GPT-2 (c_attn, c_proj, c_fc, ln_1, ln_2, ln_f, wte, wpe) so that
:meth:`GPT.from_hf_gpt2` is a readable list of copies. One difference: GPT-2's ``Conv1D``
stores weights as (in, out); ``nn.Linear`` here stores (out, in), so those are transposed.

Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (a fused kernel
where the device has one; Lab 5 checked it against the equation).

The context window is ``block_size`` positions: ``forward`` refuses longer inputs with an
error that says how to crop; :func:`seqlab.generate.generate` crops the prompt to its last
``block_size`` tokens and, once the cache is full, slides the window (recomputing it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import causal_mask


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024          # the context window (GPT-2: n_positions)
    n_layer: int = 12
    n_head: int = 12
    d_model: int = 768              # GPT-2: n_embd
    dropout: float = 0.0            # on embeddings, attention weights, and each residual branch
    bias: bool = True               # biases in Linear layers and LayerNorms (GPT-2: True)
    layer_norm_eps: float = 1e-5

    @classmethod
    def gpt2(cls, size: str = "124M") -> "GPTConfig":
        """The published GPT-2 sizes (Radford et al., 2019)."""
        shapes = {"124M": (12, 12, 768), "355M": (24, 16, 1024), "774M": (36, 20, 1280), "1558M": (48, 25, 1600)}
        if size not in shapes:
            raise ValueError(f"GPT-2 sizes are {list(shapes)}, got {size!r}")
        n_layer, n_head, d_model = shapes[size]
        return cls(vocab_size=50257, block_size=1024, n_layer=n_layer, n_head=n_head, d_model=d_model)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions <= t only.

    x: (B, T, D) -> (B, T, D). With a cache (k, v) of earlier positions, each (B, h, T_past, d_k),
    the new positions attend to those too, and the extended cache is returned.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if cfg.d_model % cfg.n_head:
            raise ValueError(f"d_model={cfg.d_model} must be divisible by n_head={cfg.n_head}")
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)   # [W^Q; W^K; W^V]
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)       # W^O
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache=None):
        B, T, D = x.shape
        q, k, v = self.c_attn(x).split(D, dim=2)                               # each (B, T, D)
        q, k, v = (t.view(B, T, self.n_head, D // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, h, T, d_k)
        if cache is not None:                                                  # earlier positions' keys and values
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        T_all = k.size(2)
        drop = self.dropout if self.training else 0.0
        if T_all == T:                                                         # no cache: the usual causal mask
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:                                                                  # new queries are the last T positions
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, attn_mask=causal_mask(T, T_all, x.device))
        y = y.transpose(1, 2).reshape(B, T, D)                                 # Concat(head_1..head_h)
        return self.resid_drop(self.c_proj(y)), (k, v)


class MLP(nn.Module):
    """MLP(z) = W_proj GELU_tanh(W_fc z + b_fc) + b_proj, hidden width 4 d."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """x = x + Attn(LN_1(x));  x = x + MLP(LN_2(x))   (pre-LN)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, cache=None):
        a, cache = self.attn(self.ln_1(x), cache)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, cache


class GPT(nn.Module):
    """Decoder-only Transformer LM: ``model(idx) -> logits (B, T, V)``; ``step`` for cached decoding."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)                   # token embeddings
        self.wpe = nn.Embedding(cfg.block_size, cfg.d_model)                   # learned position embeddings
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight                                  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():                                # GPT-2: scale the residual
            if name.endswith("c_proj.weight"):                                 # projections by 1/sqrt(2 n_layer)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def block_size(self) -> int:
        return self.cfg.block_size

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters, counting the tied matrix once; without the position embeddings by default
        (the count Kaplan et al. (2020) use for scaling laws also drops the token embeddings)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self, context: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), Kaplan et al. (2020) / PaLM's estimate:

            6 N             the matrix products: 2 per parameter forward, 4 backward
          + 12 L d T        attention scores and weighted sums (2 matmuls of T x d per layer, x 6)

        N = parameters without embeddings, L layers, width d, context T (default block_size).
        """
        T = context or self.cfg.block_size
        N = self.num_params() - self.wte.weight.numel()
        return 6 * N + 12 * self.cfg.n_layer * self.cfg.d_model * T

    def forward(self, idx: torch.Tensor, state=None, return_state: bool = False):
        """idx: (B, T) token ids -> logits (B, T, V); with return_state, also the cache.

        state: a cache from an earlier call ({"kv": [(k, v) per layer], "pos": positions so far}).
        """
        B, T = idx.shape
        past = 0 if state is None else state["pos"]
        if past + T > self.cfg.block_size:
            raise ValueError(f"{past + T} positions exceed the context window block_size={self.cfg.block_size}; "
                             f"crop the input to its last {self.cfg.block_size} tokens (idx[:, -block_size:])")
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))                           # (B, T, D)
        caches = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if state is None else state["kv"][i])
            caches.append(kv)
        logits = self.lm_head(self.ln_f(x))                                    # (B, T, V)
        if return_state:
            return logits, {"kv": caches, "pos": past + T}
        return logits

    def step(self, token: torch.Tensor, state):
        """One new token per sequence, token: (B,), attending to the cached positions -> (logits (B, V), state)."""
        logits, state = self(token[:, None], state, return_state=True)
        return logits[:, -1], state

    # ------------------------------------------------------------------ Hugging Face GPT-2 weights

    @classmethod
    def from_hf_gpt2(cls, state_dict: dict, cfg: GPTConfig | None = None, n_head: int | None = None) -> "GPT":
        """A GPT holding the weights of a Hugging Face ``GPT2LMHeadModel`` state dict.

        GPT-2's ``Conv1D`` layers (c_attn, c_proj, c_fc) store their weight as (in, out), the
        transpose of ``nn.Linear``'s (out, in). Without ``cfg`` the sizes are read from the state
        dict, except the number of heads, which no weight shape reveals: pass ``n_head``, or get
        GPT-2's heads of width 64 (n_head = d_model / 64).
        """
        sd = {k.removeprefix("transformer."): v for k, v in state_dict.items()}
        if cfg is None:
            V, D = sd["wte.weight"].shape
            n_layer = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("h."))
            cfg = GPTConfig(vocab_size=V, block_size=sd["wpe.weight"].shape[0], n_layer=n_layer,
                            n_head=n_head or D // 64, d_model=D)
        model = cls(cfg).to(sd["wte.weight"].dtype)
        conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
        ours = model.state_dict()
        with torch.no_grad():
            for name, target in ours.items():
                if name == "lm_head.weight":
                    continue                                                   # tied to wte
                key = name.replace("blocks.", "h.")
                if key not in sd:
                    raise KeyError(f"the GPT-2 state dict has no {key!r} (for {name})")
                src = sd[key]
                if name.endswith(conv1d):
                    src = src.t()
                if src.shape != target.shape:
                    raise ValueError(f"{key}: shape {tuple(src.shape)} does not fit {name} {tuple(target.shape)}")
                target.copy_(src)
        return model
