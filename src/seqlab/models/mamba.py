"""Mamba: a language model built from selective state-space (S6) blocks (Part VI).

    model = Mamba(MambaConfig(vocab_size=65, d_model=128, n_layer=4))
    logits = model(idx)                                   # idx: (B, L) -> logits (B, L, V)
    logits, state = model.step(token, state)              # one token: (B,) -> (B, V), constant memory
    model = Mamba.from_hf(hf_model.state_dict(), cfg)     # Hugging Face MambaForCausalLM weights
    y = ssd(x, log_a, B, C, mode="chunked")               # Mamba-2's state-space dual, see ssd()

The model of Gu and Dao (2023). Each block is  x <- x + Mixer(RMSNorm(x)), and the mixer
(E = expand * d_model channels, each with an N = d_state dimensional state) computes

    x, z  = split(W_in u)                                  two streams of E channels
    x     = SiLU(causal depthwise conv(x))                 a short convolution (d_conv taps)
    Δ     = softplus(W_Δ (W_r x) + b_Δ)                    (B, L, E) step sizes     } input-dependent:
    B, C  = W_B x,  W_C x                                  (B, L, N) each            } "selective"
    A     = -exp(A_log)                                    (E, N), fixed per channel
    Ā_t   = exp(Δ_t A)                                     zero-order hold for A
    h_t   = Ā_t ⊙ h_{t-1} + (Δ_t B_t) x_t                  (B, E, N) state per channel
    y_t   = C_t · h_t + D ⊙ x_t
    out   = W_out (y ⊙ SiLU(z))

The input term uses Δ_t B_t (Euler) rather than the exact zero-order hold for B, as the
reference implementation does. Because Δ, B and C depend on the input, the recurrence
cannot be a convolution (as in S4); it is computed as a scan: step by step
(``scan="sequential"``) or as the parallel scan of :mod:`seqlab.scan`. Generation keeps
only the last d_conv - 1 inputs of the convolution and the (E, N) state per layer, so
each new token costs the same time and memory however long the text already is.

Parameter names follow Hugging Face's ``MambaForCausalLM`` (without its "backbone."
prefix), so :meth:`Mamba.from_hf` is a plain copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..scan import scan_parallel, scan_sequential
from .attention import causal_mask


@dataclass
class MambaConfig:
    vocab_size: int = 50280
    d_model: int = 768
    n_layer: int = 24
    d_state: int = 16               # N: state size per channel
    expand: int = 2                 # E = expand * d_model channels inside the mixer
    d_conv: int = 4                 # taps of the causal depthwise convolution
    dt_rank: int | None = None      # rank of the Δ projection; None = ceil(d_model / 16)
    conv_bias: bool = True
    bias: bool = False              # in in_proj and out_proj
    norm_eps: float = 1e-5
    scan: str = "parallel"          # "parallel" or "sequential": the same numbers, different speed
    selective: bool = True          # False: Δ, B, C are learned constants, not functions of the input
                                    # (a linear time-invariant SSM, as in S4: the Mamba paper's ablation)

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def rank(self) -> int:
        return self.dt_rank or math.ceil(self.d_model / 16)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, over the last dimension."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MambaMixer(nn.Module):
    """The selective SSM block: u (B, L, D) -> (B, L, D); ``step`` for one position at a time."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        E, N, R = cfg.d_inner, cfg.d_state, cfg.rank
        self.cfg = cfg
        self.in_proj = nn.Linear(cfg.d_model, 2 * E, bias=cfg.bias)                      # W_in
        self.conv1d = nn.Conv1d(E, E, cfg.d_conv, groups=E, padding=cfg.d_conv - 1, bias=cfg.conv_bias)
        if cfg.selective:
            self.x_proj = nn.Linear(E, R + 2 * N, bias=False)                            # [W_r; W_B; W_C]
        else:                                                   # S4-style: one B and C per channel, fixed
            self.B = nn.Parameter(torch.randn(E, N) / math.sqrt(N))
            self.C = nn.Parameter(torch.randn(E, N) / math.sqrt(N))
        self.dt_proj = nn.Linear(R, E)                                                   # W_Δ, b_Δ
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))  # A = -1..-N
        self.D = nn.Parameter(torch.ones(E))
        self.A_log._no_weight_decay = self.D._no_weight_decay = True         # as the reference code trains them
        self.out_proj = nn.Linear(E, cfg.d_model, bias=cfg.bias)                         # W_out
        with torch.no_grad():                                   # Δ starts between 0.001 and 0.1 (Mamba's init)
            dt = torch.exp(torch.rand(E) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))                    # softplus^-1(dt)

    def ssm_inputs(self, x):
        """x (..., E) after the convolution -> Δ (..., E), B (..., 1, N), C (..., 1, N).

        Not selective: Δ = softplus(b_Δ) (..., E), and B, C (E, N) the same at every position.
        """
        N, R = self.cfg.d_state, self.cfg.rank
        if not self.cfg.selective:
            return F.softplus(self.dt_proj.bias).expand_as(x), self.B, self.C
        dt_low, B, C = self.x_proj(x).split([R, N, N], dim=-1)
        return F.softplus(self.dt_proj(dt_low)), B[..., None, :], C[..., None, :]  # Δ = softplus(W_Δ W_r x + b_Δ)

    def forward(self, u):
        L = u.size(1)
        x, z = self.in_proj(u).chunk(2, dim=-1)                                     # (B, L, E) each
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2))         # causal: keep the first L
        delta, B, C = self.ssm_inputs(x)
        A = -torch.exp(self.A_log)                                                  # (E, N)
        A_bar = torch.exp(delta[..., None] * A)                                     # Ā_t = exp(Δ_t A): (B, L, E, N)
        Bx = (delta * x)[..., None] * B                                             # Δ_t B_t x_t: (B, L, E, N)
        scan = scan_parallel if self.cfg.scan == "parallel" else scan_sequential
        h = scan(A_bar, Bx)                                                         # h_t = Ā_t h_{t-1} + Δ_t B_t x_t
        y = (h * C).sum(-1) + self.D * x                                            # y_t = C_t · h_t + D x_t
        return self.out_proj(y * F.silu(z))

    def step(self, u, state=None):
        """u (B, D): one position. state = (conv inputs (B, E, d_conv - 1), h (B, E, N)) or None."""
        E, N, K = self.cfg.d_inner, self.cfg.d_state, self.cfg.d_conv
        x, z = self.in_proj(u).chunk(2, dim=-1)                                     # (B, E) each
        if state is None:
            state = (u.new_zeros(u.size(0), E, K - 1), u.new_zeros(u.size(0), E, N))
        window, h = state
        window = torch.cat([window, x[..., None]], dim=-1)                          # the last d_conv inputs
        x = (window * self.conv1d.weight[:, 0]).sum(-1)                             # the same taps as forward
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        x = F.silu(x)
        delta, B, C = self.ssm_inputs(x)
        A = -torch.exp(self.A_log)
        h = torch.exp(delta[..., None] * A) * h + (delta * x)[..., None] * B        # one step of the scan
        y = (h * C).sum(-1) + self.D * x
        return self.out_proj(y * F.silu(z)), (window[..., 1:], h)


class MambaBlock(nn.Module):
    """x <- x + Mixer(RMSNorm(x))."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mixer = MambaMixer(cfg)

    def forward(self, x):
        return x + self.mixer(self.norm(x))

    def step(self, x, state=None):
        y, state = self.mixer.step(self.norm(x), state)
        return x + y, state


class Mamba(nn.Module):
    """Mamba language model: ``model(idx) -> logits (B, L, V)``; ``step`` for constant-memory generation."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        if cfg.scan not in ("parallel", "sequential"):
            raise ValueError(f"scan must be 'parallel' or 'sequential', got {cfg.scan!r}")
        self.cfg = cfg
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(MambaBlock(cfg) for _ in range(cfg.n_layer))
        self.norm_f = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.embeddings.weight                                # weight tying
        nn.init.normal_(self.embeddings.weight, std=0.02)

    def forward(self, idx):
        x = self.embeddings(idx)                                                    # (B, L, D)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm_f(x))

    def step(self, token, state=None):
        """token (B,) -> (logits (B, V), state): one list entry per layer, the same size at every position."""
        x = self.embeddings(token)
        state = state or [None] * len(self.layers)
        new = []
        for layer, s in zip(self.layers, state):
            x, s = layer.step(x, s)
            new.append(s)
        return self.lm_head(self.norm_f(x)), new

    @classmethod
    def from_hf(cls, state_dict: dict, cfg: MambaConfig) -> "Mamba":
        """Weights of a Hugging Face ``MambaForCausalLM`` state dict (names equal after "backbone.")."""
        model = cls(cfg).to(state_dict["backbone.embeddings.weight"].dtype)
        ours = {k.removeprefix("backbone."): v for k, v in state_dict.items()}
        ours.setdefault("lm_head.weight", ours["embeddings.weight"])
        model.load_state_dict(ours)
        return model


# ---------------------------------------------------------------------------------------------
# Mamba-2: the state-space dual (SSD) of Dao and Gu (2024)
# ---------------------------------------------------------------------------------------------

SSD_MODES = ("sequential", "quadratic", "chunked")


def ssd(x, log_a, B, C, mode: str = "chunked", chunk: int = 64):
    """Mamba-2's SSM, whose decay is one scalar per head and step, in three equal forms.

    x: (b, T, H, P) inputs (P channels per head); log_a: (b, T, H) log decays (<= 0, e.g. Δ_t A);
    B, C: (b, T, H, N). Returns y: (b, T, H, P).

        sequential:  h_t = a_t h_{t-1} + B_t x_t^T   (N x P per head),   y_t = C_t^T h_t
        quadratic:   y = (L ⊙ C B^T) x,   L_ts = a_{s+1} ... a_t for s <= t, else 0
                     -- masked attention with a decay mask instead of a softmax: the "dual"
        chunked:     the quadratic form inside chunks of Q steps (matrix products, fast on
                     GPUs), and the recurrence between chunks on the states at chunk ends,
                     here by the parallel scan of seqlab.scan: work linear in T
    """
    if mode not in SSD_MODES:
        raise ValueError(f"mode must be one of {SSD_MODES}, got {mode!r}")
    b, T, H, P = x.shape
    if mode == "sequential":
        h = x.new_zeros(b, H, B.size(-1), P)
        ys = []
        for x_t, la_t, B_t, C_t in zip(*(t.unbind(1) for t in (x, log_a, B, C))):
            h = la_t[..., None, None].exp() * h + B_t[..., :, None] * x_t[..., None, :]   # a_t h + B_t x_t^T
            ys.append((C_t[..., :, None] * h).sum(-2))                          # C_t^T h_t: (b, H, P)
        return torch.stack(ys, dim=1)
    if mode == "quadratic":
        return _ssd_quadratic(x, log_a, B, C)
    Q = chunk
    pad = (-T) % Q                                                              # zero steps at the end
    if pad:
        x, log_a, B, C = (F.pad(t, (0,) * (2 * (t.dim() - 2)) + (0, pad)) for t in (x, log_a, B, C))
    nc = x.size(1) // Q
    x, log_a, B, C = (t.reshape(b, nc, Q, *t.shape[2:]) for t in (x, log_a, B, C))   # (b, nc, Q, ...)
    y_inner = _ssd_quadratic(x.flatten(0, 1), log_a.flatten(0, 1), B.flatten(0, 1), C.flatten(0, 1))
    cs = log_a.cumsum(2)                                                        # (b, nc, Q, H)
    to_end = (cs[:, :, -1:] - cs).exp()                                         # a_{s+1} ... a_{Q-1}
    own = torch.einsum("bcshn,bcsh,bcshp->bchnp", B, to_end, x)                 # each chunk's own end state
    entering = scan_parallel(cs[:, :, -1, :, None, None].exp(), own)            # h at the end of chunk c
    entering = torch.cat([torch.zeros_like(entering[:, :1]), entering[:, :-1]], dim=1)   # ... entering c
    y_cross = torch.einsum("bcthn,bcth,bchnp->bcthp", C, cs.exp(), entering)    # C_t^T (a_0..a_t) h_in
    y = y_inner.reshape_as(y_cross) + y_cross
    return y.reshape(b, nc * Q, H, P)[:, :T]


def _ssd_quadratic(x, log_a, B, C):
    """y = (L ⊙ C B^T) x with L_ts = exp(Σ_{r=s+1..t} log a_r) for s <= t: (b, T, H, P)."""
    T = x.size(1)
    cs = log_a.cumsum(1)                                                        # (b, T, H)
    seg = cs[:, :, None, :] - cs[:, None, :, :]                                 # (b, t, s, H)
    causal = causal_mask(T, device=x.device)                                    # (T, T), True at s <= t
    L = seg.masked_fill(~causal[None, :, :, None], float("-inf")).exp()         # 0 above the diagonal
    scores = torch.einsum("bthn,bshn->btsh", C, B) * L                          # (C_t · B_s) L_ts
    return torch.einsum("btsh,bshp->bthp", scores, x)
