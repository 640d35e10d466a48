"""The Transformer of Vaswani et al. (2017): encoder and decoder layers, the encoder-decoder (Part III).

    model = Transformer(src_vocab=8000, tgt_vocab=6000, d_model=256, n_heads=8)
    logits = model(src, src_mask, tgt_in)              # teacher forcing: (B, T, V)
    state = model.encode(src, src_mask)                 # then one output token at a time,
    logits, state = model.decode_step(y_prev, state)    # with cached keys and values
    loss = label_smoothed_cross_entropy(logits, tgt_out, smoothing=0.1)

Each layer is attention or a feed-forward network wrapped in a residual connection
and layer normalisation, in one of two orders:

    post-LN (the 2017 paper):   x = LN(x + Dropout(Sublayer(x)))
    pre-LN  (GPT-2 and later):  x = x + Dropout(Sublayer(LN(x)))

Pre-LN keeps an identity path from the input to the output of the whole stack, which
makes deep stacks train without a careful warm-up (Xiong et al., 2020); it then needs
one final LayerNorm after the last layer. The 2017 post-LN model has none, and this
file follows the paper there (``torch.nn.Transformer`` adds one in both cases).

Layers use the same parameter names as ``torch.nn.TransformerEncoderLayer`` /
``TransformerDecoderLayer`` (self_attn, multihead_attn, linear1, linear2, norm1..3), so
their state dicts load into each other; the tests check that they compute the same.

Decoding with a cache: the decoder's self-attention at step t needs the keys and values
of every earlier output position. Recomputing them for all t positions at every step
costs O(t) work per layer per step for nothing; the cache keeps each layer's keys and
values and appends one row per step. The cross-attention's keys and values depend only on
the source, so ``encode`` projects them once. ``state`` is a dict of tensors whose first
dimension is the batch (beam search in ``seqlab.generate`` reorders it with index_select).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import MultiHeadAttention, SinusoidalPositionalEncoding, scaled_dot_product_attention

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


# ----------------------------------------------------------------------------- attention with a cache

def project_kv(mha: MultiHeadAttention, x):
    """Keys and values of x: (B, T, D) -> K W^K, V W^V, each (B, h, T, d_k)."""
    _, W_k, W_v = mha.in_proj_weight.chunk(3)
    _, b_k, b_v = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (None,) * 3
    return mha.split_heads(F.linear(x, W_k, b_k)), mha.split_heads(F.linear(x, W_v, b_v))


def attend(mha: MultiHeadAttention, x, k, v, mask=None):
    """Multi-head attention of queries from x: (B, T_q, D) over given keys/values (B, h, T_k, d_k).

    mask: boolean, True = may attend, broadcastable to (B, h, T_q, T_k).
    Returns (out: (B, T_q, D), weights: (B, h, T_q, T_k)). The same computation as mha(x, ., .)
    when k, v = project_kv(mha, memory): split so that keys and values can be cached.
    """
    W_q = mha.in_proj_weight.chunk(3)[0]
    b_q = mha.in_proj_bias.chunk(3)[0] if mha.in_proj_bias is not None else None
    q = mha.split_heads(F.linear(x, W_q, b_q))                              # Q W^Q: (B, h, T_q, d_k)
    out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=mha.dropout, training=mha.training)
    B, _, T_q, _ = out.shape
    return mha.out_proj(out.transpose(1, 2).reshape(B, T_q, mha.d_model)), weights   # Concat(heads) W^O


def _keep(pad_mask):
    """(B, T) True = pad  ->  (B, 1, 1, T) True = may attend (None stays None)."""
    return None if pad_mask is None else ~pad_mask[:, None, None, :]


# ----------------------------------------------------------------------------- layers

class _Sublayers(nn.Module):
    """The feed-forward network and the residual wiring shared by both layer types."""

    def _init_ffn(self, d_model, d_ff, dropout, norm_first, activation):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm_first, self.activation = norm_first, ACTIVATIONS[activation]

    def ffn(self, x):
        """FFN(x) = W_2 relu(W_1 x + b_1) + b_2, applied at every position alike."""
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def residual(self, x, sublayer, norm: nn.LayerNorm, drop: nn.Dropout):
        """post-LN: LN(x + Dropout(f(x)));  pre-LN: x + Dropout(f(LN(x)))."""
        if self.norm_first:
            return x + drop(sublayer(norm(x)))
        return norm(x + drop(sublayer(x)))


class EncoderLayer(_Sublayers):
    """Self-attention over the source, then the FFN. x: (B, S, D); src_pad_mask: (B, S), True = pad."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 norm_first: bool = False, activation: str = "relu", layer_norm_eps: float = 1e-5):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self._init_ffn(d_model, d_ff, dropout, norm_first, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.last_self_attention = None         # (B, h, S, S) weights of the last call, for plots

    def forward(self, x, src_pad_mask=None):
        def self_attention(h):
            k, v = project_kv(self.self_attn, h)
            out, w = attend(self.self_attn, h, k, v, _keep(src_pad_mask))
            self.last_self_attention = w.detach()
            return out
        x = self.residual(x, self_attention, self.norm1, self.dropout1)
        return self.residual(x, self.ffn, self.norm2, self.dropout2)


class DecoderLayer(_Sublayers):
    """Causal self-attention over the output so far, attention over the source (memory), the FFN.

    y: (B, T, D); memory: (B, S, D); memory_pad_mask: (B, S) and tgt_pad_mask: (B, T), True = pad.
    With ``cache`` (this layer's dict from Transformer.encode), y holds only the new
    positions: their keys and values are appended to cache["k"], cache["v"], and the
    cross-attention uses the memory's cached cache["mk"], cache["mv"].
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1,
                 norm_first: bool = False, activation: str = "relu"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.multihead_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self._init_ffn(d_model, d_ff, dropout, norm_first, activation)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))
        self.last_self_attention = None         # (B, h, T, t) weights of the last call, for plots
        self.last_cross_attention = None        # (B, h, T, S)

    def forward(self, y, memory=None, memory_pad_mask=None, tgt_pad_mask=None, cache=None):
        def self_attention(h):
            k, v = project_kv(self.self_attn, h)
            if cache is not None:                           # earlier positions' keys and values
                k = cache["k"] = torch.cat([cache["k"], k], dim=2)
                v = cache["v"] = torch.cat([cache["v"], v], dim=2)
            # query i (position T_k - T_q + i) may see keys 0 .. its own position
            mask = torch.ones(h.size(1), k.size(2), dtype=torch.bool, device=h.device).tril(k.size(2) - h.size(1))
            if tgt_pad_mask is not None:
                mask = mask & _keep(tgt_pad_mask)
            out, w = attend(self.self_attn, h, k, v, mask)
            self.last_self_attention = w.detach()
            return out

        def cross_attention(h):
            if cache is not None:
                k, v = cache["mk"], cache["mv"]              # projected once per sentence
            else:
                k, v = project_kv(self.multihead_attn, memory)
            out, w = attend(self.multihead_attn, h, k, v, _keep(memory_pad_mask))
            self.last_cross_attention = w.detach()
            return out

        y = self.residual(y, self_attention, self.norm1, self.dropout1)
        y = self.residual(y, cross_attention, self.norm2, self.dropout2)
        return self.residual(y, self.ffn, self.norm3, self.dropout3)


# ----------------------------------------------------------------------------- the model

class Transformer(nn.Module):
    """The encoder-decoder Transformer for translation.

    Embeddings are scaled by sqrt(d_model) and summed with sinusoidal positions (section
    3.4-3.5 of the paper); the output layer shares its weight matrix with the target
    embedding when tie_embeddings (section 3.4). src_mask: (B, S) bool, **True = real token**.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 256, n_heads: int = 8,
                 num_encoder_layers: int = 3, num_decoder_layers: int = 3, d_ff: int = 512,
                 dropout: float = 0.1, norm_first: bool = False, max_len: int = 256, pad_id: int = 0,
                 tie_embeddings: bool = True):
        super().__init__()
        self.d_model, self.n_heads, self.norm_first = d_model, n_heads, norm_first
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        self.pos = SinusoidalPositionalEncoding(d_model, max_len)
        self.drop = nn.Dropout(dropout)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(num_encoder_layers))
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first) for _ in range(num_decoder_layers))
        # pre-LN's residual stream is never normalised inside the stack: one LayerNorm at the end
        self.encoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.generator = nn.Linear(d_model, tgt_vocab)
        for p in self.parameters():                      # Glorot for matrices, as torch.nn.Transformer
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for emb in (self.src_embed, self.tgt_embed):     # x * sqrt(d) then has unit-scale entries
            nn.init.normal_(emb.weight, std=d_model ** -0.5)
            emb.weight.data[pad_id] = 0.0
        if tie_embeddings:
            self.generator.weight = self.tgt_embed.weight

    def embed(self, emb: nn.Embedding, ids, offset: int = 0):
        """Dropout(E[ids] * sqrt(d_model) + PE[offset:offset+T]). ids: (B, T) -> (B, T, D)."""
        x = emb(ids) * math.sqrt(self.d_model)
        return self.drop(x + self.pos(x, offset))

    def encode_memory(self, src, src_mask):
        """The encoder: src (B, S), src_mask (B, S) True = real -> memory (B, S, D)."""
        x = self.embed(self.src_embed, src)
        for layer in self.encoder_layers:
            x = layer(x, ~src_mask)
        return self.encoder_norm(x)

    def forward(self, src, src_mask, tgt_in):
        """Teacher-forced logits: src, src_mask (B, S); tgt_in (B, T) = <bos> y_1 .. -> (B, T, V)."""
        memory = self.encode_memory(src, src_mask)
        y = self.embed(self.tgt_embed, tgt_in)
        for layer in self.decoder_layers:
            y = layer(y, memory, ~src_mask)
        return self.generator(self.decoder_norm(y))

    def encode(self, src, src_mask) -> dict:
        """Encode once; the state for decode_step (every tensor batch-first):

        memory (B, S, D), src_mask (B, S), attn (B, S), and per decoder layer a cache:
        k, v (B, h, t, d_k) the self-attention's keys/values of the t tokens so far (t = 0
        now), mk, mv (B, h, S, d_k) the cross-attention's keys/values of the memory.
        """
        memory = self.encode_memory(src, src_mask)
        B, S, _ = memory.shape
        empty = memory.new_zeros(B, self.n_heads, 0, self.d_model // self.n_heads)
        layers = []
        for layer in self.decoder_layers:
            mk, mv = project_kv(layer.multihead_attn, memory)
            layers.append({"k": empty, "v": empty, "mk": mk, "mv": mv})
        return {"memory": memory, "src_mask": src_mask, "layers": layers,
                "attn": memory.new_zeros(B, S)}

    def decode_step(self, y_prev, state: dict):
        """One output token. y_prev: (B,) -> (logits (B, V), new state with one more cached position).

        state["attn"] becomes the last decoder layer's cross-attention weights of this step,
        averaged over heads: (B, S), zero on padding.
        """
        t = state["layers"][0]["k"].size(2)                # tokens decoded so far = this token's position
        y = self.embed(self.tgt_embed, y_prev[:, None], offset=t)           # (B, 1, D)
        layers = [dict(cache) for cache in state["layers"]]                  # the old state stays valid
        for layer, cache in zip(self.decoder_layers, layers):
            y = layer(y, memory_pad_mask=~state["src_mask"], cache=cache)
        logits = self.generator(self.decoder_norm(y))[:, 0]
        attn = self.decoder_layers[-1].last_cross_attention[:, :, 0].mean(dim=1)   # (B, S)
        return logits, {**state, "layers": layers, "attn": attn}


# ----------------------------------------------------------------------------- training

def label_smoothed_cross_entropy(logits, target, smoothing: float = 0.1, ignore_index: int = 0):
    """Cross-entropy against a smoothed target (Szegedy et al., 2016; used by Vaswani et al.).

    The target distribution puts 1 - eps on the true word and spreads eps uniformly over
    all V words (the true one included), so for each position

        loss = (1 - eps) * (-log p[y])  +  eps * mean_w(-log p[w])

    averaged over the positions whose target is not ignore_index. This is exactly
    torch.nn.functional.cross_entropy(..., label_smoothing=eps, ignore_index=...).
    logits: (..., V), target: (...).
    """
    logp = F.log_softmax(logits.reshape(-1, logits.size(-1)), dim=-1)        # (N, V)
    target = target.reshape(-1)
    keep = target != ignore_index
    nll = -logp.gather(1, target.clamp(min=0)[:, None])[:, 0]                # -log p[y]
    uniform = -logp.mean(dim=-1)                                             # mean_w -log p[w]
    loss = (1 - smoothing) * nll + smoothing * uniform
    return loss[keep].sum() / keep.sum().clamp(min=1)


def noam_lr(step: int, d_model: int, warmup: int) -> float:
    """The paper's learning rate (eq. 3) for the 1-based step n:

        lrate = d_model^-0.5 * min(n^-0.5, n * warmup^-1.5)

    rising linearly for `warmup` steps, then decaying as 1/sqrt(n); the peak, at n = warmup,
    is (d_model * warmup)^-0.5. ``TrainConfig(schedule="inverse_sqrt", lr=peak)`` follows it.
    """
    if step < 1:
        raise ValueError(f"step is 1-based, got {step}")
    return d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)


def num_params(model: nn.Module) -> int:
    """Trainable parameters, counting a tied matrix once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
