"""minGRU and minLSTM: recurrent networks trained with a parallel scan (Part VI).

    cell = MinGRU(d_in=64, d_hidden=128)
    h = cell(x)                          # x: (B, T, d_in) -> h: (B, T, d_hidden), by the parallel scan
    h = cell(x, h0, parallel=False)      # the same h, one step at a time (the Part II way)
    h_t = cell.step(x_t, h_prev)         # one step: (B, d_in), (B, d_hidden) -> (B, d_hidden)

Feng et al. (2024), "Were RNNs all we needed?". The GRU and LSTM of Part II cannot be
parallelised over time because their gates read h_{t-1}. Drop that dependence, and the
tanh on the candidate, and what is left is the linear recurrence of :mod:`seqlab.scan`:

    minGRU:   z_t = σ(W_z x_t),  h̃_t = W_h x_t
              h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t                     a_t = 1 - z_t,  b_t = z_t ⊙ h̃_t

    minLSTM:  f_t = σ(W_f x_t),  i_t = σ(W_i x_t),  h̃_t = W_h x_t
              f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)       (the gates sum to one)
              h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t                        a_t = f'_t,  b_t = i'_t ⊙ h̃_t

Every gate depends on x_t alone, so all a_t and b_t are computed at once and the scan
combines them in ceil(log2 T) rounds. The paper also runs the scan in log space for
very long sequences; here a_t lies in (0, 1) and the plain scan is accurate.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..scan import scan_parallel, scan_sequential


class _MinRNN(nn.Module):
    def coefficients(self, x):
        """x (..., d_in) -> (a, b), each (..., d_hidden): h_t = a_t ⊙ h_{t-1} + b_t."""
        raise NotImplementedError

    def forward(self, x, h0=None, parallel: bool = True):
        """x: (B, T, d_in), h0: (B, d_hidden) or None (zeros) -> h: (B, T, d_hidden)."""
        a, b = self.coefficients(x)
        return (scan_parallel if parallel else scan_sequential)(a, b, h0)

    def step(self, x_t, h_prev=None):
        """One step: x_t (B, d_in), h_prev (B, d_hidden) or None -> h_t (B, d_hidden)."""
        a, b = self.coefficients(x_t)
        return b if h_prev is None else a * h_prev + b


class MinGRU(_MinRNN):
    """h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t with z_t = σ(W_z x_t), h̃_t = W_h x_t."""

    def __init__(self, d_in: int, d_hidden: int):
        super().__init__()
        self.linear_z = nn.Linear(d_in, d_hidden)          # W_z
        self.linear_h = nn.Linear(d_in, d_hidden)          # W_h

    def coefficients(self, x):
        z = torch.sigmoid(self.linear_z(x))                # update gate, from x_t only
        return 1 - z, z * self.linear_h(x)


class MinLSTM(_MinRNN):
    """h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t with f', i' the forget and input gates normalised to sum to 1."""

    def __init__(self, d_in: int, d_hidden: int):
        super().__init__()
        self.linear_f = nn.Linear(d_in, d_hidden)          # W_f
        self.linear_i = nn.Linear(d_in, d_hidden)          # W_i
        self.linear_h = nn.Linear(d_in, d_hidden)          # W_h

    def coefficients(self, x):
        f, i = torch.sigmoid(self.linear_f(x)), torch.sigmoid(self.linear_i(x))
        total = f + i
        return f / total, (i / total) * self.linear_h(x)
