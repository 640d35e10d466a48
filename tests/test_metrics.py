import math

import numpy as np
import pytest
import torch

from seqlab import metrics


def test_units_round_trip():
    for nats in (0.1, 1.0, math.log(65)):
        bits = metrics.nats_to_bits(nats)
        assert bits == pytest.approx(nats / math.log(2))
        assert metrics.bits_to_nats(bits) == pytest.approx(nats)
        assert metrics.perplexity(nats) == pytest.approx(metrics.perplexity_from_bits(bits))
        assert metrics.bits_from_perplexity(metrics.perplexity(nats)) == pytest.approx(bits)


def test_uniform_model_has_perplexity_vocab_size():
    # a model that spreads probability evenly over V tokens: cross-entropy ln V, PPL = V
    V = 65
    logits = torch.zeros(1000, V, dtype=torch.float64)
    targets = torch.randint(V, (1000,))
    nats = torch.nn.functional.cross_entropy(logits, targets).item()
    assert metrics.perplexity(nats) == pytest.approx(V, rel=1e-6)
    assert metrics.nats_to_bits(nats) == pytest.approx(math.log2(V), rel=1e-6)


def test_infinite_cross_entropy_is_infinite_perplexity():
    assert metrics.perplexity(math.inf) == math.inf
    assert metrics.perplexity_from_bits(math.inf) == math.inf


def test_bits_per_char_from_word_loss():
    # 10 words, 2 nats each, spelled with 50 characters: 20 nats = 20/ln2 bits over 50 chars
    assert metrics.bits_per_char(2.0, tokens=10, chars=50) == pytest.approx(20 / math.log(2) / 50)
    with pytest.raises(ValueError):
        metrics.bits_per_char(1.0, tokens=1, chars=0)


def test_bleu_from_counts_is_corpus_bleu_and_bootstrap_is_paired():
    from seqlab.metrics import bleu, bleu_stats, bleu_from_stats, bootstrap_bleu
    refs = ["A dog runs on the grass.", "Two men talk outside a shop.", "A girl in a red coat.",
            "The cat sat on the mat.", "People walk down a busy street."]
    hyps = ["A dog runs on grass.", "Two men are talking.", "A girl in a red shirt.",
            "The cat lay on the mat.", "Nothing at all."]
    stats = bleu_stats(hyps, refs)
    assert stats.shape == (5, 10)
    assert bleu_from_stats(stats.sum(0)) == pytest.approx(bleu(hyps, refs), abs=1e-9)
    assert bleu_from_stats(stats[:3].sum(0)) == pytest.approx(bleu(hyps[:3], refs[:3]), abs=1e-9)
    # two systems, paired: the reference against itself scores 100 in every resample
    both = np.stack([stats, bleu_stats(refs, refs)])                       # (2, 5, 10)
    boot = bootstrap_bleu(both, resamples=50, seed=1)
    assert boot.shape == (50, 2)
    assert np.allclose(boot[:, 1], 100.0)
    assert boot[:, 0].std() > 0                                            # resampling moves the score
    assert np.array_equal(boot, bootstrap_bleu(both, resamples=50, seed=1))
    with pytest.raises(ValueError):
        bootstrap_bleu(stats[:, :9])
