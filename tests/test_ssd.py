"""Mamba-2's SSD: the sequential recurrence, the quadratic (masked attention) form and the chunked
algorithm are equal, forward and backward (float64, 1e-6)."""
import pytest
import torch

from seqlab.models.mamba import ssd


def _inputs(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, H, P, N = 2, 3, 4, 5
    x = torch.randn(b, T, H, P, generator=g, dtype=torch.float64)
    log_a = -torch.rand(b, T, H, generator=g, dtype=torch.float64)             # decays a_t in (e^-1, 1]
    B = torch.randn(b, T, H, N, generator=g, dtype=torch.float64)
    C = torch.randn(b, T, H, N, generator=g, dtype=torch.float64)
    return [t.requires_grad_() for t in (x, log_a, B, C)]


@pytest.mark.parametrize("T,chunk", [(1, 4), (16, 4), (37, 8), (37, 64), (50, 1)])
def test_three_forms_agree(T, chunk):
    inputs = _inputs(T, seed=T)
    outs = [ssd(*inputs, mode=m, chunk=chunk) for m in ("sequential", "quadratic", "chunked")]
    w = torch.randn_like(outs[0])
    grads = [torch.autograd.grad((o * w).sum(), inputs) for o in outs]
    for o, g in zip(outs[1:], grads[1:]):
        assert o.shape == outs[0].shape
        assert (o - outs[0]).abs().max() < 1e-6
        assert max((a - b).abs().max().item() for a, b in zip(g, grads[0])) < 1e-6


def test_no_decay_is_unnormalised_linear_attention():
    x, log_a, B, C = _inputs(12)
    y = ssd(x, torch.zeros_like(log_a), B, C, mode="quadratic")
    scores = torch.einsum("bthn,bshn->bhts", C, B).tril()
    assert (y - torch.einsum("bhts,bshp->bthp", scores, x)).abs().max() < 1e-12


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="mode"):
        ssd(*_inputs(4), mode="fft")
