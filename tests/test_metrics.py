import math

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
