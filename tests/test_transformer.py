"""Tests for seqlab.models.transformer: layers == torch's with copied weights (float64, forward and
gradients), the stacks == torch.nn.TransformerEncoder/Decoder, cached decoding == full recompute,
label smoothing == torch's, the warm-up schedule."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlab.data.translation import make_batch
from seqlab.generate import beam_search, greedy_decode
from seqlab.models.transformer import (DecoderLayer, EncoderLayer, Transformer, label_smoothed_cross_entropy,
                                       noam_lr)

D, H, FF = 16, 4, 24
TOL = 1e-6


pytestmark = pytest.mark.usefixtures("one_thread")


def assert_close(a, b, what):
    err = (a - b).abs().max().item()
    assert err < TOL, f"{what}: max error {err:.2e}"


def grads_match(ours: nn.Module, ref: nn.Module, inputs):
    for (name, p), (ref_name, q) in zip(ours.named_parameters(), ref.named_parameters()):
        assert name == ref_name
        assert_close(p.grad, q.grad, f"grad of {name}")
    for x in inputs:
        assert_close(x.grad, x.ref_grad, "input grad")


def pad_mask(lengths, T):
    """(B, T) True = pad, torch's convention."""
    return torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]


def twin_inputs(*shapes):
    """Random float64 inputs, and detached copies for the reference, both requiring grad."""
    ours = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]
    refs = [x.detach().clone().requires_grad_() for x in ours]
    return ours, refs


# train() mode with dropout 0: torch's layers then take their plain Python path (the
# eval-mode "fast path" fuses ops and returns zeros at padded positions).
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_equals_torch(norm_first):
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first).double()
    ours = EncoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first).double()
    ours.load_state_dict(ref.state_dict())
    (x,), (x_ref,) = twin_inputs((3, 5, D))
    mask = pad_mask([5, 3, 1], 5)
    out, out_ref = ours(x, mask), ref(x_ref, src_key_padding_mask=mask)
    real = ~mask
    assert_close(out[real], out_ref[real], "encoder output")
    w = torch.randn_like(out)
    (out[real] * w[real]).sum().backward()
    (out_ref[real] * w[real]).sum().backward()
    x.ref_grad = x_ref.grad
    grads_match(ours, ref, [x])


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_equals_torch(norm_first):
    torch.manual_seed(1)
    ref = nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first).double()
    ours = DecoderLayer(D, H, FF, dropout=0.0, norm_first=norm_first).double()
    ours.load_state_dict(ref.state_dict())
    (y, mem), (y_ref, mem_ref) = twin_inputs((3, 4, D), (3, 6, D))
    mem_mask = pad_mask([6, 2, 4], 6)
    causal = nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64)
    out = ours(y, mem, memory_pad_mask=mem_mask)
    out_ref = ref(y_ref, mem_ref, tgt_mask=causal, memory_key_padding_mask=mem_mask)
    assert_close(out, out_ref, "decoder output")
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (out_ref * w).sum().backward()
    y.ref_grad, mem.ref_grad = y_ref.grad, mem_ref.grad
    grads_match(ours, ref, [y, mem])


def torch_twin(model: Transformer):
    """torch.nn.TransformerEncoder/Decoder holding our weights (final norms only for pre-LN, as ours)."""
    first = model.encoder_layers[0]
    kw = dict(d_model=D, nhead=H, dim_feedforward=FF, dropout=0.0, batch_first=True, norm_first=model.norm_first)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), len(model.encoder_layers),
                                norm=nn.LayerNorm(D) if model.norm_first else None, enable_nested_tensor=False)
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), len(model.decoder_layers),
                                norm=nn.LayerNorm(D) if model.norm_first else None)
    enc, dec = enc.double(), dec.double()
    for ours, theirs in zip(model.encoder_layers, enc.layers):
        theirs.load_state_dict(ours.state_dict())
    for ours, theirs in zip(model.decoder_layers, dec.layers):
        theirs.load_state_dict(ours.state_dict())
    if model.norm_first:
        enc.norm.load_state_dict(model.encoder_norm.state_dict())
        dec.norm.load_state_dict(model.decoder_norm.state_dict())
    assert first.norm_first == model.norm_first
    return enc.train(), dec.train()


def tiny(norm_first=False, dropout=0.0):
    torch.manual_seed(2)
    return Transformer(src_vocab=20, tgt_vocab=15, d_model=D, n_heads=H, num_encoder_layers=2,
                       num_decoder_layers=2, d_ff=FF, dropout=dropout, norm_first=norm_first).double()


def batch():
    return make_batch([[5, 6, 7, 8, 9], [10, 11], [4, 4, 4]], [[5, 6, 7], [8], [9, 9, 9, 9]])


@pytest.mark.parametrize("norm_first", [False, True])
def test_stacks_equal_torch_transformer_encoder_and_decoder(norm_first):
    model = tiny(norm_first)
    enc, dec = torch_twin(model)
    (src, src_mask, tgt_in), _ = batch()
    logits = model(src, src_mask, tgt_in)
    x = model.embed(model.src_embed, src)
    memory = enc(x, src_key_padding_mask=~src_mask)
    y = model.embed(model.tgt_embed, tgt_in)
    causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.size(1), dtype=torch.float64)
    ref = model.generator(dec(y, memory, tgt_mask=causal, memory_key_padding_mask=~src_mask))
    real = tgt_in != 0
    assert_close(logits[real], ref[real], "logits")
    # gradients reach every parameter of ours and equal torch's for the layers
    w = torch.randn_like(logits)
    (logits[real] * w[real]).sum().backward()
    (ref[real] * w[real]).sum().backward()
    for ours, theirs in zip(list(model.encoder_layers) + list(model.decoder_layers), list(enc.layers) + list(dec.layers)):
        for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert_close(p.grad, q.grad, name)


def test_post_ln_has_no_final_norm_pre_ln_has_one():
    assert isinstance(tiny(False).encoder_norm, nn.Identity)
    assert isinstance(tiny(True).decoder_norm, nn.LayerNorm)


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_equals_full_recompute(norm_first):
    model = tiny(norm_first).eval()
    (src, src_mask, tgt_in), _ = batch()
    full = model(src, src_mask, tgt_in)
    state = model.encode(src, src_mask)
    mk = [c["mk"] for c in state["layers"]]
    for t in range(tgt_in.size(1)):
        logits, new = model.decode_step(tgt_in[:, t], state)
        err = (logits - full[:, t]).abs().max().item()
        assert err < 1e-10, f"step {t}: {err:.1e}"
        assert all(c["k"].shape == (3, H, t + 1, D // H) for c in new["layers"])      # one more key per step
        assert all(c["mk"] is m for c, m in zip(new["layers"], mk))                    # memory projected once
        assert state["layers"][0]["k"].size(2) == t                                    # old state untouched
        attn = new["attn"]
        assert torch.allclose(attn.sum(-1), torch.ones(3, dtype=torch.float64))
        assert (attn[~src_mask] == 0).all()
        state = new


def test_padding_does_not_change_a_sentence():
    model = tiny(True).eval()
    (src, src_mask, tgt_in), _ = batch()
    batched = model(src, src_mask, tgt_in)
    for b in range(3):
        n, m = int(src_mask[b].sum()), int((tgt_in[b] != 0).sum())
        alone = model(src[b:b + 1, :n], src_mask[b:b + 1, :n], tgt_in[b:b + 1, :m])
        assert (alone - batched[b:b + 1, :m]).abs().max() < 1e-10


def test_decoders_run_on_the_transformer():
    model = tiny(False).eval()
    (src, src_mask, _), _ = batch()
    greedy = greedy_decode(model, src, src_mask, max_len=6)
    assert beam_search(model, src, src_mask, beam_size=1, max_len=6) == greedy
    assert len(beam_search(model, src, src_mask, beam_size=3, max_len=6)) == 3


def test_tied_output_layer_shares_the_target_embedding():
    model = tiny()
    assert model.generator.weight is model.tgt_embed.weight
    untied = Transformer(20, 15, D, H, 1, 1, FF, tie_embeddings=False)
    assert untied.generator.weight is not untied.tgt_embed.weight


def test_label_smoothing_equals_torch():
    torch.manual_seed(3)
    logits = torch.randn(4, 5, 11, dtype=torch.float64, requires_grad=True)
    ref_logits = logits.detach().clone().requires_grad_()
    target = torch.randint(1, 11, (4, 5))
    target[0, 3:] = 0                                        # padding, ignored
    ours = label_smoothed_cross_entropy(logits, target, smoothing=0.1, ignore_index=0)
    ref = F.cross_entropy(ref_logits.flatten(0, 1), target.flatten(), label_smoothing=0.1, ignore_index=0)
    assert abs(ours.item() - ref.item()) < 1e-12
    ours.backward()
    ref.backward()
    assert (logits.grad - ref_logits.grad).abs().max() < 1e-12
    plain = label_smoothed_cross_entropy(logits, target, smoothing=0.0)
    assert abs(plain.item() - F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=0).item()) < 1e-12


def test_noam_schedule_peaks_at_warmup():
    lrs = [noam_lr(n, 512, 4000) for n in range(1, 20001)]
    assert max(lrs) == pytest.approx((512 * 4000) ** -0.5) and lrs.index(max(lrs)) == 3999
    assert noam_lr(16000, 512, 4000) == pytest.approx(noam_lr(4000, 512, 4000) / 2)   # 1/sqrt(n) decay
    with pytest.raises(ValueError):
        noam_lr(0, 512, 4000)


def test_learns_to_copy():
    """A two-layer Transformer learns to copy short sequences within a few hundred steps."""
    from seqlab.train import TrainConfig, train
    torch.manual_seed(0)
    model = Transformer(12, 12, d_model=32, n_heads=4, num_encoder_layers=1, num_decoder_layers=1,
                        d_ff=64, dropout=0.0)

    def get_batch(split, n=64):
        seqs = [torch.randint(4, 12, (int(torch.randint(3, 7, ())),)).tolist() for _ in range(n)]
        return make_batch(seqs, seqs)

    loss = lambda lg, y: label_smoothed_cross_entropy(lg, y, smoothing=0.0)
    train(model, get_batch, TrainConfig(max_steps=300, lr=3e-3, warmup_steps=30, schedule="inverse_sqrt",
                                        weight_decay=0.0, eval_every=0, eval_batches=1, progress=False),
          loss_fn=loss)
    (src, mask, _), tgt_out = get_batch("val", 100)
    out = greedy_decode(model, src, mask, max_len=8)
    targets = [row[:row.index(3)] for row in tgt_out.tolist()]
    assert sum(o == t for o, t in zip(out, targets)) / 100 > 0.9
