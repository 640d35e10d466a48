"""seqlab's Mamba against transformers' MambaForCausalLM (pure-PyTorch path) with copied weights.

Even in a float64 model, transformers computes its RMSNorm and A = -exp(A_log) in float32,
so the two agree to about 4e-7 (logits and gradients), not to float64's 1e-15; the
tolerance 1e-6 still fails on any real difference (a change of 1e-3 in one D moves the
logits by about 1e-3).
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")      # the reference must not fetch kernels

import pytest
import torch

import transformers  # noqa: F401  (a dev requirement)
from seqlab.models.mamba import Mamba, MambaConfig

SIZES = dict(vocab_size=97, d_model=32, n_layer=2, d_state=8, expand=2, d_conv=4)


def _pair(dtype, scan="parallel"):
    from transformers import MambaConfig as HFConfig, MambaForCausalLM

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    hf = MambaForCausalLM(HFConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, state_size=8, expand=2,
                                   conv_kernel=4, residual_in_fp32=False, use_mambapy=False)).to(dtype).eval()
    ours = Mamba.from_hf(hf.state_dict(), MambaConfig(**SIZES, scan=scan)).eval()
    return hf, ours


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-6)])
@pytest.mark.parametrize("scan", ["parallel", "sequential"])
def test_logits_equal_hugging_face(dtype, tol, scan):
    hf, ours = _pair(dtype, scan)
    idx = torch.randint(0, 97, (2, 37))
    with torch.no_grad():
        gap = (ours(idx) - hf(input_ids=idx, use_cache=False).logits).abs().max().item()
    assert gap < tol, gap


def test_gradients_equal_hugging_face_float64():
    hf, ours = _pair(torch.float64)
    idx = torch.randint(0, 97, (2, 21))
    ours(idx).logsumexp(-1).sum().backward()
    hf(input_ids=idx, use_cache=False).logits.logsumexp(-1).sum().backward()
    theirs = {k.removeprefix("backbone."): p.grad for k, p in hf.named_parameters()}
    worst = max((p.grad - theirs[k]).abs().max().item() for k, p in ours.named_parameters() if k in theirs)
    assert worst < 1e-6, worst


@pytest.mark.parametrize("selective", [True, False])
def test_step_by_step_generation_equals_the_whole_sequence(step_through, selective):
    torch.manual_seed(0)
    model = Mamba(MambaConfig(**SIZES, selective=selective)).double().eval()
    idx = torch.randint(0, 97, (3, 25))
    steps, state = step_through(model, idx)
    with torch.no_grad():
        assert (steps - model(idx)).abs().max() < 1e-10
    sizes = [tuple(s.shape) for layer in state for s in layer]
    assert sizes == [(3, 64, 3), (3, 64, 8)] * 2                     # the same size at every position


def test_unknown_scan_is_an_error():
    with pytest.raises(ValueError, match="scan"):
        Mamba(MambaConfig(**SIZES, scan="fft"))


def test_a_time_invariant_ssm_ignores_the_content_in_its_decay():
    """selective=False: Δ, B and C do not depend on the input, so the SSM is a fixed convolution."""
    torch.manual_seed(0)
    lti = Mamba(MambaConfig(**SIZES, selective=False)).double()
    mixer = lti.layers[0].mixer
    x1, x2 = torch.randn(2, 5, mixer.cfg.d_inner, dtype=torch.float64).unbind(0)
    for a, b in zip(mixer.ssm_inputs(x1), mixer.ssm_inputs(x2)):
        assert torch.equal(a, b)
    assert not hasattr(mixer, "x_proj")
    sel = Mamba(MambaConfig(**SIZES)).double().layers[0].mixer
    assert not torch.equal(sel.ssm_inputs(x1)[0], sel.ssm_inputs(x2)[0])
