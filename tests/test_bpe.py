"""seqlab.data.bpe against Hugging Face ``tokenizers``: the same merges, vocabulary and ids.

The reference is trained with ``BpeTrainer`` on the ``ByteLevel`` pre-tokenizer (GPT-2's
regex, no added prefix space), ``min_frequency=0`` and the full 256-byte initial alphabet,
on the same text with the same vocabulary size.
"""
import gzip
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.data.bpe import BYTE_ORDER, BYTE_TO_UNICODE, ByteBPE, bytes_to_unicode

import tokenizers  # noqa: F401  (the reference; a dev requirement, so CI always has it)

DATA = os.environ.get("SEQLAB_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="SEQLAB_DATA (../shared/data) not set")

# a few lines of our own with what English prose lacks: accents, other scripts, emoji, digits, runs
EXTRA = ("Ça va? Größe, naïve café; Ελληνικά, русский, 東京タワー, عربى, हिन्दी 😀👍🏽 "
         "aaaa aaa bbbbbb 1234567 2024-11-30 3.14159   \n\n\t\t  x  y \r\n it's I'll we've they'd ")


def _corpus():
    text = open(os.path.join(DATA, "tinyshakespeare", "input.txt"), encoding="utf-8").read()
    with gzip.open(os.path.join(DATA, "multi30k", "train.de.gz"), "rt", encoding="utf-8") as f:
        german = f.read()
    with gzip.open(os.path.join(DATA, "multi30k", "val.de.gz"), "rt", encoding="utf-8") as f:
        german_val = f.read()
    train = text[:300_000] + german[:100_000] + EXTRA * 20
    held_out = text[-60_000:] + german_val[:30_000] + EXTRA[::-1] + "Zoë's 🦜 façade "
    return train, held_out


def _hf_train(text, vocab_size):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=0, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


def _hf_merges(tok):
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


@pytest.fixture(scope="module")
def trained():
    if not DATA:
        pytest.skip("SEQLAB_DATA (../shared/data) not set")
    train, held_out = _corpus()
    vocab_size = 1200
    return ByteBPE.train(train, vocab_size), _hf_train(train, vocab_size), held_out


def test_byte_alphabet_is_gpt2s():
    mapping = bytes_to_unicode()
    assert len(set(mapping.values())) == 256
    assert mapping[ord("A")] == "A" and mapping[ord(" ")] == "Ġ" and mapping[ord("\n")] == "Ċ"
    # the byte tokens' order is tokenizers' ByteLevel alphabet, sorted by code point
    from tokenizers import pre_tokenizers
    assert [BYTE_TO_UNICODE[b] for b in BYTE_ORDER] == sorted(pre_tokenizers.ByteLevel.alphabet())


@needs_data
def test_same_merges_vocabulary_and_ids_as_hf_tokenizers(trained):
    ours, hf, held_out = trained
    ordered = sorted(ours.merges.items(), key=lambda kv: kv[1][0])
    our_merges = [tuple(ours.tokens([a, b])) for (a, b), _ in ordered]
    hf_merges = _hf_merges(hf)
    assert len(our_merges) == len(hf_merges) == 1200 - 256
    assert our_merges == hf_merges                               # every merge, in the same order
    hf_vocab = hf.get_vocab()
    assert len(ours) == len(hf_vocab) == 1200
    assert all(hf_vocab[t] == i for i, t in enumerate(ours.tokens(range(len(ours)))))
    ids = ours.encode(held_out)
    assert ids == hf.encode(held_out).ids                        # held-out text: identical ids
    assert ours.decode(ids) == held_out


def test_ties_go_to_the_smallest_pair():
    # every pair occurs once: the first merge is the pair with the smallest ids, as in tokenizers
    text = "zy ab"
    ours = ByteBPE.train(text, 257)
    (pair, (rank, new_id)), = ours.merges.items()
    candidates = [(ours.byte_ids[a], ours.byte_ids[b]) for w in (b"zy", b" ab", b"ab") for a, b in zip(w, w[1:])]
    assert pair == min(candidates) and rank == 0 and new_id == 256
    assert _hf_merges(_hf_train(text, 257)) == [tuple(ours.tokens(pair))]


def test_merge_counts_overlapping_runs_like_the_reference():
    text = "aaaa aaa aa " * 3 + "ab ab"
    ours, hf = ByteBPE.train(text, 262), _hf_train(text, 262)
    ordered = sorted(ours.merges.items(), key=lambda kv: kv[1][0])
    assert [tuple(ours.tokens(p)) for p, _ in ordered] == _hf_merges(hf)
    assert ours.encode("aaaaaaa ab") == hf.encode("aaaaaaa ab").ids


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_decode_inverts_encode_for_any_unicode(s):
    assert _SMALL.decode(_SMALL.encode(s)) == s


_SMALL = ByteBPE.train("the cat sat on the mat; the dog ate the hat. " * 20 + EXTRA, 320)


def test_every_byte_is_encodable_and_there_is_no_unknown():
    s = bytes(range(256)).decode("latin-1")
    assert _SMALL.decode(_SMALL.encode(s)) == s
    assert all(0 <= i < len(_SMALL) for i in _SMALL.encode(s))


def test_merges_do_not_cross_pre_token_boundaries():
    bpe = ByteBPE.train("dog. dog. dog. dog.", 300)
    assert all(not (t.endswith(".") and "dog" in t) for t in bpe.tokens(range(len(bpe))))


def test_save_and_load_round_trip(tmp_path):
    bpe = ByteBPE.train("low lower lowest newer wider " * 30, 300, special_tokens=("<|endoftext|>",))
    bpe.save(tmp_path / "bpe.json")
    again = ByteBPE.load(tmp_path / "bpe.json")
    text = "lowest newer<|endoftext|>wider\n"
    assert again.encode(text, allowed_special="all") == bpe.encode(text, allowed_special="all")
    assert again.vocab == bpe.vocab and again.merges == bpe.merges


def test_special_tokens_only_when_allowed():
    bpe = ByteBPE.train("hello world " * 10, 280, special_tokens=("<|endoftext|>",))
    eot = bpe.special_tokens["<|endoftext|>"]
    assert eot == len(bpe) - 1
    text = "hello<|endoftext|>world"
    assert eot not in bpe.encode(text)                           # plain text by default
    ids = bpe.encode(text, allowed_special="all")
    assert ids.count(eot) == 1 and bpe.decode(ids) == text
    with pytest.raises(ValueError, match="not special tokens"):
        bpe.encode(text, allowed_special=("<|pad|>",))


def test_vocab_size_below_the_byte_alphabet_is_an_error():
    with pytest.raises(ValueError, match="256 byte tokens"):
        ByteBPE.train("abc", 100)


@needs_data
def test_gpt2_file_format_loads_and_tokenizes_like_the_reference(trained, tmp_path):
    """tokenizers writes GPT-2's vocab.json + merges.txt format; loading those files must give its ids."""
    _, hf, held_out = trained
    hf.model.save(str(tmp_path))
    loaded = ByteBPE.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert loaded.encode(held_out) == hf.encode(held_out).ids
    assert loaded.decode(loaded.encode(held_out)) == held_out
