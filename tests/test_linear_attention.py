"""Retention and linear attention: parallel, recurrent and chunked forms agree (float64, 1e-6)."""
import pytest
import torch

from seqlab.models.linear_attention import MultiScaleRetention, linear_attention, retention


def _qkv(T=45, seed=0, dk=5, dv=7):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, T, d, generator=g, dtype=torch.float64, requires_grad=True) for d in (dk, dk, dv)]


def _explicit(q, k, v, gamma):
    """The definition, one (t, s) pair at a time."""
    B, H, T, _ = q.shape
    out = torch.zeros(B, H, T, v.size(-1), dtype=q.dtype)
    for h in range(H):
        for t in range(T):
            for s in range(t + 1):
                w = gamma[h] ** (t - s) * (q[:, h, t] * k[:, h, s]).sum(-1, keepdim=True)
                out[:, h, t] += w * v[:, h, s]
    return out


def test_parallel_is_the_definition():
    q, k, v = _qkv(T=9)
    gamma = torch.tensor([1.0, 0.9, 0.5], dtype=torch.float64)
    assert (retention(q, k, v, gamma) - _explicit(q, k, v, gamma)).abs().max() < 1e-12


@pytest.mark.parametrize("chunk", [1, 8, 16, 45, 64])
@pytest.mark.parametrize("gamma", [1.0, 0.97, "per head"])
def test_three_forms_agree_forward_and_backward(chunk, gamma):
    q, k, v = _qkv()
    if gamma == "per head":
        gamma = torch.tensor([0.99, 0.9, 0.6], dtype=torch.float64)
    outs = [retention(q, k, v, gamma, mode=m, chunk=chunk) for m in ("parallel", "recurrent", "chunked")]
    w = torch.randn_like(outs[0])
    grads = [torch.autograd.grad((o * w).sum(), (q, k, v)) for o in outs]
    for o, gr in zip(outs[1:], grads[1:]):
        assert (o - outs[0]).abs().max() < 1e-6
        assert max((a - b).abs().max().item() for a, b in zip(gr, grads[0])) < 1e-6


def test_linear_attention_forms_agree_and_match_the_formula():
    q, k, v = _qkv(T=20)
    ref = linear_attention(q, k, v)
    for mode in ("recurrent", "chunked"):
        assert (linear_attention(q, k, v, mode=mode, chunk=6) - ref).abs().max() < 1e-6
    fq, fk = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    scores = (fq @ fk.transpose(-2, -1)).tril()                     # φ(q_t)·φ(k_s), s <= t
    assert (ref - (scores / scores.sum(-1, keepdim=True)) @ v).abs().max() < 1e-6


def test_unknown_mode_is_an_error():
    q, k, v = _qkv(T=4)
    with pytest.raises(ValueError, match="mode"):
        retention(q, k, v, mode="fft")


def test_multi_scale_retention_is_causal_and_its_modes_agree():
    torch.manual_seed(0)
    msr = MultiScaleRetention(24, n_heads=3).double()
    x = torch.randn(2, 50, 24, dtype=torch.float64, requires_grad=True)
    y = msr(x)
    msr.mode, msr.chunk = "chunked", 16
    assert (msr(x) - y).abs().max() < 1e-10
    assert msr.gamma.tolist() == [1 - 2 ** -5, 1 - 2 ** -6, 1 - 2 ** -7]
    y[:, 20].sum().backward()                                     # position 20 sees only positions <= 20
    assert x.grad[:, 21:].abs().max() == 0 and x.grad[:, :21].abs().max() > 0
    with pytest.raises(ValueError, match="divisible"):
        MultiScaleRetention(10, n_heads=3)
