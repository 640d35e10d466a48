"""Units of a language model's loss: nats <-> bits <-> perplexity; and BLEU for translation.

A model's cross-entropy on held-out text is the average negative log-probability it gives
each true next token:

    H = -(1/N) sum_i log p(x_i | x_<i)

measured in *nats* with the natural log (what ``torch.nn.functional.cross_entropy``
returns) or in *bits* with log base 2. Since log2(p) = ln(p) / ln(2):

    bits = nats / ln 2

Perplexity is the exponential of the cross-entropy, the same number in either unit:

    PPL = e^{nats} = 2^{bits}

and reads as "the model is as unsure as a fair choice among PPL tokens". For character
models we quote bits per character (bpc); for word models, perplexity per word.
"""
from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


def nats_to_bits(nats: float) -> float:
    """bits = nats / ln 2."""
    return nats / LN2


def bits_to_nats(bits: float) -> float:
    """nats = bits * ln 2."""
    return bits * LN2


def perplexity(nats: float) -> float:
    """PPL = e^{nats per token} (inf when the cross-entropy is inf)."""
    return math.exp(nats) if math.isfinite(nats) else math.inf


def perplexity_from_bits(bits: float) -> float:
    """PPL = 2^{bits per token}."""
    return 2.0 ** bits if math.isfinite(bits) else math.inf


def bits_from_perplexity(ppl: float) -> float:
    """bits per token = log2(PPL)."""
    return math.log2(ppl)


def bits_per_char(nats_per_token: float, tokens: int, chars: int) -> float:
    """Bits per character of a model whose tokens are not characters (words, BPE pieces).

    The total information is the same whichever unit we count in:
    nats_per_token * tokens = bits_per_char * chars * ln 2.
    """
    if chars <= 0:
        raise ValueError("chars must be positive")
    return nats_per_token * tokens / (chars * LN2)


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (0-100) of detokenized hypotheses against raw references, one each.

    Computed by ``sacrebleu`` with its defaults (13a tokenization, cased, and its default
    exponential smoothing, which only matters when some n-gram order has no match at all),
    the way published translation results are reported, so the
    numbers compare with papers and tutorials. BLEU is the geometric mean of 1- to
    4-gram precisions times a brevity penalty (Papineni et al., 2002).
    """
    import sacrebleu                                  # imported here: only Part III needs it

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score


def bleu_stats(hypotheses: list[str], references: list[str]) -> np.ndarray:
    """BLEU's counts for each sentence, shape (N, 10), so that any subset can be scored.

    Row i is [hypothesis length, reference length, matched 1..4-grams, hypothesis 1..4-grams]
    of sentence i, as ``sacrebleu`` counts them. Corpus BLEU only needs these counts summed
    over the sentences: ``bleu_from_stats(bleu_stats(h, r).sum(0)) == bleu(h, r)``.
    """
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    scorer = BLEU(effective_order=True)               # the counts do not depend on this option
    rows = []
    for h, r in zip(hypotheses, references):
        s = scorer.sentence_score(h, [r])
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return np.array(rows, dtype=np.int64).reshape(len(rows), 10)


def bleu_from_stats(stats) -> float:
    """Corpus BLEU (0-100) from summed counts (10,), as ``bleu`` computes it."""
    from sacrebleu.metrics import BLEU

    s = [int(x) for x in stats]
    if len(s) != 10:
        raise ValueError(f"expected 10 summed counts (see bleu_stats), got {len(s)}")
    return BLEU.compute_bleu(s[2:6], s[6:10], s[0], s[1], smooth_method="exp").score


def bootstrap_bleu(stats: np.ndarray, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Corpus BLEU of bootstrap resamples of the sentences (Koehn, 2004).

    stats: (..., N, 10) from ``bleu_stats``, for example (systems, seeds, N, 10). Each resample
    draws N sentence indices with replacement, the *same* indices for every leading entry, so
    differences between systems are paired. Returns (resamples, ...) BLEU scores; the spread of
    a difference across resamples is how much it would move with another test set of this size.
    """
    stats = np.asarray(stats)
    if stats.ndim < 2 or stats.shape[-1] != 10 or stats.shape[-2] == 0:
        raise ValueError(f"stats must have shape (..., N, 10) with N > 0, got {stats.shape}")
    n = stats.shape[-2]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)           # (R, N): times drawn
    summed = np.einsum("rn,...nk->r...k", counts, stats)                         # (R, ..., 10)
    flat = summed.reshape(-1, 10)
    return np.array([bleu_from_stats(row) for row in flat]).reshape(summed.shape[:-1])
