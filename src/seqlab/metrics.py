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

    Computed by ``sacrebleu`` with its defaults (13a tokenization, cased, exponential
    smoothing off), the way published translation results are reported, so the
    numbers compare with papers and tutorials. BLEU is the geometric mean of 1- to
    4-gram precisions times a brevity penalty (Papineni et al., 2002).
    """
    import sacrebleu                                  # imported here: only Part III needs it

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score
