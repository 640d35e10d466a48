"""seqlab.models.attention against torch (float64, 1e-6, forward and gradients)."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlab.models import attention as A

TOL = 1e-6
B, H, TQ, TK, D = 2, 3, 5, 7, 4


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def leaves(*shapes):
    return [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]


def clones(tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


def check_against(fn_ours, fn_ref, inputs):
    """Same output and same gradients of every input for a random weighting of the output."""
    ref_inputs = clones(inputs)
    out, ref = fn_ours(*inputs), fn_ref(*ref_inputs)
    assert (out - ref).abs().max().item() < TOL
    w = torch.randn_like(out)
    (w * out).sum().backward()
    (w * ref).sum().backward()
    for a, b in zip(inputs, ref_inputs):
        if a.grad is None:                     # an input this case does not use
            assert b.grad is None
            continue
        assert (a.grad - b.grad).abs().max().item() < TOL


def random_bool_mask(*shape):
    mask = torch.rand(*shape) > 0.3
    mask[..., 0] = True                        # every query can see at least one key
    return mask


@pytest.mark.parametrize("case", ["none", "bool", "float", "causal", "causal+bool", "cross-causal"])
def test_sdpa_matches_torch(case):
    T_k = TQ if case == "causal" or case == "causal+bool" else TK
    q, k, v = leaves((B, H, TQ, D), (B, H, T_k, D), (B, H, T_k, D + 1))
    mask, causal = None, False
    if case in ("bool", "causal+bool"):
        mask = random_bool_mask(B, 1, TQ, T_k)
    if case == "float":
        mask = torch.randn(TQ, T_k, dtype=torch.float64)
    if case in ("causal", "causal+bool", "cross-causal"):
        causal = True
    ref_mask = mask
    if case == "causal+bool":                  # torch takes one or the other: combine them for it
        ref_mask, causal_ref = mask & A.causal_mask(TQ, T_k), False
    elif case == "cross-causal":               # torch's is_causal aligns top-left; ours bottom-right (a cache)
        ref_mask, causal_ref = A.causal_mask(TQ, T_k), False
    else:
        causal_ref = causal
    check_against(
        lambda q, k, v: A.scaled_dot_product_attention(q, k, v, mask, causal)[0],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask, is_causal=causal_ref),
        [q, k, v])


def test_sdpa_weights_are_distributions_over_allowed_keys():
    q, k, v = (t.detach() for t in leaves((B, H, TQ, D), (B, H, TK, D), (B, H, TK, D)))
    mask = random_bool_mask(B, 1, TQ, TK)
    _, w = A.scaled_dot_product_attention(q, k, v, mask)
    assert torch.allclose(w.sum(-1), torch.ones(B, H, TQ, dtype=torch.float64))
    assert (w.masked_select(~mask.expand_as(w)) == 0).all()


def test_fully_masked_query_gives_zeros_not_nan():
    q, k, v = leaves((1, 1, 2, D), (1, 1, 3, D), (1, 1, 3, D))
    mask = torch.tensor([[True, False, True], [False, False, False]])
    out, w = A.scaled_dot_product_attention(q, k, v, mask)
    assert torch.equal(out[0, 0, 1], torch.zeros(D, dtype=torch.float64)) and (w[0, 0, 1] == 0).all()
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_masks():
    assert torch.equal(A.causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    # two new queries after three cached keys see everything up to themselves
    assert torch.equal(A.causal_mask(2, 5), torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))
    assert torch.equal(A.padding_mask(torch.tensor([2, 0, 3]), 3),
                       torch.tensor([[1, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=torch.bool))


@pytest.mark.parametrize("kind", ["self", "self-causal", "cross-padded"])
def test_multi_head_matches_torch(kind):
    d_model, heads = 12, 3
    ref = nn.MultiheadAttention(d_model, heads, batch_first=True).double()
    with torch.no_grad():                       # torch zero-initialises biases: make them matter
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    ours = A.MultiHeadAttention(d_model, heads).double()
    ours.load_state_dict(ref.state_dict())      # same parameter names and shapes

    T_k = TQ if kind.startswith("self") else TK
    query, = leaves((B, TQ, d_model))
    memory, = leaves((B, T_k, d_model))
    pad, attn_mask, causal = None, None, False
    if kind == "cross-padded":
        pad = ~A.padding_mask(torch.tensor([T_k, 3]), T_k)            # True = padding, torch's way
    if kind == "self-causal":
        causal = True
        attn_mask = ~A.causal_mask(TQ)                                  # torch: True = blocked

    def run_ours(qry, mem):
        kv = qry if kind.startswith("self") else mem
        return ours(qry, kv, kv, key_padding_mask=pad, causal=causal)[0]

    def run_ref(qry, mem):
        kv = qry if kind.startswith("self") else mem
        return ref(qry, kv, kv, key_padding_mask=pad, attn_mask=attn_mask, need_weights=False)[0]

    inputs = [query, memory]
    check_against(run_ours, run_ref, inputs)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        assert (p.grad - q.grad).abs().max().item() < TOL, name
    # the averaged weights equal torch's need_weights output
    kv = query if kind.startswith("self") else memory
    _, w = ours(query, kv, kv, key_padding_mask=pad, causal=causal, average_weights=True)
    _, w_ref = ref(query, kv, kv, key_padding_mask=pad, attn_mask=attn_mask, need_weights=True)
    assert (w - w_ref).abs().max().item() < TOL


def test_multi_head_shape_errors():
    with pytest.raises(ValueError, match="divisible"):
        A.MultiHeadAttention(10, 3)


def test_sinusoidal_encoding_follows_the_formula():
    pe = A.SinusoidalPositionalEncoding(8, max_len=50)
    x = torch.zeros(2, 10, 8)
    enc = pe(x, offset=3)[0]
    assert enc.shape == (10, 8)
    pos, i = 7, 1                                           # absolute position 10, pair i = 1
    angle = (pos + 3) / 10000 ** (2 * i / 8)
    assert abs(enc[pos, 2 * i].item() - math.sin(angle)) < 1e-6
    assert abs(enc[pos, 2 * i + 1].item() - math.cos(angle)) < 1e-6
    # each sin/cos pair has norm 1, so every position's encoding has norm sqrt(D/2)
    assert torch.allclose(enc.norm(dim=-1), torch.full((10,), 2.0), atol=1e-6)
    with pytest.raises(ValueError, match="max_len"):
        pe(torch.zeros(1, 48, 8), offset=3)


def test_sinusoidal_dot_products_depend_only_on_the_offset():
    pe = A.SinusoidalPositionalEncoding(16, max_len=100).pe.double()
    # PE(p) . PE(p + k) = sum_i cos(k w_i): the same for every p
    d5 = torch.stack([pe[p] @ pe[p + 5] for p in range(0, 60, 7)])
    assert torch.allclose(d5, d5[0].expand_as(d5), atol=1e-5)


def test_learned_encoding_is_per_position_and_bounded():
    pe = A.LearnedPositionalEncoding(6, max_len=8)
    enc = pe(torch.zeros(1, 5, 6), offset=2)
    assert torch.equal(enc[0], pe.embedding.weight[2:7])
    with pytest.raises(ValueError, match="max_len=8"):
        pe(torch.zeros(1, 7, 6), offset=2)
