"""Continuous Thought Machine (seqlab.models.ctm): shapes, causality over ticks, synchronisation,
neuron-level models, the CTM loss, adaptive computation, and that a tiny CTM learns."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlab.models.ctm import (CTM, CTMConfig, adaptive_predict, certainty, ctm_loss, most_certain,
                               parity_batch)

SMALL = dict(vocab_size=2, seq_len=6, n_outputs=6, n_classes=2, d_model=24, memory=4, d_nlm=5, ticks=7,
             d_input=16, n_head=2, n_sync_out=12, n_sync_action=10, n_self_pairs=3)


def small(seed=0, **kw):
    torch.manual_seed(seed)
    return CTM(CTMConfig(**{**SMALL, **kw}))


def nudge(model, scale=0.3, seed=1):
    """Move every weight off its initial value (decays start at exactly 0 otherwise)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
            if name.startswith("decay_"):
                p.abs_()                               # decays r >= 0
    return model


def test_shapes_and_traces():
    model = small()
    x, y = parity_batch(3, 6, torch.Generator().manual_seed(0))
    logits, cert, tr = model(x, return_traces=True)
    assert logits.shape == (3, 7, 6, 2) and cert.shape == (3, 7)
    assert tr["z"].shape == (3, 8, 24) and tr["attention"].shape == (3, 7, 6)
    assert tr["sync_out"].shape == (3, 7, 12) and tr["sync_action"].shape == (3, 7, 10)
    assert torch.allclose(tr["attention"].sum(-1), torch.ones(3, 7))
    assert ((cert >= 0) & (cert <= 1)).all()
    assert (y == x.cumsum(1) % 2).all() and y.shape == (3, 6)
    # the self-pairs are the first n_self_pairs pairs, and only those are forced
    assert (model.out_left[:3] == model.out_right[:3]).all()


def test_determinism():
    x, _ = parity_batch(4, 6, torch.Generator().manual_seed(0))
    a, b = small(seed=5)(x)[0], small(seed=5)(x)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, small(seed=6)(x)[0])


def test_fewer_ticks_reproduce_the_first_ticks():
    model = nudge(small()).double()
    x, _ = parity_batch(4, 6, torch.Generator().manual_seed(0))
    long_logits, long_cert = model(x, ticks=9)
    short_logits, short_cert = model(x, ticks=4)
    assert torch.equal(short_logits, long_logits[:, :4]) and torch.equal(short_cert, long_cert[:, :4])
    assert not torch.allclose(long_logits[:, 3], long_logits[:, 4])    # the ticks do differ


def test_tick_t_output_has_no_gradient_from_later_ticks():
    """Add a zero tensor delta_k to the synapse output at tick k; d y^t / d delta_k = 0 exactly for k > t."""
    model = nudge(small()).double()
    T, t = 7, 3                                        # look at the output of tick t (0-based)
    deltas = [torch.zeros(2, SMALL["d_model"], dtype=torch.float64, requires_grad=True) for _ in range(T)]
    calls = []

    def hook(module, inputs, output):
        calls.append(None)
        return output + deltas[len(calls) - 1]

    handle = model.synapse.register_forward_hook(hook)
    x, _ = parity_batch(2, 6, torch.Generator().manual_seed(0))
    logits, _ = model(x)
    handle.remove()
    assert len(calls) == T
    grads = torch.autograd.grad(logits[:, t].sum(), deltas, allow_unused=True)
    for k, gk in enumerate(grads):
        if k <= t:
            assert gk is not None and gk.abs().max() > 1e-8, f"tick {t} should depend on tick {k}"
        else:
            assert gk is None or gk.abs().max() == 0, f"tick {t} must not depend on tick {k}"


def test_recursive_synchronisation_equals_direct_sum():
    torch.manual_seed(0)
    B, T, D, P = 3, 11, 9, 7
    Z = torch.randn(B, T, D, dtype=torch.float64)
    left, right = torch.randint(0, D, (P,)), torch.randint(0, D, (P,))
    left[:2] = right[:2]
    r = torch.rand(P, dtype=torch.float64) * 2
    r[0] = 0.0
    alpha = beta = None
    for t in range(T):
        S, alpha, beta = CTM.sync_update(Z[:, t], left, right, r, alpha, beta)
        w = torch.exp(-r[None, :] * (t - torch.arange(t + 1, dtype=torch.float64))[:, None])   # (t+1, P)
        direct = (w * Z[:, :t + 1, left] * Z[:, :t + 1, right]).sum(1) / w.sum(0).sqrt()
        assert (S - direct).abs().max() < 1e-10
    # and the same through the model: the traced S_out equals the direct sum over the z trace
    model = nudge(small()).double()
    x, _ = parity_batch(2, 6, torch.Generator().manual_seed(0))
    _, _, tr = model(x, return_traces=True)
    z, r = tr["z"][:, 1:], model.decay_out.detach().clamp(0, 15)
    T = z.size(1)
    w = torch.exp(-r[None, :] * (T - 1 - torch.arange(T, dtype=torch.float64))[:, None])
    direct = (w * z[:, :, model.out_left] * z[:, :, model.out_right]).sum(1) / w.sum(0).sqrt()
    assert (tr["sync_out"][:, -1] - direct).abs().max() < 1e-10


def test_nlm_einsum_equals_loop_of_linears():
    model = nudge(small()).double()
    nlm, D, M, H = model.nlm, SMALL["d_model"], SMALL["memory"], SMALL["d_nlm"]
    A = torch.randn(5, D, M, dtype=torch.float64)
    loop = torch.zeros(5, D, dtype=torch.float64)
    for d in range(D):
        first, second = nn.Linear(M, H).double(), nn.Linear(H, 1).double()
        with torch.no_grad():
            first.weight.copy_(nlm.w1[d].T); first.bias.copy_(nlm.b1[d])
            second.weight.copy_(nlm.w2[d][None]); second.bias.copy_(nlm.b2[d][None])
        loop[:, d] = second(F.silu(first(A[:, d])))[:, 0]
    assert (nlm(A) - loop).abs().max() < 1e-12


def test_loss_picks_min_loss_and_max_certainty_ticks():
    # 2 samples, 3 ticks, 1 output, 2 classes; the target is class 0
    big = 4.0
    logits = torch.tensor([[[[big, 0.0]], [[0.0, 0.0]], [[-big, 0.0]]],          # sample 0: best tick 0
                           [[[0.0, 0.0]], [[0.5, 0.0]], [[-2 * big, 0.0]]]])     # sample 1: best 1, surest 2
    y = torch.zeros(2, 1, dtype=torch.long)
    cert = certainty(logits)
    loss, (t1, t2) = ctm_loss(logits, y, cert, return_ticks=True)
    assert t1.tolist() == [0, 1] and t2.tolist() == [0, 2]
    ce = lambda l: F.cross_entropy(torch.tensor([l]), torch.tensor([0])).item()
    want = ((ce([big, 0]) + ce([big, 0])) / 2 + (ce([0.5, 0]) + ce([-2 * big, 0])) / 2) / 2
    assert math.isclose(loss.item(), want, rel_tol=1e-6)
    assert math.isclose(cert[0, 1].item(), 0.0, abs_tol=1e-7)               # uniform -> certainty 0


def test_adaptive_predict_thresholds():
    model = nudge(small())
    x, _ = parity_batch(8, 6, torch.Generator().manual_seed(0))
    logits, cert = model(x)
    preds, used = adaptive_predict(model, x, threshold=0.0)
    assert (used == 1).all() and torch.equal(preds, logits[:, 0].argmax(-1))
    preds, used = adaptive_predict(model, x, threshold=1.01)                # never reached: the last tick
    assert (used == 7).all() and torch.equal(preds, logits[:, -1].argmax(-1))
    mid = cert.median().item()
    _, used = adaptive_predict(model, x, threshold=mid)
    for b in range(8):
        k = used[b].item() - 1
        assert cert[b, k] >= mid or k == 6
        assert (cert[b, :k] < mid).all()
    assert most_certain(logits, cert).shape == (8, 6)


def test_tiny_ctm_learns_parity_of_length_3():
    """A tiny CTM reaches >= 95% per-position accuracy on fresh running-parity sequences of length 3."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                           # tiny matrices: one thread is faster (a few seconds)
    try:
        torch.manual_seed(0)
        cfg = CTMConfig(seq_len=3, n_outputs=3, d_model=32, memory=4, d_nlm=8, ticks=4, d_input=32, n_head=2,
                        n_sync_out=32, n_sync_action=16, n_self_pairs=4)
        model = CTM(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
        g = torch.Generator().manual_seed(0)
        for step in range(100):
            x, y = parity_batch(64, 3, g)
            logits, cert = model(x)
            loss = ctm_loss(logits, y, cert)
            opt.zero_grad(); loss.backward(); opt.step()
        x, y = parity_batch(512, 3, torch.Generator().manual_seed(123))
        with torch.no_grad():
            logits, cert = model(x)
    finally:
        torch.set_num_threads(threads)
    acc = (most_certain(logits, cert) == y).float().mean().item()
    assert acc >= 0.95, f"accuracy {acc:.3f}"
