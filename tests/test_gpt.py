"""seqlab.models.gpt against Hugging Face GPT-2 with copied weights; cached decoding == recompute."""
import pytest
import torch

from seqlab.generate import generate
from seqlab.models.gpt import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")

import transformers  # noqa: F401, E402  (the reference; a dev requirement, so CI always has it)


def _hf_pair(dtype):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    hf_cfg = GPT2Config(vocab_size=97, n_positions=40, n_embd=48, n_layer=3, n_head=4, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager")
    hf = GPT2LMHeadModel(hf_cfg).to(dtype).eval()
    with torch.no_grad():                                  # non-trivial LayerNorm and bias values
        for name, p in hf.named_parameters():
            if "ln" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    ours = GPT.from_hf_gpt2(hf.state_dict(), GPTConfig(vocab_size=97, block_size=40, n_layer=3, n_head=4,
                                                         d_model=48)).eval()
    return hf, ours


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_logits_equal_hugging_face_gpt2(dtype, tol):
    hf, ours = _hf_pair(dtype)
    assert next(ours.parameters()).dtype == dtype
    idx = torch.randint(0, 97, (3, 40))
    with torch.no_grad():
        gap = (ours(idx) - hf(idx).logits).abs().max().item()
    assert gap < tol, gap


def test_gradients_equal_hugging_face_gpt2_float64():
    hf, ours = _hf_pair(torch.float64)
    idx = torch.randint(0, 97, (2, 17))
    w = torch.randn(2, 17, 97, dtype=torch.float64)
    (ours(idx) * w).sum().backward()
    (hf(idx).logits * w).sum().backward()
    pairs = [(ours.wte.weight.grad, hf.transformer.wte.weight.grad),
             (ours.wpe.weight.grad, hf.transformer.wpe.weight.grad),
             (ours.blocks[1].attn.c_attn.weight.grad, hf.transformer.h[1].attn.c_attn.weight.grad.t()),
             (ours.blocks[2].mlp.c_fc.bias.grad, hf.transformer.h[2].mlp.c_fc.bias.grad),
             (ours.ln_f.weight.grad, hf.transformer.ln_f.weight.grad)]
    assert max((a - b).abs().max().item() for a, b in pairs) < 1e-10


def test_config_is_read_from_the_state_dict_and_shapes_are_checked():
    from transformers import GPT2Config, GPT2LMHeadModel
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=128, n_layer=2, n_head=2))
    ours = GPT.from_hf_gpt2(hf.state_dict())                    # GPT-2's 64-wide heads by default
    assert (ours.cfg.n_layer, ours.cfg.n_head, ours.cfg.d_model, ours.cfg.block_size) == (2, 2, 128, 16)
    assert GPT.from_hf_gpt2(hf.state_dict(), n_head=4).cfg.n_head == 4
    with pytest.raises(ValueError, match="does not fit"):
        GPT.from_hf_gpt2(hf.state_dict(), GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, d_model=128))


def test_weight_tying_and_parameter_count():
    m = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, d_model=32))
    assert m.lm_head.weight is m.wte.weight
    D, L, V, T = 32, 2, 50, 16
    per_block = (4 * D) + (3 * D * D + 3 * D) + (D * D + D) + (4 * D * D + 4 * D) + (4 * D * D + D)
    assert m.num_params(non_embedding=False) == V * D + T * D + L * per_block + 2 * D
    assert m.num_params() == V * D + L * per_block + 2 * D


def test_gpt2_124m_config_has_124m_parameters():
    with torch.device("meta"):
        m = GPT(GPTConfig.gpt2("124M"))
    assert m.num_params(non_embedding=False) == 124_439_808


def test_cached_decoding_equals_full_recompute(without_step):
    torch.manual_seed(1)
    m = GPT(GPTConfig(vocab_size=31, block_size=24, n_layer=2, n_head=4, d_model=32)).double().eval()
    idx = torch.randint(0, 31, (2, 5))
    logits, state = m(idx, return_state=True)
    seq = idx
    for _ in range(12):
        nxt = logits[:, -1].argmax(-1) if logits.dim() == 3 else logits.argmax(-1)
        seq = torch.cat([seq, nxt[:, None]], 1)
        logits, state = m.step(nxt, state)
        full = m(seq)[:, -1]
        assert (logits - full).abs().max().item() < 1e-10
    # generate() with the cache gives the same greedy tokens as generate() on a model without step
    cached = generate(m, idx, 15, temperature=0)
    recomputed = generate(without_step(m), idx, 15, temperature=0, block_size=24)
    assert torch.equal(cached, recomputed)


def test_context_window_is_an_error_in_forward_and_slides_in_generate():
    torch.manual_seed(2)
    m = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=16)).double().eval()
    with pytest.raises(ValueError, match="block_size=8"):
        m(torch.zeros(1, 9, dtype=torch.long))
    prompt = torch.randint(0, 11, (1, 12))                     # longer than the window: cropped
    out = generate(m, prompt, 10, temperature=0)
    assert out.shape == (1, 22) and torch.equal(out[:, :12], prompt)
    # every generated token is the argmax given the last 8 tokens before it
    for t in range(12, 22):
        expected = m(out[:, t - 8:t])[:, -1].argmax(-1)
        assert out[0, t] == expected[0]


def test_dropout_is_active_in_training_only():
    m = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=16, dropout=0.5))
    idx = torch.randint(0, 11, (2, 8))
    m.train()
    assert not torch.equal(m(idx), m(idx))
    m.eval()
    assert torch.equal(m(idx), m(idx))
