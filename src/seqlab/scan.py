"""The linear recurrence h_t = a_t * h_{t-1} + b_t, sequentially and as a parallel scan (Part VI).

    h = scan_sequential(a, b)            # T steps, one after another: the RNN way
    h = scan_parallel(a, b)              # ceil(log2 T) steps over the whole sequence at once
    h = scan_parallel(a, b, h0=h_prev)   # carry a state in from an earlier chunk

a, b: (B, T, ...) with time on dim 1, the same shape (or a broadcastable to b); the
product is elementwise. h: the shape of b, with h[:, t] = a[:, t] * h[:, t-1] + b[:, t]
and h[:, -1] = h0 (zero when not given).

Why a scan works. One step is an affine map of the state, h -> a h + b. Doing the
step (a1, b1) and then (a2, b2) is again an affine map,

    (a1, b1) then (a2, b2)  =  (a2 a1,  a2 b1 + b2),

and "then" is associative: grouping steps in any order gives the same map. So the
maps for steps 0..t can be combined in a tree instead of a chain. Hillis and Steele
(1986): after round k (k = 0, 1, 2, ...) position t holds the map of the 2^(k+1)
steps ending at t, built from its own map and the one 2^k positions earlier. After
ceil(log2 T) rounds every position holds the map from the start, and with h_{-1} = h0
its b part *is* h_t. Each round is a few whole-tensor operations, so autograd
differentiates it like any other code, and on a GPU the T positions run in parallel.

This version does O(T log T) work; Blelloch's (1990) work-efficient scan does O(T) in
twice as many rounds. Selective state-space models (Mamba), minGRU / minLSTM and
linear attention are all this recurrence with different a and b.
"""
from __future__ import annotations

import torch


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if b.dim() < 2:
        raise ValueError(f"b must be (B, T, ...) with time on dim 1, got shape {tuple(b.shape)}")
    try:
        fits = torch.broadcast_shapes(a.shape, b.shape) == b.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"a {tuple(a.shape)} must have b's shape {tuple(b.shape)} or broadcast to it")


def scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t for t = 0..T-1, one step at a time. h0: (B, ...) or None (zeros)."""
    _check(a, b)
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    out = []
    # unbind, not a[:, t]: the backward of each a[:, t] would write into a full-size zero tensor,
    # T times over (O(T^2) work); unbind's backward stacks the T gradients once
    for a_t, b_t in zip(a.expand_as(b).unbind(1), b.unbind(1)):
        h = a_t * h + b_t                                           # h_t = a_t h_{t-1} + b_t
        out.append(h)
    return torch.stack(out, dim=1)


def scan_parallel(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """The same h as :func:`scan_sequential`, by the Hillis-Steele scan: ceil(log2 T) rounds."""
    _check(a, b)
    a = a.expand_as(b)
    if h0 is not None:
        b = torch.cat([(a[:, :1] * h0.unsqueeze(1) + b[:, :1]), b[:, 1:]], dim=1)   # fold h0 into step 0
    T, d = b.size(1), 1
    while d < T:
        # position t holds the map of steps t-d+1..t; it absorbs the one held at t-d (the d steps before):
        # (a, b)[t] <- (a[t] a[t-d],  a[t] b[t-d] + b[t]); positions < d already start at step 0
        b = torch.cat([b[:, :d], a[:, d:] * b[:, :-d] + b[:, d:]], dim=1)
        a = torch.cat([a[:, :d], a[:, d:] * a[:, :-d]], dim=1)
        d *= 2
    return b
