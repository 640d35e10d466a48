"""Linear attention and retention in three equal forms: parallel, recurrent, chunked (Part VI).

    out = retention(q, k, v, gamma, mode="parallel")      # (B, H, T, d_v): O(T^2), like attention
    out = retention(q, k, v, gamma, mode="recurrent")     # O(T), a state of (d_k, d_v) per head
    out = retention(q, k, v, gamma, mode="chunked", chunk=64)   # parallel inside chunks, recurrent across
    out = linear_attention(q, k, v)                        # Katharopoulos et al. (2020), φ = elu + 1

q, k: (B, H, T, d_k), v: (B, H, T, d_v); gamma: a float or (H,) decays in (0, 1].

Softmax attention weighs value s for query t by exp(q_t·k_s). Drop the exponential and
the sum factorises (Katharopoulos et al., 2020):

    o_t = Σ_{s<=t} (q_t·k_s) v_s = q_t^T S_t,     S_t = Σ_{s<=t} k_s v_s^T     (d_k x d_v)

so the past fits in a fixed-size state S_t: a linear RNN. Retention (RetNet, Sun et al.,
2023) adds a decay per head, which forgets the distant past geometrically:

    parallel:   o = ((q k^T) ⊙ D) v,   D_ts = gamma^(t-s) for s <= t, else 0
    recurrent:  S_t = gamma S_{t-1} + k_t v_t^T,   o_t = q_t^T S_t
    chunked:    within a chunk the parallel form; the state S carried from the chunk
                before adds q_i^T (gamma^(i+1) S) at in-chunk position i, and then
                S <- gamma^C S + Σ_j gamma^(C-1-j) k_j v_j^T for the chunk's C positions

All three compute the same numbers: parallel for training on short sequences, recurrent
for generation, chunked for training on long ones (work linear in T, matrix products
of size C). RetNet's rotation of q and k (xPos) and its group norm are left out here.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

MODES = ("parallel", "recurrent", "chunked")


def _gamma(gamma, H: int, like: torch.Tensor) -> torch.Tensor:
    g = torch.as_tensor(gamma, dtype=like.dtype, device=like.device)
    return g.expand(H) if g.dim() == 0 else g                             # (H,)


def decay_mask(gamma: torch.Tensor, T: int) -> torch.Tensor:
    """D: (H, T, T), D[h, t, s] = gamma_h^(t - s) for s <= t, else 0."""
    t = torch.arange(T, device=gamma.device)
    diff = (t[:, None] - t[None, :]).to(gamma.dtype)                      # t - s
    D = gamma[:, None, None] ** diff.clamp(min=0)
    return D * (diff >= 0)


def retention(q, k, v, gamma=1.0, mode: str = "parallel", chunk: int = 64):
    """o_t = Σ_{s<=t} gamma^(t-s) (q_t·k_s) v_s for every t: (B, H, T, d_v). See the module docstring."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    B, H, T, dk = q.shape
    g = _gamma(gamma, H, q)                                                # (H,)
    if mode == "parallel":
        return ((q @ k.transpose(-2, -1)) * decay_mask(g, T)) @ v          # ((q k^T) ⊙ D) v
    S = q.new_zeros(B, H, dk, v.size(-1))                                  # the state, (d_k, d_v) per head
    gh = g[:, None, None]                                                  # (H, 1, 1), broadcasts over S
    if mode == "recurrent":
        out = []
        for q_t, k_t, v_t in zip(q.unbind(2), k.unbind(2), v.unbind(2)):   # (B, H, d) each
            S = gh * S + k_t[..., :, None] * v_t[..., None, :]              # S_t = gamma S_{t-1} + k_t v_t^T
            out.append((q_t[..., None, :] @ S)[..., 0, :])                  # o_t = q_t^T S_t
        return torch.stack(out, dim=2)
    out = []
    for c0 in range(0, T, chunk):
        qc, kc, vc = q[:, :, c0:c0 + chunk], k[:, :, c0:c0 + chunk], v[:, :, c0:c0 + chunk]
        C = qc.size(2)
        i = torch.arange(C, device=q.device, dtype=q.dtype)
        inner = ((qc @ kc.transpose(-2, -1)) * decay_mask(g, C)) @ vc      # within the chunk
        cross = (qc * (g[:, None] ** (i + 1))[:, :, None]) @ S             # q_i^T gamma^(i+1) S_before
        out.append(inner + cross)
        weights = (g[:, None] ** (C - 1 - i))[:, :, None]                  # gamma^(C-1-j): (H, C, 1)
        S = gh ** C * S + (kc * weights).transpose(-2, -1) @ vc            # the state after the chunk
    return torch.cat(out, dim=2)


def linear_attention(q, k, v, mode: str = "parallel", chunk: int = 64, eps: float = 1e-6):
    """Causal linear attention (Katharopoulos et al., 2020), any of the three modes:

        o_t = φ(q_t)^T S_t / (φ(q_t)^T z_t),   S_t = Σ_{s<=t} φ(k_s) v_s^T,   z_t = Σ_{s<=t} φ(k_s)

    with φ(x) = elu(x) + 1 > 0. The normaliser z_t is retention (gamma = 1) of a column of ones.
    """
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    ones = v.new_ones(*v.shape[:-1], 1)
    both = retention(fq, fk, torch.cat([v, ones], dim=-1), 1.0, mode, chunk)   # numerator and z together
    return both[..., :-1] / (both[..., -1:] + eps)


class MultiScaleRetention(nn.Module):
    """RetNet's token mixer (Sun et al., 2023, sec. 2.2), without xPos: (B, T, D) -> (B, T, D).

        q, k, v = X W_Q, X W_K / sqrt(d_k), X W_V         split into H heads
        head_h  = Retention(q_h, k_h, v_h; gamma_h)       gamma_h = 1 - 2^(-5 - h): each head its own memory span
        Y       = GroupNorm_H(concat_h head_h)            normalise each head
        out     = (swish(X W_G) ⊙ Y) W_O                  a gate computed from the input

    mode: "parallel" for training on short windows, "chunked" for long ones; the same numbers.
    """

    def __init__(self, d_model: int, n_heads: int = 4, mode: str = "parallel", chunk: int = 64):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.mode, self.chunk = n_heads, mode, chunk
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)                 # W_Q, W_K, W_V
        self.gate = nn.Linear(d_model, d_model, bias=False)                    # W_G
        self.out = nn.Linear(d_model, d_model, bias=False)                     # W_O
        self.norm = nn.GroupNorm(n_heads, d_model)
        self.register_buffer("gamma", 1 - 2.0 ** (-5 - torch.arange(n_heads, dtype=torch.float32)),
                             persistent=False)                                 # 0.969, 0.984, 0.992, ...

    def forward(self, x):
        B, T, D = x.shape
        H = self.n_heads
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        k = k / math.sqrt(D // H)
        y = retention(q, k, v, self.gamma.to(x.dtype), mode=self.mode, chunk=self.chunk)   # (B, H, T, d)
        y = self.norm(y.transpose(1, 2).reshape(B * T, D)).view(B, T, D)       # GroupNorm over each head
        return self.out(F.silu(self.gate(x)) * y)
