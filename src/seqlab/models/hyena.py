"""Hyena: long implicit convolutions with data-controlled gating (Part VI).

    op = HyenaOperator(d_model=64, max_len=1024, order=2)
    y = op(u)                                    # u: (B, L, D) -> (B, L, D), causal, O(L log L)
    y = fft_conv(u, h)                           # the long convolution by FFT ...
    y = direct_conv(u, h)                        # ... equal to the O(L^2) sum it replaces

Poli et al. (2023). Attention mixes positions with an L x L matrix computed from the
data. Hyena mixes them with *convolutions* as long as the input, interleaved with
elementwise gates computed from the data:

    v, x^1, ..., x^N = split(ShortConv(W u))                 N + 1 streams of D channels
    z^0 = v
    z^n = x^n ⊙ (h^n * z^{n-1} + b^n ⊙ z^{n-1})              n = 1..N, * = causal convolution
    y   = W_out z^N

A causal convolution of length L, (h * z)_t = Σ_{s<=t} h_{t-s} z_s, costs O(L^2) written
out, and O(L log L) through the FFT: pad both to 2L (so the circular wrap-around falls
in the padding), multiply the spectra, transform back, keep the first L outputs.

The filters h^n are *implicit*: not L free numbers per channel, but a small network of
the position, h^n_t = Window(t) ⊙ FFN(PE(t)), with sine activations and an exponentially
decaying window, so the parameter count does not grow with L.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


def fft_conv(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Causal convolution along the last axis by FFT: u (..., D, L), h (D, L) -> (..., D, L)."""
    L = u.size(-1)
    n = 2 * L                                                            # no wrap-around into 0..L-1
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(h, n=n), n=n)
    return y[..., :L]


def direct_conv(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The same sum written out: y_t = Σ_{s<=t} h_{t-s} u_s, O(L^2). u (..., D, L), h (D, L)."""
    L = u.size(-1)
    t = torch.arange(L, device=u.device)
    lag = t[:, None] - t[None, :]                                        # t - s
    H = h[:, lag.clamp(min=0)] * (lag >= 0)                              # (D, L, L) Toeplitz, zero above
    return torch.einsum("dts,...ds->...dt", H, u)


class Sin(nn.Module):
    """sin(w ⊙ x) with a learned frequency per feature (Hyena's filter activation)."""

    def __init__(self, d: int, w: float = 1.0):
        super().__init__()
        self.freq = nn.Parameter(w * torch.ones(d))

    def forward(self, x):
        return torch.sin(self.freq * x)


class HyenaFilter(nn.Module):
    """Implicit long filters: h_t = exp(-α |t| / L) ⊙ FFN(PE(t)) for t = 0..L-1 -> (channels, L)."""

    def __init__(self, channels: int, max_len: int, emb_dim: int = 9, width: int = 32):
        super().__init__()
        if emb_dim % 2 == 0 or emb_dim < 3:
            raise ValueError(f"emb_dim must be odd and >= 3 (t plus sin/cos pairs), got {emb_dim}")
        self.max_len = max_len
        t = torch.linspace(0, 1, max_len)[:, None]                       # (L, 1) normalised position
        bands = (emb_dim - 1) // 2
        f = torch.linspace(1e-4, bands - 1, bands)[None]                 # frequencies
        angle = 2 * math.pi * f * torch.arange(max_len)[:, None] / max_len
        self.register_buffer("pe", torch.cat([t, torch.cos(angle), torch.sin(angle)], -1), persistent=False)
        self.ffn = nn.Sequential(nn.Linear(emb_dim, width), Sin(width), nn.Linear(width, width), Sin(width),
                                 nn.Linear(width, channels, bias=False))
        # per-channel decay rates between fast and slow, as in the paper's exponential modulation
        self.register_buffer("decay", torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, channels).abs(),
                             persistent=False)

    def forward(self, L: int) -> torch.Tensor:
        if L > self.max_len:
            raise ValueError(f"sequence length {L} exceeds max_len={self.max_len}")
        h = self.ffn(self.pe[:L]).T                                      # (channels, L)
        t = self.pe[:L, 0]                                               # normalised position in [0, 1]
        return h * torch.exp(-self.decay[:, None] * t)                   # the decaying window


class HyenaOperator(nn.Module):
    """The order-N Hyena operator: u (B, L, D) -> (B, L, D), causal."""

    def __init__(self, d_model: int, max_len: int, order: int = 2, short_conv: int = 3, filter_width: int = 32):
        super().__init__()
        self.d_model, self.order = d_model, order
        self.in_proj = nn.Linear(d_model, (order + 1) * d_model)                                  # W
        self.short = nn.Conv1d((order + 1) * d_model, (order + 1) * d_model, short_conv,
                               padding=short_conv - 1, groups=(order + 1) * d_model)              # ShortConv
        self.filters = HyenaFilter(order * d_model, max_len, width=filter_width)                 # h^1..h^N
        self.bias = nn.Parameter(torch.randn(order, d_model))                                     # b^n
        self.out_proj = nn.Linear(d_model, d_model)                                               # W_out

    def forward(self, u):
        B, L, D = u.shape
        z = self.short(self.in_proj(u).transpose(1, 2))[..., :L]         # causal short conv: (B, (N+1)D, L)
        v, *gates = z.split(D, dim=1)                                    # v, x^1..x^N: (B, D, L) each
        h = self.filters(L).view(self.order, D, L)
        for n, x in enumerate(gates):
            v = x * (fft_conv(v, h[n]) + self.bias[n, :, None] * v)     # z^n = x^n ⊙ (h^n * z^{n-1} + b^n z^{n-1})
        return self.out_proj(v.transpose(1, 2))
