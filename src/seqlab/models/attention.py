"""Attention from scratch: scaled dot-product, masks, multi-head, positional encodings (Part III).

    out, weights = scaled_dot_product_attention(q, k, v, mask=..., causal=...)
    mha = MultiHeadAttention(d_model=64, n_heads=4)           # same parameters as torch.nn.MultiheadAttention
    out, weights = mha(x, x, x, key_padding_mask=pad)          # self-attention over a padded batch
    x = x + SinusoidalPositionalEncoding(64)(x)                # or LearnedPositionalEncoding

Mask conventions (the same as PyTorch's, which differ between the two functions):

- ``scaled_dot_product_attention(mask=...)``: a boolean mask, **True = may attend**
  (as ``torch.nn.functional.scaled_dot_product_attention``'s boolean ``attn_mask``);
  a float mask is *added* to the scores (use -inf to block).
- ``MultiHeadAttention(key_padding_mask=...)``: **True = padding, ignore this key**
  (as ``torch.nn.MultiheadAttention``), because that is what a tokenizer's padding gives.

A query whose every key is masked has no distribution to take; its weights are all zero
and its output is zero here (torch's functions return NaN there), so a padded query
position never poisons a loss with NaN. Avoid relying on either: mask the loss instead.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def causal_mask(T_q: int, T_k: int | None = None, device=None) -> torch.Tensor:
    """(T_q, T_k) boolean, True where query i may attend key j, i.e. j <= i (+ T_k - T_q).

    With T_k > T_q (a cache of earlier keys) the queries are the *last* T_q positions.
    """
    T_k = T_q if T_k is None else T_k
    return torch.ones(T_q, T_k, dtype=torch.bool, device=device).tril(diagonal=T_k - T_q)


def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) boolean, True at real tokens: position t < lengths[b]."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def scaled_dot_product_attention(q, k, v, mask=None, causal: bool = False,
                                 dropout_p: float = 0.0, training: bool = False):
    """softmax(q k^T / sqrt(d) + mask) v   (Vaswani et al., 2017, eq. 1).

    q: (..., T_q, d), k: (..., T_k, d), v: (..., T_k, d_v); mask broadcastable to
    (..., T_q, T_k): boolean (True = may attend) or float (added to the scores).
    Returns (out: (..., T_q, d_v), weights: (..., T_q, T_k)); weights are the attention
    probabilities (before dropout), each row summing to 1 over the keys it may see.
    """
    d = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)              # (..., T_q, T_k)
    allowed = None
    if causal:
        allowed = causal_mask(q.size(-2), k.size(-2), device=q.device)
    if mask is not None:
        if mask.dtype == torch.bool:
            allowed = mask if allowed is None else allowed & mask
        else:
            scores = scores + mask
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)                # rows with no allowed key -> 0
    attn = F.dropout(weights, dropout_p, training=True) if (training and dropout_p > 0) else weights
    return attn @ v, weights                                     # (..., T_q, d_v)


class MultiHeadAttention(nn.Module):
    """h heads of scaled dot-product attention on learned projections (Vaswani et al., 2017).

        head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)            each of width d_k = d_model / h
        MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O

    Batch-first: query (B, T_q, D), key and value (B, T_k, D) -> out (B, T_q, D), and the
    weights (B, h, T_q, T_k) (or averaged over heads, as torch does, with average_weights).
    Parameters as ``torch.nn.MultiheadAttention``: in_proj_weight (3D, D) = [W^Q; W^K; W^V]
    stacked, in_proj_bias (3D,), out_proj (Linear D -> D), so its state_dict loads directly.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_k, self.dropout = d_model, n_heads, d_model // n_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model)) if bias else None
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)               # torch's initialisation
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, h, T, d_k)."""
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_k).transpose(1, 2)

    def forward(self, query, key, value, key_padding_mask=None, attn_mask=None,
                causal: bool = False, average_weights: bool = False):
        """key_padding_mask: (B, T_k), True = padding; attn_mask: (T_q, T_k) boolean, True = may attend."""
        W_q, W_k, W_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
        q = self.split_heads(F.linear(query, W_q, b_q))           # Q W^Q: (B, h, T_q, d_k)
        k = self.split_heads(F.linear(key, W_k, b_k))             # K W^K: (B, h, T_k, d_k)
        v = self.split_heads(F.linear(value, W_v, b_v))           # V W^V: (B, h, T_k, d_k)
        mask = None
        if key_padding_mask is not None:
            mask = ~key_padding_mask[:, None, None, :]             # (B, 1, 1, T_k), True = attend
        if attn_mask is not None:
            mask = attn_mask if mask is None else mask & attn_mask
        out, weights = scaled_dot_product_attention(q, k, v, mask, causal, self.dropout, self.training)
        B, _, T_q, _ = out.shape
        out = out.transpose(1, 2).reshape(B, T_q, self.d_model)   # Concat(head_1..head_h)
        out = self.out_proj(out)                                   # ... W^O
        return out, (weights.mean(dim=1) if average_weights else weights)


class SinusoidalPositionalEncoding(nn.Module):
    """The fixed encoding of Vaswani et al. (2017), section 3.5:

        PE[pos, 2i]   = sin(pos / 10000^(2i / D))
        PE[pos, 2i+1] = cos(pos / 10000^(2i / D))

    forward(x: (B, T, D), offset=0) -> the (1, T, D) encodings of positions offset .. offset+T-1,
    to be added to x. Nothing is learned; any length up to max_len works.
    """

    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        if d_model % 2:
            raise ValueError(f"d_model must be even for sin/cos pairs, got {d_model}")
        pos = torch.arange(max_len, dtype=torch.float64)[:, None]             # (max_len, 1)
        freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
        pe = torch.zeros(max_len, d_model, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", pe.float(), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        T = x.size(1)
        if offset + T > self.pe.size(0):
            raise ValueError(f"positions up to {offset + T} exceed max_len={self.pe.size(0)}")
        return self.pe[offset: offset + T].to(x.dtype)[None]


class LearnedPositionalEncoding(nn.Module):
    """One learned vector per position (as in GPT and BERT): forward(x, offset) -> (1, T, D).

    Positions beyond max_len were never trained, so they are an error, not a silent wrap.
    """

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        T = x.size(1)
        if offset + T > self.embedding.num_embeddings:
            raise ValueError(f"positions up to {offset + T} exceed max_len={self.embedding.num_embeddings}")
        return self.embedding(torch.arange(offset, offset + T, device=x.device))[None]
