"""seqlab's RWKV-7 against the rwkv package (RWKV_V7_ON=1, strategy "cpu fp32", head size 64),
loading a checkpoint that seqlab writes with the package's key names; and seqlab's two forms."""
import torch

from seqlab.models.rwkv import RWKV7, RWKV7Config

CFG = RWKV7Config(vocab_size=211, d_model=128, n_layer=3, head_size=64, d_decay=16, d_a=16, d_v=8, d_gate=32)


def _model(dtype=torch.float32):
    torch.manual_seed(0)
    model = RWKV7(CFG)
    with torch.no_grad():                                   # move every weight off its tidy initial value
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.to(dtype).eval()


def test_sequence_form_equals_rnn_form_float64(step_through):
    model = _model(torch.float64)
    idx = torch.randint(0, 211, (2, 19))
    steps, _ = step_through(model, idx)
    with torch.no_grad():
        assert (steps - model(idx)).abs().max() < 1e-10


def test_logits_equal_the_rwkv_package(tmp_path, monkeypatch):
    monkeypatch.setenv("RWKV_V7_ON", "1")
    import importlib

    import rwkv.model
    package = importlib.reload(rwkv.model)                 # read RWKV_V7_ON at import
    model = _model()
    path = str(tmp_path / "seqlab-rwkv7")
    torch.save(model.state_dict(), path + ".pth")
    theirs = package.RWKV(path, strategy="cpu fp32")
    tokens = torch.randint(0, 211, (23,)).tolist()
    with torch.no_grad():
        ours = model(torch.tensor([tokens]))[0]                               # (T, V)
        gpt_mode, _ = theirs.forward(tokens, None, full_output=True)          # the whole sequence at once
        state, rnn_mode = None, []
        for tok in tokens:                                                    # one token at a time
            out, state = theirs.forward([tok], state)
            rnn_mode.append(out)
    assert (gpt_mode - ours).abs().max() < 1e-5
    assert (torch.stack(rnn_mode) - ours).abs().max() < 1e-5
