"""Tests for seqlab.models.ngram: KenLM equivalence, probability axioms, hand-counted cases.

The KenLM reference (tests/fixtures/kenlm/) was made by lmplz from corpus.txt; see
make_fixture.sh for how to rebuild it.
"""

import math
from pathlib import Path

import numpy as np
import pytest

from seqlab.data import CharTokenizer, load_text
from seqlab.models.ngram import NGramLM, count_ngrams, unseen_fraction

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "kenlm"

# Held-out sentences written for this test; several words never occur in corpus.txt.
HELD_OUT = [
    "the miller walked to the market in the morning .",
    "a purple elephant sat on the old bridge .",
    "i do not know why the teacher is so happy .",
    "the station master lost his hat again !",
    "nobody .",
    "zebra quantum",
    "at the end of the day the river was cold and grey .",
    "the children ran after the cat but could not catch it .",
    "",
]


# ---------------------------------------------------------------- helpers
def read_corpus():
    lines = (FIXTURES / "corpus.txt").read_text().split("\n")
    if lines[-1] == "":
        lines = lines[:-1]
    itos = ["<unk>"] + sorted({w for line in lines for w in line.split()})   # id 0 = <unk>
    stoi = {w: i for i, w in enumerate(itos)}
    return lines, itos, stoi


def encode(line, stoi):
    return np.array([stoi.get(w, 0) for w in line.split()], dtype=np.int64)


def parse_arpa(path):
    """{order: {ngram string: (log10 prob, log10 backoff)}} and the header counts."""
    header, entries, k = {}, {}, None
    for line in Path(path).read_text().split("\n"):
        if line.startswith("ngram "):
            order, n = line[len("ngram "):].split("=")
            header[int(order)] = int(n)
        elif line.startswith("\\") and line.endswith("-grams:"):
            k = int(line[1:line.index("-")])
            entries[k] = {}
        elif k is not None and line and not line.startswith("\\"):
            parts = line.split("\t")
            entries[k][parts[1]] = (float(parts[0]), float(parts[2]) if len(parts) > 2 else 0.0)
    return header, entries


@pytest.fixture(scope="module")
def corpus():
    lines, itos, stoi = read_corpus()
    return [encode(line, stoi) for line in lines], itos, stoi


@pytest.fixture(scope="module")
def shakespeare():
    text = load_text("tinyshakespeare")   # a verified copy from $SEQLAB_DATA or the cache
    tok = CharTokenizer(text)
    return tok.encode(text), tok.itos


# ---------------------------------------------------------------- (a) KenLM ARPA, every entry
@pytest.mark.parametrize("order", [3, 5])
def test_kn_reproduces_kenlm_arpa(order, corpus, tmp_path):
    sentences, itos, _ = corpus
    lm = NGramLM(order, "kn").fit_sentences(sentences, vocab_size=len(itos))
    lm.to_arpa(tmp_path / "mine.arpa", itos)
    ref_header, ref = parse_arpa(FIXTURES / f"corpus.o{order}.arpa")
    my_header, mine = parse_arpa(tmp_path / "mine.arpa")
    assert my_header == ref_header and sorted(ref) == list(range(1, order + 1))
    for k in ref:
        assert len(mine[k]) == len(ref[k]) == ref_header[k]
        assert set(mine[k]) == set(ref[k]), f"order {k}: different n-grams"
        grams = sorted(ref[k])
        ref_lp, ref_bo = np.array([ref[k][g] for g in grams]).T
        my_lp, my_bo = np.array([mine[k][g] for g in grams]).T
        np.testing.assert_allclose(my_lp, ref_lp, rtol=0, atol=1e-4, err_msg=f"log10 p, order {k}")
        np.testing.assert_allclose(my_bo, ref_bo, rtol=0, atol=1e-4, err_msg=f"backoff, order {k}")


def test_fixture_counts_of_counts_are_nonzero(corpus):
    """Every order up to 5 has adjusted counts 1, 2, 3 and 4 (no --discount_fallback)."""
    sentences, itos, _ = corpus
    lm = NGramLM(5, "kn").fit_sentences(sentences, vocab_size=len(itos))
    for k in range(1, 6):
        D = lm.discounts[k]
        assert 0 < D[1] < 1 < D[2] < 2 and 0 < D[3] < 3, (k, D)


# ---------------------------------------------------------------- (b) kenlm module, perplexity
@pytest.mark.parametrize("order", [3, 5])
def test_sentence_scores_match_kenlm_module(order, corpus):
    kenlm = pytest.importorskip("kenlm")
    sentences, itos, stoi = corpus
    ref = kenlm.Model(str(FIXTURES / f"corpus.o{order}.arpa"))
    lm = NGramLM(order, "kn").fit_sentences(sentences, vocab_size=len(itos))
    assert any(w not in stoi for s in HELD_OUT for w in s.split())      # unseen words present
    my_total, ref_total, n_tokens = 0.0, 0.0, 0
    for s in HELD_OUT:
        log10_p = lm.sentence_log_probs(encode(s, stoi)).sum() / math.log(10)
        n = len(s.split()) + 1                                           # words + </s>
        assert log10_p == pytest.approx(ref.score(s, bos=True, eos=True), rel=1e-4)
        assert 10 ** (-log10_p / n) == pytest.approx(ref.perplexity(s), rel=1e-4)
        my_total, ref_total, n_tokens = my_total + log10_p, ref_total + ref.score(s), n_tokens + n
    assert 10 ** (-my_total / n_tokens) == pytest.approx(10 ** (-ref_total / n_tokens), rel=1e-4)


def test_sentences_in_one_stream_score_like_separate_sentences(corpus):
    """<s> starts a fresh history: a stream of <s> s </s> blocks scores block by block."""
    sentences, itos, stoi = corpus
    lm = NGramLM(4, "kn").fit_sentences(sentences, vocab_size=len(itos))
    held = [encode(s, stoi) for s in HELD_OUT[:4]]
    stream = np.concatenate([np.concatenate([[lm.bos], s, [lm.eos]]) for s in held])
    lp = lm.log_probs(stream)
    expected = sum(lm.sentence_log_probs(s).sum() for s in held)
    assert lp[stream != lm.bos].sum() == pytest.approx(expected, rel=1e-12)
    assert np.all(np.isneginf(lp[stream == lm.bos]))                    # <s> is never predicted


# ---------------------------------------------------------------- (c) probability axioms
TOY = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2, 2, 0, 4, 1, 2, 0, 1])   # V = 6: id 5 never occurs


@pytest.mark.parametrize("smoothing", ["mle", "add-k", "kn"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_distribution_sums_to_one_and_matches_log_probs(smoothing, order):
    lm = NGramLM(order, smoothing, k=0.3).fit(TOY, vocab_size=6)
    for context in ([], [0], [0, 1], [2, 2], [1, 3], [4, 1, 2]):
        p = lm.distribution(np.array(context, dtype=np.int64))
        assert p.shape == (6,) and np.all(p >= 0)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
    # the vectorized scorer and the per-context distribution agree token by token
    stream = np.array([0, 1, 2, 0, 4, 1, 5, 2, 0, 1])
    lp = lm.log_probs(stream)
    for j in range(len(stream)):
        p = lm.distribution(stream[:j])[stream[j]]
        assert lp[j] == pytest.approx(np.log(p), rel=1e-12) if p > 0 else np.isneginf(lp[j])


@pytest.mark.parametrize("smoothing", ["mle", "add-k", "kn"])
def test_sentence_mode_distribution_sums_to_one(smoothing, corpus):
    sentences, itos, stoi = corpus
    lm = NGramLM(3, smoothing).fit_sentences(sentences, vocab_size=len(itos))
    assert lm.vocab_size == len(itos) + 2 and (lm.bos, lm.eos) == (len(itos), len(itos) + 1)
    for context in ([lm.bos], [lm.bos, stoi["the"]], [stoi["the"], stoi["old"]], [stoi["of"]]):
        p = lm.distribution(np.array(context))
        assert p[lm.bos] == 0 and p.sum() == pytest.approx(1.0, abs=1e-12)


def test_kn_unseen_history_and_unseen_token_get_mass():
    lm = NGramLM(3, "kn").fit(TOY, vocab_size=6)
    p = lm.distribution(np.array([5, 5]))              # history never seen: unigram level
    assert p.sum() == pytest.approx(1.0) and p[5] > 0
    assert np.isfinite(lm.cross_entropy(np.array([5, 0, 5, 1])))


def test_mle_is_zero_on_unseen_and_exact_on_seen():
    lm = NGramLM(2, "mle").fit(TOY, vocab_size=6)
    assert lm.cross_entropy(np.array([0, 2])) == math.inf            # bigram (0, 2) never seen
    # c(0 1) = 4 of c(0 .) = 5 -> 4/5;  c(1 2) = 3 of c(1 .) = 4 (the last 1 has no successor)
    assert np.exp(lm.log_probs(np.array([0, 1, 2])))[1:] == pytest.approx([4 / 5, 3 / 4])
    assert np.exp(lm.log_probs(np.array([0])))[0] == pytest.approx(5 / 16)   # unigram at start
    assert lm.distribution(np.array([5])).sum() == 0                  # no estimate at all


def test_add_k_by_hand():
    ids = np.array([0, 1, 0, 1, 0, 2])          # V = 4, k = 0.5
    lm = NGramLM(2, "add-k", k=0.5).fit(ids, vocab_size=4)
    # first token: unigram (c(0) + k) / (T + kV) = 3.5 / 8
    # p(1|0) = (c(0 1) + k) / (c(0 .) + kV) = (2 + .5) / (3 + 2) ;  p(3|1) = (0 + .5) / (2 + 2)
    # p(0|3), p(0|2): 3 never occurs, 2 is never followed by anything: c(h .) = 0 -> uniform 1/4
    lp = lm.log_probs(np.array([0, 1, 3, 0]))
    assert np.exp(lp) == pytest.approx([3.5 / 8, 2.5 / 5, 0.5 / 4, 1 / 4])   # p(0|3): 3 unseen
    assert np.exp(lm.log_probs(np.array([2, 0])))[1] == pytest.approx(0.25)
    np.testing.assert_allclose(lm.distribution(np.array([0])), [0.5 / 5, 2.5 / 5, 1.5 / 5, 0.5 / 5])


def test_count_ngrams_by_hand():
    text = "abracadabra"
    ids = np.array([ord(c) for c in text])
    grams, counts = count_ngrams(ids, 2)
    got = {"".join(map(chr, g)): int(c) for g, c in zip(grams, counts)}
    assert got == {"ab": 2, "br": 2, "ra": 2, "ac": 1, "ca": 1, "ad": 1, "da": 1}
    grams, counts = count_ngrams(ids, 1)
    assert dict(zip(map(chr, grams[:, 0]), counts.tolist())) == {"a": 5, "b": 2, "r": 2, "c": 1, "d": 1}


def test_unseen_fraction_grows_with_n(shakespeare):
    ids, _ = shakespeare
    n = int(0.9 * len(ids))
    fractions = [unseen_fraction(ids[:n], ids[n:], k) for k in range(1, 8)]
    assert fractions[0] == 0.0                                       # every character was seen
    assert all(a < b for a, b in zip(fractions[1:], fractions[2:])) and fractions[1] < fractions[2]
    assert 0.2 < fractions[6] < 0.6                                  # most 7-grams are still seen
    # direct count for one n: a window is unseen iff it is not among the training n-grams
    tr, va = ids[:20000], ids[20000:22000]
    seen = {tuple(g) for g in count_ngrams(tr, 3)[0]}
    direct = np.mean([tuple(va[i:i + 3]) not in seen for i in range(len(va) - 2)])
    assert unseen_fraction(tr, va, 3) == pytest.approx(direct)


def test_kn_cross_entropy_on_shakespeare_improves_with_order(shakespeare):
    ids, chars = shakespeare
    tr, va = ids[:300_000], ids[-30_000:]
    bits = [NGramLM(n, "kn").fit(tr, vocab_size=len(chars)).cross_entropy(va) / math.log(2)
            for n in (1, 3, 5)]
    assert 4.0 < bits[0] < 5.2 and bits[0] > bits[1] > bits[2] > 1.5


# ---------------------------------------------------------------- generation
def test_generate_reproducible_and_temperature():
    lm = NGramLM(3, "kn").fit(TOY, vocab_size=6)
    ctx = np.array([0, 1])
    a = lm.generate(ctx, 50, rng=np.random.default_rng(7))
    b = lm.generate(ctx, 50, rng=np.random.default_rng(7))
    c = lm.generate(ctx, 50, rng=np.random.default_rng(8))
    assert a.shape == (50,) and a.dtype == np.int64 and np.array_equal(a, b) and not np.array_equal(a, c)
    # temperature -> 0 is greedy decoding
    tokens = list(ctx)
    for _ in range(20):
        tokens.append(int(np.argmax(lm.distribution(np.array(tokens)))))
    cold = lm.generate(ctx, 20, temperature=1e-3, rng=np.random.default_rng(0))
    assert cold.tolist() == tokens[2:]


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_generate_samples_from_tempered_distribution(temperature):
    lm = NGramLM(2, "kn").fit(TOY, vocab_size=6)
    rng = np.random.default_rng(0)
    draws = np.array([lm.generate(np.array([2]), 1, temperature, rng)[0] for _ in range(4000)])
    q = lm.distribution(np.array([2])) ** (1 / temperature)           # p^(1/T), renormalized
    q /= q.sum()
    freq = np.bincount(draws, minlength=6) / len(draws)
    assert np.abs(freq - q).max() < 0.03


# ---------------------------------------------------------------- errors
def test_clear_errors():
    with pytest.raises(ValueError, match="order"):
        NGramLM(0)
    with pytest.raises(ValueError, match="unknown smoothing"):
        NGramLM(3, "witten-bell")
    with pytest.raises(ValueError, match="not fitted"):
        NGramLM(3).log_probs(np.array([1, 2]))
    with pytest.raises(ValueError, match="not fitted"):
        NGramLM(3).distribution(np.array([1]))
    with pytest.raises(ValueError, match="vocab_size"):
        NGramLM(2).fit(np.array([0, 1, 7]), vocab_size=5)
    with pytest.raises(ValueError, match="vocab_size"):
        NGramLM(2).fit(np.array([0, -1]), vocab_size=5)
    with pytest.raises(ValueError, match="1-D"):
        NGramLM(2).fit(np.zeros((2, 3), dtype=int), vocab_size=5)
    with pytest.raises(ValueError, match="integer"):
        NGramLM(2).fit(np.array([0.0, 1.0]), vocab_size=5)
    lm = NGramLM(2).fit(np.array([0, 1, 2]), vocab_size=3)
    with pytest.raises(ValueError, match="vocab_size"):
        lm.log_probs(np.array([0, 3]))
    with pytest.raises(ValueError, match="temperature"):
        lm.generate(np.array([0]), 5, temperature=0)
    with pytest.raises(ValueError, match="sentence 1"):
        NGramLM(2).fit_sentences([np.array([0, 1]), np.array([9])], vocab_size=3)
    with pytest.raises(ValueError, match="fit_sentences"):
        lm.sentence_log_probs(np.array([0]))
