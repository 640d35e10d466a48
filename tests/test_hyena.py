"""Hyena: the FFT convolution equals the direct O(L^2) sum, and the operator is causal."""
import pytest
import torch

from seqlab.models.hyena import HyenaFilter, HyenaOperator, direct_conv, fft_conv


@pytest.mark.parametrize("L", [1, 2, 17, 64, 100])
def test_fft_conv_equals_direct_sum_forward_and_backward(L):
    g = torch.Generator().manual_seed(L)
    u = torch.randn(2, 3, L, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(3, L, generator=g, dtype=torch.float64, requires_grad=True)
    a, b = fft_conv(u, h), direct_conv(u, h)
    assert (a - b).abs().max() < 1e-6
    w = torch.randn_like(a)
    for x, y in zip(torch.autograd.grad((a * w).sum(), (u, h)), torch.autograd.grad((b * w).sum(), (u, h))):
        assert (x - y).abs().max() < 1e-6


def test_direct_conv_is_the_sum():
    u = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=torch.float64)
    h = torch.tensor([[1.0, 10.0, 100.0]], dtype=torch.float64)
    assert direct_conv(u, h).tolist() == [[[1.0, 12.0, 123.0]]]          # y_t = Σ_{s<=t} h_{t-s} u_s


def test_operator_is_causal():
    torch.manual_seed(0)
    op = HyenaOperator(d_model=8, max_len=40, order=2).double()
    u = torch.randn(2, 40, 8, dtype=torch.float64, requires_grad=True)
    y = op(u)
    assert y.shape == u.shape
    t = 17
    grad = torch.autograd.grad(y[:, t].sum(), u)[0]                     # how output t depends on each input
    assert grad[:, t + 1:].abs().max() < 1e-12                          # not at all on the future
    assert grad[:, :t + 1].abs().max() > 1e-3                           # and really on the past


def test_filter_length_is_checked():
    with pytest.raises(ValueError, match="max_len"):
        HyenaFilter(4, max_len=10)(11)
