"""Tests for the Multi30k translation pipeline (seqlab.data.translation) and BLEU (seqlab.metrics)."""
import dataclasses

import pytest
import torch

from seqlab.data import Translation, TranslationBatcher, Vocab, detokenize, tokenize
from seqlab.data.translation import BOS, EOS, PAD, UNK, make_batch
from seqlab.metrics import bleu

TOY = {
    "train": (["Ein Hund läuft.", "Ein Hund schläft.", "Eine Katze läuft schnell."],
              ["A dog runs.", "A dog sleeps.", "A cat runs fast."]),
    "val": (["Ein Vogel läuft."], ["A bird runs."]),
}


@pytest.fixture(scope="module")
def multi30k():
    return Translation.load()


def test_tokenize_keeps_spaces_so_detokenize_inverts_it(multi30k):
    assert tokenize("Two young, White males.") == ["▁Two", "▁young", ",", "▁White", "▁males", "."]
    assert tokenize("Männer, (5-jährig)") == ["▁Männer", ",", "▁(", "5", "-", "jährig", ")"]
    for split in ("train", "val", "test"):
        s = multi30k.splits[split]
        for text in s.src_text + s.tgt_text:
            assert detokenize(tokenize(text)) == " ".join(text.split())   # lossless up to runs of spaces


def test_vocab_comes_from_train_only_with_unk_and_specials():
    data = Translation(TOY, min_freq=1)
    v = data.src_vocab
    assert v.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert "▁Vogel" not in v.stoi                                  # only in validation: never leaks in
    assert data.splits["val"].src[0][1] == UNK
    assert v.itos[4:6] == [".", "▁Ein"]                            # by falling count, ties alphabetical
    assert data.decode_target(data.tgt_vocab.encode(tokenize("A dog runs.")) + [EOS, 7]) == "A dog runs."
    assert Vocab([["a", "a", "b"]], min_freq=2).itos == ["<pad>", "<unk>", "<bos>", "<eos>", "a"]
    with pytest.raises(ValueError, match="train"):
        Translation({"val": TOY["val"]})


def test_multi30k_sizes_and_unknown_rates(multi30k):
    assert [len(multi30k.splits[s]) for s in ("train", "val", "test")] == [29000, 1014, 1000]
    rates = multi30k.unk_rate("test")
    assert 0 < rates["src"] < 0.06 and 0 < rates["tgt"] < 0.04    # min_freq=2 keeps most words
    assert multi30k.unk_rate("train")["src"] < rates["src"]


def test_make_batch_shifts_the_target_and_masks_padding():
    (src, mask, tgt_in), tgt_out = make_batch([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]])
    assert src.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD]]
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert tgt_in.tolist() == [[BOS, 9, 10, PAD], [BOS, 11, 12, 13]]
    assert tgt_out.tolist() == [[9, 10, EOS, PAD], [11, 12, 13, EOS]]


def test_batcher_pass_covers_every_pair_once_with_little_padding(multi30k):
    torch.manual_seed(0)
    b = TranslationBatcher(multi30k, batch_size=200)
    seen, real, total = [], 0, 0
    for _ in range(b.steps_per_pass()):
        (src, mask, _), _ = b("train")
        seen += b.plan[b.pos - 1]
        real, total = real + mask.sum().item(), total + mask.numel()
    assert sorted(seen) == list(range(29000)) and b.passes == 0
    bucketed = 1 - real / total
    # the same batch size drawn at random pads far more
    torch.manual_seed(0)
    rand_real = rand_total = 0
    for _ in range(20):
        (src, mask, _), _ = b("val")
        rand_real, rand_total = rand_real + mask.sum().item(), rand_total + mask.numel()
    assert bucketed < 0.05 < 1 - rand_real / rand_total
    b("train")
    assert b.passes == 1 and b.pos == 1                           # a new pass, a new plan


def test_batcher_state_dict_resumes_the_same_batches(multi30k):
    torch.manual_seed(1)
    a = TranslationBatcher(multi30k, batch_size=64)
    for _ in range(3):
        a("train")
    saved, rng = a.state_dict(), torch.get_rng_state()
    expected = [a("train")[1] for _ in range(3)]
    b = TranslationBatcher(multi30k, batch_size=64)
    b.load_state_dict(saved)
    torch.set_rng_state(rng)
    assert all(torch.equal(x, b("train")[1]) for x in expected)


def test_iterate_walks_a_split_once_sorted_by_length(multi30k):
    b = TranslationBatcher(multi30k, batch_size=100)
    idx = [i for ids, _ in b.iterate("val") for i in ids]
    assert sorted(idx) == list(range(1014))
    lengths = [len(multi30k.splits["val"].src[i]) for i in idx]
    assert lengths == sorted(lengths)
    with pytest.raises(KeyError, match="unknown split"):
        b("dev")


def test_bleu_is_sacrebleu_on_detokenized_text():
    refs = ["A dog runs on the grass.", "Two men are talking outside."]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert bleu(["Completely different words here.", "Nothing."], refs) < 10
    partial = bleu(["A dog runs on grass.", "Two men talk outside."], refs)
    assert 0 < partial < 100
    with pytest.raises(ValueError, match="hypotheses"):
        bleu(refs[:1], refs)
