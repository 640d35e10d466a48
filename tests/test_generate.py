"""seqlab.generate: sampling rules, and recurrent-state generation == full recompute."""
import pytest
import torch

from seqlab.generate import generate, sample_next
from seqlab.models.rnn import RecurrentLM


def test_temperature_zero_is_greedy_and_top_k_restricts():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert sample_next(logits, temperature=0).item() == 1
    g = torch.Generator().manual_seed(0)
    draws = {sample_next(logits, 1.0, top_k=2, generator=g).item() for _ in range(200)}
    assert draws == {1, 3}
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, temperature=-1)


def test_sampling_frequencies_follow_the_softmax():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.7]]))
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits.expand(1000, 3), 1.0, generator=g) for _ in range(10)])
    freq = torch.bincount(draws.flatten(), minlength=3) / draws.numel()
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.7]), atol=0.02)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_recurrent_generation_equals_full_recompute(kind, without_step):
    torch.manual_seed(0)
    lm = RecurrentLM(11, kind, hidden_size=16, num_layers=2).double()
    prompt = torch.randint(11, (3, 4))
    a = generate(lm, prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(1))
    b = generate(without_step(lm), prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 24) and torch.equal(a[:, :4], prompt)
    assert torch.equal(a, b)
    assert lm.training                       # generate restores the training flag


@pytest.mark.parametrize("kind", ["mamba", "rwkv7"])
def test_models_that_read_the_prompt_step_by_step_generate_like_full_recompute(kind, without_step):
    from seqlab.models.mamba import Mamba, MambaConfig
    from seqlab.models.rwkv import RWKV7, RWKV7Config

    torch.manual_seed(0)
    lm = (Mamba(MambaConfig(vocab_size=11, d_model=16, n_layer=2, d_state=4)) if kind == "mamba" else
          RWKV7(RWKV7Config(vocab_size=11, d_model=32, n_layer=2, head_size=16, d_decay=8, d_a=8, d_v=8,
                            d_gate=8))).double()
    prompt = torch.randint(11, (2, 5))
    a = generate(lm, prompt, 12, generator=torch.Generator().manual_seed(1))
    b = generate(without_step(lm), prompt, 12, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 17) and torch.equal(a, b)


def test_prompt_must_be_a_batch_of_sequences():
    lm = RecurrentLM(11, "gru", hidden_size=8)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        generate(lm, torch.tensor([1, 2, 3]), 5)


def test_top_p_keeps_the_smallest_nucleus():
    from seqlab.generate import next_token_probs
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: the nucleus is the first two tokens, renormalised
    assert torch.allclose(next_token_probs(logits, top_p=0.7), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    assert torch.allclose(next_token_probs(logits, top_p=0.5), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(next_token_probs(logits, top_p=1.0), torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    draws = {sample_next(logits, 1.0, top_p=0.9, generator=g).item() for _ in range(300)}
    assert draws == {0, 1, 2}
    with pytest.raises(ValueError, match="top_p"):
        next_token_probs(logits, top_p=0.0)
    with pytest.raises(ValueError, match="top_k"):
        next_token_probs(logits, top_k=0)
