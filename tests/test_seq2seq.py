"""Tests for seqlab.models.seq2seq and the translation decoders in seqlab.generate."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from seqlab.data import Translation, TranslationBatcher
from seqlab.data.translation import BOS, EOS, make_batch
from seqlab.generate import beam_search, greedy_decode, translate
from seqlab.models.seq2seq import AdditiveAttention, Seq2Seq
from seqlab.train import TrainConfig, train


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(attention=True, **kw):
    torch.manual_seed(0)
    return Seq2Seq(src_vocab=20, tgt_vocab=15, emb_size=8, hidden_size=12, attention=attention,
                   attn_size=10, dropout=0.0, **kw).double().eval()


def padded_batch():
    return make_batch([[5, 6, 7, 8, 9], [10, 11], [4, 4, 4]], [[5, 6, 7], [8], [9, 9, 9, 9]])


def test_additive_attention_matches_its_equations():
    torch.manual_seed(0)
    att = AdditiveAttention(query_size=4, key_size=6, attn_size=5).double()
    s, h = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 3, 6, dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    with torch.no_grad():
        c, a = att(s, att.project_keys(h), h, mask)
    W, U, b, v = (p.detach() for p in (att.W.weight, att.U.weight, att.U.bias, att.v.weight[0]))
    for i in range(2):
        e = [float(v @ torch.tanh(W @ s[i] + U @ h[i, j] + b)) for j in range(3)]   # e_j = v.tanh(Ws + Uh_j)
        n = int(mask[i].sum())
        z = sum(math.exp(x) for x in e[:n])
        expected = [math.exp(x) / z for x in e[:n]] + [0.0] * (3 - n)
        assert a[i].tolist() == pytest.approx(expected, abs=1e-12)
        assert torch.allclose(c[i], (a[i, :, None] * h[i]).sum(0), atol=1e-12)      # c = sum_j a_j h_j


@pytest.mark.parametrize("attention", [False, True])
def test_shapes_and_attention_weights(attention):
    model = tiny(attention)
    (src, mask, tgt_in), tgt_out = padded_batch()
    logits, attn = model(src, mask, tgt_in, return_attention=True)
    assert logits.shape == (3, 5, 15) and attn.shape == (3, 5, 6)
    if attention:
        assert torch.allclose(attn.sum(-1), torch.ones(3, 5, dtype=torch.float64))
        assert (attn.masked_select(~mask[:, None, :].expand_as(attn)) == 0).all()   # never on padding
    else:
        assert (attn == 0).all()                                   # no attention: nothing to show


@pytest.mark.parametrize("attention", [False, True])
def test_padding_does_not_change_a_sentence(attention):
    model = tiny(attention)
    (src, mask, tgt_in), _ = padded_batch()
    batched = model(src, mask, tgt_in)
    for b in range(3):
        n = int(mask[b].sum())
        alone = model(src[b:b + 1, :n], mask[b:b + 1, :n], tgt_in[b:b + 1])
        assert torch.allclose(batched[b:b + 1], alone, atol=1e-12), b


@pytest.mark.parametrize("attention", [False, True])
def test_bottleneck_without_attention_only_the_final_states_reach_the_decoder(attention):
    """Without attention the decoder reads c = [->h_S ; <-h_1] only: the per-token states
    h_j get no gradient at all. With attention every h_j does."""
    model = tiny(attention)
    (src, mask, tgt_in), tgt_out = padded_batch()
    state = model.encode(src, mask)
    h = state["h"]                                                 # (B, S, 2H), the per-token states
    h.retain_grad()
    logits = []
    for t in range(tgt_in.size(1)):
        step, state = model.decode_step(tgt_in[:, t], state)
        logits.append(step)
    F.cross_entropy(torch.stack(logits, 1).flatten(0, 1), tgt_out.flatten(), ignore_index=0).backward()
    if attention:
        assert h.grad is not None and h.grad[mask].abs().sum(-1).min() > 0
    else:
        assert h.grad is None


@pytest.mark.parametrize("attention", [False, True])
def test_forward_equals_decode_step_by_step(attention):
    """forward() batches the output layer over time; decode_step does one word: same logits."""
    model = tiny(attention)
    (src, mask, tgt_in), _ = padded_batch()
    state, steps = model.encode(src, mask), []
    for t in range(tgt_in.size(1)):
        logits, state = model.decode_step(tgt_in[:, t], state)
        steps.append(logits)
    assert torch.allclose(model(src, mask, tgt_in), torch.stack(steps, 1), atol=1e-12)


@pytest.mark.parametrize("attention", [False, True])
def test_decode_step_path_equals_teacher_forcing_and_greedy_is_argmax(attention):
    model = tiny(attention)
    (src, mask, _), _ = padded_batch()
    out = greedy_decode(model, src, mask, max_len=6)
    for b, ids in enumerate(out):
        n = int(mask[b].sum())
        tgt_in = torch.tensor([[BOS] + ids])
        logits = model(src[b:b + 1, :n], mask[b:b + 1, :n], tgt_in)
        predicted = logits.argmax(-1)[0].tolist()
        assert predicted[:len(ids)] == ids                        # each greedy word is the argmax
        if len(ids) < 6:
            assert predicted[len(ids)] == EOS                      # and it stopped at <eos>


class ToyDecoder(torch.nn.Module):
    """A 'model' with fixed next-word distributions where greedy search is wrong.

    Vocabulary: 0 pad, 1 unk, 2 bos, 3 eos, 4 "A", 5 "B". After <bos>: A 0.6, B 0.4.
    After A: eos 0.3, A, B, unk 0.7/3 each. After B: eos 0.9.
    Greedy: A eos (0.18); the best sentence is B eos (0.36).
    """

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def encode(self, src, src_mask):
        return {"src_mask": src_mask}

    def decode_step(self, y_prev, state):
        table = {BOS: {4: 0.6, 5: 0.4}, 4: {EOS: 0.3, 4: 0.7 / 3, 5: 0.7 / 3, 1: 0.7 / 3}, 5: {EOS: 0.9, 4: 0.1}}
        probs = torch.full((y_prev.size(0), 6), 1e-9)
        for i, y in enumerate(y_prev.tolist()):
            for w, p in table.get(y, {EOS: 1.0}).items():
                probs[i, w] = p
        return probs.log(), state


def test_beam_search_finds_the_better_sentence_that_greedy_misses():
    model, src = ToyDecoder(), torch.ones(2, 1, dtype=torch.long)
    mask = src > 0
    assert greedy_decode(model, src, mask) == [[4], [4]]
    assert beam_search(model, src, mask, beam_size=1, length_penalty=0) == [[4], [4]]
    assert beam_search(model, src, mask, beam_size=2, length_penalty=0) == [[5], [5]]
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, src, mask, beam_size=0)


@pytest.mark.parametrize("attention", [False, True])
def test_beam_of_one_is_greedy_and_wider_beams_score_at_least_as_well(attention):
    model = tiny(attention)
    (src, mask, _), _ = padded_batch()
    greedy = greedy_decode(model, src, mask, max_len=7)
    assert beam_search(model, src, mask, beam_size=1, max_len=7) == greedy

    def logp(b, ids):
        n = int(mask[b].sum())
        logits = model(src[b:b + 1, :n], mask[b:b + 1, :n], torch.tensor([[BOS] + ids]))
        lp = torch.log_softmax(logits[0], -1)
        return sum(lp[t, w].item() for t, w in enumerate(ids + [EOS]))

    wide = beam_search(model, src, mask, beam_size=4, max_len=7, length_penalty=0)
    for b in range(3):
        if len(greedy[b]) < 7 and len(wide[b]) < 7:                # both finished with <eos>
            assert logp(b, wide[b]) >= logp(b, greedy[b]) - 1e-9


def test_attention_model_learns_to_reverse_short_sequences():
    """A task that needs alignment: output the source backwards. Attention solves it quickly."""
    torch.manual_seed(0)
    model = Seq2Seq(src_vocab=12, tgt_vocab=12, emb_size=16, hidden_size=32, attention=True, dropout=0.0)

    def batch(n=64):
        seqs = [torch.randint(4, 12, (int(torch.randint(3, 7, ())),)).tolist() for _ in range(n)]
        return make_batch(seqs, [s[::-1] for s in seqs])

    def get_batch(split):
        return batch()

    loss = lambda lg, y: F.cross_entropy(lg.flatten(0, 1), y.flatten(), ignore_index=0)
    train(model, get_batch, TrainConfig(max_steps=200, lr=1e-2, weight_decay=0.0, eval_every=0,
                                        eval_batches=1, progress=False), loss_fn=loss)
    (src, mask, _), tgt_out = batch(100)
    out = greedy_decode(model, src, mask, max_len=8)
    targets = [row[:row.index(EOS)] for row in tgt_out.tolist()]
    accuracy = sum(o == t for o, t in zip(out, targets)) / len(out)
    assert accuracy > 0.9


@pytest.fixture(scope="module")
def toy_data():
    pairs = {"train": (["Ein Hund läuft.", "Eine Katze schläft.", "Ein Hund schläft."] * 3,
                       ["A dog runs.", "A cat sleeps.", "A dog sleeps."] * 3),
             "val": (["Ein Hund läuft."], ["A dog runs."])}
    return Translation(pairs, min_freq=1)


def test_translate_returns_sentences_in_input_order(toy_data):
    torch.manual_seed(0)
    model = Seq2Seq(len(toy_data.src_vocab), len(toy_data.tgt_vocab), 16, 32, dropout=0.0)
    get_batch = TranslationBatcher(toy_data, batch_size=9)
    loss = lambda lg, y: F.cross_entropy(lg.flatten(0, 1), y.flatten(), ignore_index=0)
    train(model, get_batch, TrainConfig(max_steps=60, lr=1e-2, weight_decay=0.0, eval_every=0,
                                        eval_batches=1, progress=False), loss_fn=loss)
    src = ["Ein Hund schläft.", "Eine Katze schläft.", "Ein Hund läuft."]
    assert translate(model, toy_data, src, batch_size=2) == ["A dog sleeps.", "A cat sleeps.", "A dog runs."]
    assert translate(model, toy_data, src, beam_size=3) == ["A dog sleeps.", "A cat sleeps.", "A dog runs."]


def test_training_on_translation_batches_resumes_exactly(toy_data, tmp_path):
    """train() calls model(*x) for tuple inputs and checkpoints the batcher's plan."""
    loss = lambda lg, y: F.cross_entropy(lg.flatten(0, 1), y.flatten(), ignore_index=0)
    cfg = TrainConfig(max_steps=8, lr=1e-2, eval_every=4, eval_batches=1, progress=False,
                      ckpt_path=str(tmp_path / "s2s.pt"))

    def fresh():
        torch.manual_seed(0)
        return Seq2Seq(len(toy_data.src_vocab), len(toy_data.tgt_vocab), 8, 8, dropout=0.3)

    straight = train(fresh(), TranslationBatcher(toy_data, batch_size=2), dataclasses.replace(cfg, ckpt_path=None))
    torch.manual_seed(0)
    train(fresh(), TranslationBatcher(toy_data, batch_size=2), cfg, stop_after=3)
    resumed = train(fresh(), TranslationBatcher(toy_data, batch_size=2), cfg, resume=True)
    assert resumed.history["train_loss"] == straight.history["train_loss"]
