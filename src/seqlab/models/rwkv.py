"""RWKV-7 "Goose": a recurrent language model with a delta-rule state, in two equal forms (Part VI).

    model = RWKV7(RWKV7Config(vocab_size=65, d_model=128, n_layer=4, head_size=32))
    logits = model(idx)                                   # idx: (B, T) -> (B, T, V), the whole sequence
    logits, state = model.step(token, state)              # one token: (B,) -> (B, V), the RNN form
    torch.save(model.state_dict(), "x.pth")               # key names of the rwkv package and RWKV-LM

Peng et al. (2025). Each block is x <- x + TimeMix(LN_1(x)); x <- x + ChannelMix(LN_2(x)).

**Token shift.** Every projection reads a mix of this token and the previous one,
x + (x_prev - x) ⊙ μ, with a learned μ per channel and per projection.

**Time mixing** (per head of N = head_size channels; the state S is N x N):

    r, k, v          = W_r x_r,  W_k x_k,  W_v x_v                   receptance, key, value
    w                = exp(-e^-0.5 σ(w_0 + tanh(x_w A_w) B_w))        decay in (e^-0.61, 1) per channel
    a                = σ(a_0 + x_a A_a B_a)                           in-context learning rate
    κ                = normalise(k ⊙ k_k) per head                    the key that is replaced
    k̃                = k ⊙ (1 + (a - 1) ⊙ k_a)
    v                = v + (v_first - v) ⊙ σ(v_0 + x_v A_v B_v)       (not in layer 0: v_first is layer 0's v)

    S_t = S_{t-1} (diag(w_t) - κ_t (a_t ⊙ κ_t)^T) + v_t k̃_t^T          the generalised delta rule
    y_t = S_t r_t

The delta rule: S κ is what the state currently returns for the key κ; subtracting
S κ (a ⊙ κ)^T removes (a fraction a of) that old association before v k̃^T writes the
new one, so the state can *overwrite* memories instead of only adding and decaying
them (as RWKV-4..6 and linear attention do). Then y goes through a GroupNorm per head,
plus a "bonus" ((r ⊙ k̃ ⊙ r_k) summed per head) v for the current token, times the gate
g = σ(x_g A_g) B_g, and W_o.

**Channel mixing**: k = ReLU(W_k x_k)^2, out = W_v k.

``forward`` computes all projections of the sequence at once and runs the state update
over time; ``step`` does one token with the state (previous x of both mixers, S per
layer). The two give the same numbers; the rwkv package's "GPT mode" and "RNN mode"
are the same pair. Parameter names and shapes follow the rwkv package / RWKV-LM so that
``torch.save(model.state_dict(), path + ".pth")`` is a checkpoint the package loads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class RWKV7Config:
    vocab_size: int = 65536
    d_model: int = 768
    n_layer: int = 12
    head_size: int = 64             # N; the package's CPU path uses 64
    d_decay: int = 64               # rank of the low-rank maps (A, B) for w, a, v and the gate
    d_a: int = 64
    d_v: int = 32
    d_gate: int = 128
    d_ffn: int | None = None        # None = 4 d_model

    @property
    def n_head(self) -> int:
        return self.d_model // self.head_size


class TimeMix(nn.Module):
    """RWKV-7 time mixing: x (B, T, C) -> (B, T, C); see the module docstring for the equations."""

    def __init__(self, cfg: RWKV7Config, layer_id: int):
        super().__init__()
        C, H, N = cfg.d_model, cfg.n_head, cfg.head_size
        if H * N != C:
            raise ValueError(f"d_model={C} must be a multiple of head_size={N}")
        self.layer_id, self.H, self.N = layer_id, H, N
        ratio = layer_id / max(1, cfg.n_layer - 1)
        ramp = torch.arange(C) / C
        for name, power in (("x_r", 0.2), ("x_w", 0.9), ("x_k", 0.7), ("x_v", 0.7), ("x_a", 0.9), ("x_g", 0.2)):
            setattr(self, name, nn.Parameter(1 - ramp ** (power * (1 - ratio) + 0.1)))    # token-shift mixes μ
        self.w0 = nn.Parameter(-6 + 5 * ramp ** (0.85 + ratio ** 0.5))                    # slow to fast decays
        self.w1 = nn.Parameter(torch.zeros(C, cfg.d_decay))
        self.w2 = nn.Parameter(torch.randn(cfg.d_decay, C) * 0.1)
        self.a0 = nn.Parameter(torch.zeros(C))
        self.a1 = nn.Parameter(torch.zeros(C, cfg.d_a))
        self.a2 = nn.Parameter(torch.randn(cfg.d_a, C) * 0.1)
        if layer_id > 0:                                                                   # value residual
            self.v0 = nn.Parameter(torch.ones(C))
            self.v1 = nn.Parameter(torch.zeros(C, cfg.d_v))
            self.v2 = nn.Parameter(torch.randn(cfg.d_v, C) * 0.1)
        self.g1 = nn.Parameter(torch.zeros(C, cfg.d_gate))
        self.g2 = nn.Parameter(torch.randn(cfg.d_gate, C) * 0.1)
        self.k_k = nn.Parameter(torch.full((C,), 0.85))
        self.k_a = nn.Parameter(torch.ones(C))
        self.r_k = nn.Parameter(torch.randn(H, N) * 0.1)
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        nn.init.zeros_(self.output.weight)
        self.ln_x = nn.GroupNorm(H, C, eps=64e-5)                                          # a LayerNorm per head

    def projections(self, x, x_prev, v_first):
        """x, x_prev: (..., C) this and the previous token -> r, w, k, v, κ, a, g, v_first, each (..., C)."""
        dx = x_prev - x
        xr, xw, xk, xv, xa, xg = (x + dx * mu for mu in (self.x_r, self.x_w, self.x_k, self.x_v, self.x_a, self.x_g))
        r, k, v = self.receptance(xr), self.key(xk), self.value(xv)
        w = torch.exp(-math.exp(-0.5) * torch.sigmoid(self.w0 + torch.tanh(xw @ self.w1) @ self.w2))   # decay
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)                                        # learning rate
        g = torch.sigmoid(xg @ self.g1) @ self.g2                                                    # output gate
        kappa = F.normalize((k * self.k_k).unflatten(-1, (self.H, self.N)), dim=-1).flatten(-2)      # κ
        k = k * (1 + (a - 1) * self.k_a)                                                             # k̃
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        return r, w, k, v, kappa, a, g, v_first

    def state_update(self, S, r, w, k, v, kappa, a):
        """One step for every batch row: S (B, H, N, N); r, w, ...: (B, C) -> (y (B, C), S)."""
        split = lambda t: t.view(-1, self.H, self.N)
        r, w, k, v, kappa, a = map(split, (r, w, k, v, kappa, a))
        S = (S * w[:, :, None, :]                                              # S diag(w)
             - (S @ kappa[..., None]) @ (a * kappa)[:, :, None, :]              # - (S κ)(a ⊙ κ)^T
             + v[..., None] @ k[:, :, None, :])                                 # + v k̃^T
        return (S @ r[..., None]).flatten(1), S                                # y = S r: (B, C)

    def finish(self, y, r, k, v, g):
        """GroupNorm per head, the bonus of the current token, the gate and W_o: (..., C) -> (..., C)."""
        shape = y.shape
        y = self.ln_x(y.reshape(-1, shape[-1])).view(shape)
        bonus = (r * k * self.r_k.flatten()).unflatten(-1, (self.H, self.N)).sum(-1, keepdim=True)
        y = y + (bonus * v.unflatten(-1, (self.H, self.N))).flatten(-2)
        return self.output(y * g)

    def forward(self, x, v_first):
        """x: (B, T, C) -> (out (B, T, C), v_first); the state starts at zero."""
        B = x.size(0)
        x_prev = F.pad(x, (0, 0, 1, -1))                                        # token shift: x_{t-1}, zero at t=0
        r, w, k, v, kappa, a, g, v_first = self.projections(x, x_prev, v_first)
        S = x.new_zeros(B, self.H, self.N, self.N)
        ys = []
        for step in zip(*(t.unbind(1) for t in (r, w, k, v, kappa, a))):  # unbind: a cheap backward (seqlab.scan)
            y, S = self.state_update(S, *step)
            ys.append(y)
        return self.finish(torch.stack(ys, 1), r, k, v, g), v_first

    def step(self, x, state, v_first):
        """x: (B, C), state = (x_prev (B, C), S (B, H, N, N)) -> (out (B, C), state, v_first)."""
        x_prev, S = state
        r, w, k, v, kappa, a, g, v_first = self.projections(x, x_prev, v_first)
        y, S = self.state_update(S, r, w, k, v, kappa, a)
        return self.finish(y, r, k, v, g), (x, S), v_first


class ChannelMix(nn.Module):
    """k = ReLU(W_k (x + (x_prev - x) ⊙ μ_k))^2,  out = W_v k."""

    def __init__(self, cfg: RWKV7Config, layer_id: int):
        super().__init__()
        C, F_ = cfg.d_model, cfg.d_ffn or 4 * cfg.d_model
        ratio = layer_id / max(1, cfg.n_layer)
        self.x_k = nn.Parameter(1 - (torch.arange(C) / C) ** (1 - ratio) ** 4)
        self.key = nn.Linear(C, F_, bias=False)
        self.value = nn.Linear(F_, C, bias=False)
        nn.init.zeros_(self.value.weight)

    def forward(self, x, x_prev):
        k = torch.relu(self.key(x + (x_prev - x) * self.x_k)) ** 2
        return self.value(k)


class Block(nn.Module):
    def __init__(self, cfg: RWKV7Config, layer_id: int):
        super().__init__()
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(cfg.d_model)                                 # on the embeddings
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.att, self.ffn = TimeMix(cfg, layer_id), ChannelMix(cfg, layer_id)

    def forward(self, x, v_first):
        a, v_first = self.att(self.ln1(x), v_first)
        x = x + a
        h = self.ln2(x)
        return x + self.ffn(h, F.pad(h, (0, 0, 1, -1))), v_first

    def step(self, x, state, v_first):
        att_state, ffn_prev = state
        a, att_state, v_first = self.att.step(self.ln1(x), att_state, v_first)
        x = x + a
        h = self.ln2(x)
        return x + self.ffn(h, ffn_prev), (att_state, h), v_first


class RWKV7(nn.Module):
    """RWKV-7 language model: ``model(idx) -> logits (B, T, V)``; ``step`` for the RNN form."""

    def __init__(self, cfg: RWKV7Config):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for name, p in self.named_parameters():          # the large projections (ffn.value stays at zero)
            if name.endswith(("receptance.weight", "key.weight", "value.weight")) and "ffn.value" not in name:
                nn.init.orthogonal_(p, gain=1.0 if "att" in name else 0.5)
        nn.init.orthogonal_(self.head.weight, gain=0.5)

    def forward(self, idx):
        x = self.blocks[0].ln0(self.emb(idx))                                    # (B, T, C)
        v_first = None
        for block in self.blocks:
            x, v_first = block(x, v_first)
        return self.head(self.ln_out(x))

    def zero_state(self, batch: int, device=None, dtype=None):
        """The state before the first token: per layer ((x_prev, S), ffn x_prev), all zeros."""
        C, H, N = self.cfg.d_model, self.cfg.n_head, self.cfg.head_size
        z = lambda *s: torch.zeros(*s, device=device, dtype=dtype)
        return [((z(batch, C), z(batch, H, N, N)), z(batch, C)) for _ in self.blocks]

    def step(self, token, state=None):
        """token (B,) -> (logits (B, V), state); the state has the same size at every position."""
        x = self.blocks[0].ln0(self.emb(token))
        if state is None:
            state = self.zero_state(token.size(0), x.device, x.dtype)
        v_first, new = None, []
        for block, s in zip(self.blocks, state):
            x, s, v_first = block.step(x, s, v_first)
            new.append(s)
        return self.head(self.ln_out(x)), new
