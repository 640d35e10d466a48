"""The parallel scan equals the step-by-step recurrence, forward and backward (float64, 1e-6)."""
import pytest
import torch

from seqlab.scan import scan_parallel, scan_sequential


def _inputs(shape, seed=0, h0=False):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g, dtype=torch.float64).requires_grad_()      # decays in (0, 1)
    b = torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_()
    h = torch.randn((shape[0], *shape[2:]), generator=g, dtype=torch.float64).requires_grad_() if h0 else None
    return a, b, h


def _grads(fn, a, b, h0, w):
    inputs = [t for t in (a, b, h0) if t is not None]
    grads = torch.autograd.grad((fn(a, b, h0) * w).sum(), inputs, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads)]   # unused: zero gradient


@pytest.mark.parametrize("T", [1, 2, 3, 7, 8, 33, 100])
@pytest.mark.parametrize("with_h0", [False, True])
def test_parallel_equals_sequential_forward_and_backward(T, with_h0):
    a, b, h0 = _inputs((2, T, 3, 4), seed=T, h0=with_h0)
    hs, hp = scan_sequential(a, b, h0), scan_parallel(a, b, h0)
    assert hs.shape == hp.shape == b.shape
    assert (hs - hp).abs().max() < 1e-6
    w = torch.randn_like(hs)                                        # a random upstream gradient
    for gs, gp in zip(_grads(scan_sequential, a, b, h0, w), _grads(scan_parallel, a, b, h0, w)):
        assert (gs - gp).abs().max() < 1e-6


def test_sequential_is_the_recurrence_written_out():
    a = torch.tensor([[0.5, 2.0, 0.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 1.0, 3.0, -1.0]], dtype=torch.float64)
    h = [1.0]                                                       # h0 = 0: h_0 = b_0
    for t in range(1, 4):
        h.append(a[0, t].item() * h[-1] + b[0, t].item())
    assert scan_sequential(a, b).tolist() == [h] == scan_parallel(a, b).tolist()


def test_broadcast_decay_and_chunks_compose():
    """A shared decay a (1, T, D) broadcasts over the batch; scanning two halves, the second
    starting from the first's last state, gives the scan of the whole."""
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 40, 5, generator=g, dtype=torch.float64)
    b = torch.randn(3, 40, 5, generator=g, dtype=torch.float64)
    whole = scan_parallel(a, b)
    first = scan_parallel(a[:, :17], b[:, :17])
    second = scan_parallel(a[:, 17:], b[:, 17:], h0=first[:, -1])
    assert (torch.cat([first, second], 1) - whole).abs().max() < 1e-12
    assert (scan_sequential(a, b) - whole).abs().max() < 1e-12


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="time on dim 1"):
        scan_parallel(torch.rand(5), torch.rand(5))
    with pytest.raises(ValueError, match="broadcast"):
        scan_sequential(torch.rand(2, 4, 3), torch.rand(2, 4, 5))
