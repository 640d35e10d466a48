"""seqlab.models.bert against Hugging Face BERT with copied weights; BERT's masking rule."""
import math

import pytest
import torch

import transformers  # noqa: F401  (the reference; a dev requirement, so CI always has it)
from seqlab.models.bert import IGNORE, BertClassifier, BertConfig, BertForMaskedLM, mask_tokens

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = BertConfig(vocab_size=120, max_len=40, n_layer=2, n_head=4, d_model=32, d_ff=64, dropout=0.0)


def _hf_config():
    from transformers import BertConfig as HFConfig
    return HFConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=40, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, attn_implementation="eager")


def _perturb(model):
    """Non-trivial LayerNorm and bias values (freshly initialised ones are 1 and 0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))


def _batch():
    idx = torch.randint(1, 120, (3, 40))
    real = torch.ones(3, 40, dtype=torch.long)
    real[1, 30:] = 0
    real[2, 12:] = 0
    types = torch.zeros_like(idx)
    types[:, 20:] = 1
    return idx, real, types


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_masked_lm_logits_equal_hugging_face(dtype, tol):
    from transformers import BertForMaskedLM as HF
    torch.manual_seed(0)
    hf = HF(_hf_config()).to(dtype).eval()
    _perturb(hf)
    ours = BertForMaskedLM.from_hf(hf.state_dict(), CFG).eval()
    idx, real, types = _batch()
    with torch.no_grad():
        ref = hf(input_ids=idx, attention_mask=real, token_type_ids=types).logits
        out = ours(idx, pad_mask=real == 0, token_type=types)
    keep = real.bool()
    assert (out[keep] - ref[keep]).abs().max().item() < tol


def test_masked_lm_gradients_equal_hugging_face_float64():
    from transformers import BertForMaskedLM as HF
    torch.manual_seed(1)
    hf = HF(_hf_config()).double().eval()
    _perturb(hf)
    ours = BertForMaskedLM.from_hf(hf.state_dict(), CFG).eval()
    idx, real, types = _batch()
    w = torch.randn(3, 40, 120, dtype=torch.float64) * real[..., None]
    (hf(input_ids=idx, attention_mask=real, token_type_ids=types).logits * w).sum().backward()
    (ours(idx, pad_mask=real == 0, token_type=types) * w).sum().backward()
    hb, ob = hf.bert, ours.bert
    pairs = [(ob.word_embeddings.weight.grad, hb.embeddings.word_embeddings.weight.grad),
             (ob.position_embeddings.weight.grad, hb.embeddings.position_embeddings.weight.grad),
             (ob.layers[0].linear1.weight.grad, hb.encoder.layer[0].intermediate.dense.weight.grad),
             (ob.layers[1].self_attn.in_proj_weight.grad[:32], hb.encoder.layer[1].attention.self.query.weight.grad),
             (ob.layers[1].norm2.weight.grad, hb.encoder.layer[1].output.LayerNorm.weight.grad),
             (ours.transform.weight.grad, hf.cls.predictions.transform.dense.weight.grad)]
    assert max((a - b).abs().max().item() for a, b in pairs) < 1e-10


def test_classifier_equals_hugging_face_sequence_classification():
    from transformers import BertForSequenceClassification as HF
    torch.manual_seed(2)
    hf_cfg = _hf_config()
    hf_cfg.num_labels = 5
    hf = HF(hf_cfg).double().eval()
    _perturb(hf)
    ours = BertClassifier.from_hf(hf.state_dict(), CFG, n_classes=5).eval()
    idx, real, types = _batch()
    with torch.no_grad():
        gap = (ours(idx, real == 0, types) - hf(input_ids=idx, attention_mask=real, token_type_ids=types).logits)
    assert gap.abs().max().item() < 1e-10


def test_mask_tokens_follows_bert_rule():
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(5, 1000, (400, 250), generator=g)
    idx[:, 0] = 1                                          # a special token ([CLS]) never chosen
    idx[:, -10:] = 0                                       # padding never chosen
    inputs, labels = mask_tokens(idx, mask_id=4, vocab_size=1000, special_ids=(0, 1), generator=g)
    chosen = labels != IGNORE
    eligible = (idx != 0) & (idx != 1)
    assert not chosen[~eligible].any()
    assert abs(chosen.sum().item() / eligible.sum().item() - 0.15) < 0.005
    assert torch.equal(labels[chosen], idx[chosen])
    assert torch.equal(inputs[~chosen], idx[~chosen])      # untouched outside the chosen
    n = chosen.sum().item()
    masked = (inputs == 4) & chosen
    unchanged = (inputs == idx) & chosen
    other = chosen & ~masked & ~unchanged
    assert abs(masked.sum().item() / n - 0.8) < 0.01
    assert abs(unchanged.sum().item() / n - 0.1) < 0.01 + 0.001      # (a random token may equal the original)
    assert abs(other.sum().item() / n - 0.1) < 0.01


def test_too_long_input_is_an_error():
    with pytest.raises(ValueError, match="max_len=40"):
        BertForMaskedLM(CFG)(torch.zeros(1, 41, dtype=torch.long))


def test_sinusoidal_position_init_is_the_scaled_sin_cos_table():
    from dataclasses import replace

    cfg = replace(CFG, position_init="sinusoidal")
    P = BertForMaskedLM(cfg).bert.position_embeddings.weight.detach().double()
    pos = torch.arange(cfg.max_len, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, cfg.d_model, 2, dtype=torch.float64) / cfg.d_model)
    assert torch.allclose(P[:, 0::2], 0.02 * math.sqrt(2) * torch.sin(pos * freq), atol=1e-7)
    assert torch.allclose(P[:, 1::2], 0.02 * math.sqrt(2) * torch.cos(pos * freq), atol=1e-7)
    assert abs(P.pow(2).mean().sqrt().item() - 0.02) < 1e-6             # BERT's scale (rms 0.02), another pattern
    with pytest.raises(ValueError, match="position_init"):
        BertForMaskedLM(replace(CFG, position_init="rope"))
