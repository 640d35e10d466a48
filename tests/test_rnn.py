"""seqlab.models.rnn against torch.nn: cells, layers and the language model (float64, 1e-6).

Every check compares outputs, final states and the gradients of *every* parameter, of
the input and of the initial state, with weights copied between the two implementations.
"""
import pytest
import torch
import torch.nn as nn

from seqlab.models import rnn as R

TOL = 1e-6
B, T, I, H = 3, 7, 5, 4

TORCH_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
OUR_CELLS = {"rnn": R.RNNCell, "lstm": R.LSTMCell, "gru": R.GRUCell}
TORCH_LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@pytest.fixture(autouse=True)
def one_thread_seeded():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


def max_diff(a, b):
    return (a - b).abs().max().item()


def flat(state):
    """A state (tensor or (h, c)) as a tuple of tensors."""
    return tuple(state) if isinstance(state, tuple) else (state,)


def leaf(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def assert_same_grads(ours: nn.Module, theirs: nn.Module, name_map):
    for our_name, p in ours.named_parameters():
        q = dict(theirs.named_parameters())[name_map(our_name)]
        assert p.grad is not None and q.grad is not None, our_name
        assert max_diff(p.grad, q.grad) < TOL, our_name


# ----------------------------------------------------------------------------- cells

@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_cell_matches_torch_forward_and_backward(kind):
    theirs = TORCH_CELLS[kind](I, H).double()
    ours = OUR_CELLS[kind](I, H).double()
    ours.load_state_dict(theirs.state_dict())      # same names and shapes as torch's cells

    x = leaf(B, I)
    x2 = x.detach().clone().requires_grad_()
    if kind == "lstm":
        h0, c0 = leaf(B, H), leaf(B, H)
        h1, c1 = ours(x, (h0, c0))
        h0b, c0b = h0.detach().clone().requires_grad_(), c0.detach().clone().requires_grad_()
        h2, c2 = theirs(x2, (h0b, c0b))
        outs1, outs2 = (h1, c1), (h2, c2)
        inits = ((h0, h0b), (c0, c0b))
    else:
        h0 = leaf(B, H)
        h0b = h0.detach().clone().requires_grad_()
        outs1, outs2 = (ours(x, h0),), (theirs(x2, h0b),)
        inits = ((h0, h0b),)
    for a, b in zip(outs1, outs2):
        assert max_diff(a, b) < TOL
    # a loss that weights every output element differently, so no gradient can hide
    weights = [torch.randn_like(o) for o in outs1]
    sum((w * o).sum() for w, o in zip(weights, outs1)).backward()
    sum((w * o).sum() for w, o in zip(weights, outs2)).backward()
    assert max_diff(x.grad, x2.grad) < TOL
    for a, b in inits:
        assert max_diff(a.grad, b.grad) < TOL
    assert_same_grads(ours, theirs, lambda n: n)


def test_rnn_cell_relu_matches_torch():
    theirs = nn.RNNCell(I, H, nonlinearity="relu").double()
    ours = R.RNNCell(I, H, nonlinearity="relu").double()
    ours.load_state_dict(theirs.state_dict())
    x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    assert max_diff(ours(x, h), theirs(x, h)) < TOL


def test_gru_reset_gate_acts_on_the_projected_state():
    """torch's GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). The paper's variant,
    r applied to h before W_hn, is a different function; make sure we are not computing it."""
    cell = R.GRUCell(I, H).double()
    x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    g = cell.gates(x, h)
    W_in, W_hn = cell.weight_ih[2 * H:], cell.weight_hh[2 * H:]
    b_in, b_hn = cell.bias_ih[2 * H:], cell.bias_hh[2 * H:]
    torch_style = torch.tanh(x @ W_in.T + b_in + g["r"] * (h @ W_hn.T + b_hn))
    paper_style = torch.tanh(x @ W_in.T + b_in + (g["r"] * h) @ W_hn.T + b_hn)
    assert max_diff(g["n"], torch_style) < 1e-12
    assert max_diff(g["n"], paper_style) > 1e-3


def test_lstm_gates_follow_the_equations():
    cell = R.LSTMCell(I, H).double()
    x = torch.randn(B, I, dtype=torch.float64)
    h, c = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    g = cell.gates(x, (h, c))
    assert ((g["i"] > 0) & (g["i"] < 1)).all() and ((g["f"] > 0) & (g["f"] < 1)).all()
    assert max_diff(g["c"], g["f"] * c + g["i"] * g["g"]) < 1e-12
    assert max_diff(g["h"], g["o"] * torch.tanh(g["c"])) < 1e-12


def test_bad_nonlinearity_is_a_clear_error():
    with pytest.raises(ValueError, match="tanh"):
        R.RNNCell(I, H, nonlinearity="sigmoid")


# ----------------------------------------------------------------------------- layers

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("given_state", [False, True])
def test_layer_matches_torch_forward_and_backward(kind, num_layers, given_state):
    theirs = TORCH_LAYERS[kind](I, H, num_layers, batch_first=True).double()
    ours = R.LAYERS[kind](I, H, num_layers).double()
    ours.load_torch_weights(theirs)

    x = leaf(B, T, I)
    x2 = x.detach().clone().requires_grad_()
    if given_state:
        s1 = tuple(leaf(num_layers, B, H) for _ in range(2 if kind == "lstm" else 1))
        s2 = tuple(s.detach().clone().requires_grad_() for s in s1)
        init1 = s1 if kind == "lstm" else s1[0]
        init2 = s2 if kind == "lstm" else s2[0]
    else:
        init1 = init2 = None
    out1, fin1 = ours(x, init1)
    out2, fin2 = theirs(x2, init2)
    assert out1.shape == (B, T, H)
    assert max_diff(out1, out2) < TOL
    for a, b in zip(flat(fin1), flat(fin2)):
        assert a.shape == (num_layers, B, H)
        assert max_diff(a, b) < TOL

    w_out = torch.randn_like(out1)
    w_fin = [torch.randn_like(f) for f in flat(fin1)]

    def loss(out, fin):
        return (w_out * out).sum() + sum((w * f).sum() for w, f in zip(w_fin, flat(fin)))

    loss(out1, fin1).backward()
    loss(out2, fin2).backward()
    assert max_diff(x.grad, x2.grad) < TOL
    if given_state:
        for a, b in zip(s1, s2):
            assert max_diff(a.grad, b.grad) < TOL

    def torch_name(ours_name):          # cells.1.weight_hh -> weight_hh_l1
        _, k, name = ours_name.split(".")
        return f"{name}_l{k}"

    assert_same_grads(ours, theirs, torch_name)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_to_torch_round_trip(kind):
    ours = R.LAYERS[kind](I, H, 2).double()
    theirs = ours.to_torch()
    assert isinstance(theirs, TORCH_LAYERS[kind]) and theirs.batch_first
    back = R.LAYERS[kind](I, H, 2).double()
    back.load_torch_weights(theirs)
    for (n, p), q in zip(ours.named_parameters(), back.parameters()):
        assert torch.equal(p, q), n


def test_layer_rejects_wrong_input_shape():
    layer = R.LSTM(I, H)
    with pytest.raises(ValueError, match=r"\(B, T, 5\)"):
        layer(torch.randn(B, T, I + 1))
    with pytest.raises(ValueError, match="num_layers"):
        R.GRU(I, H, num_layers=0)


def test_layer_dropout_only_between_layers_and_only_in_training():
    layer = R.LSTM(I, H, 2, dropout=0.5).double()
    x = torch.randn(B, T, I, dtype=torch.float64)
    layer.eval()
    a, _ = layer(x)
    b, _ = layer(x)
    assert torch.equal(a, b)                          # eval: deterministic
    layer.train()
    c, _ = layer(x)
    assert not torch.equal(a, c)                      # train: dropout between the two layers
    single = R.LSTM(I, H, 1, dropout=0.5).double().train()
    d1, _ = single(x)
    d2, _ = single(x)
    assert torch.equal(d1, d2)                        # one layer: nothing between layers to drop


def test_layer_loop_uses_unbind_not_indexing():
    """Slicing x[:, t] inside the differentiated loop makes backward orders of magnitude
    slower; the layer must iterate with unbind (visible in the autograd graph)."""
    layer = R.RNN(I, H).double()
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    out, _ = layer(x)
    seen, stack = set(), [out.grad_fn]
    names = set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    assert any(n.startswith("Unbind") for n in names), names
    assert not any(n.startswith("Select") for n in names), names


# ----------------------------------------------------------------------------- language model

V = 13


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_lm_step_by_step_equals_full_forward(kind):
    lm = R.RecurrentLM(V, kind, hidden_size=8, num_layers=2, emb_size=6).double().eval()
    idx = torch.randint(V, (2, 9))
    full = lm(idx)
    assert full.shape == (2, 9, V)
    state, steps = None, []
    for t in range(idx.size(1)):
        logits, state = lm.step(idx[:, t], state)
        steps.append(logits)
    assert max_diff(torch.stack(steps, 1), full) < 1e-12


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_lm_carried_state_equals_one_long_forward(kind):
    lm = R.RecurrentLM(V, kind, hidden_size=8).double().eval()
    idx = torch.randint(V, (2, 12))
    first, state = lm(idx[:, :5], return_state=True)
    second, _ = lm(idx[:, 5:], state, return_state=True)
    assert max_diff(torch.cat([first, second], 1), lm(idx)) < 1e-12


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_lm_impls_agree_and_convert(kind):
    ours = R.RecurrentLM(V, kind, hidden_size=8, num_layers=2, dropout=0.1).double().eval()
    theirs = ours.to_impl("torch")
    assert theirs.impl == "torch" and isinstance(theirs.rnn, TORCH_LAYERS[kind])
    assert not theirs.training
    idx = torch.randint(V, (3, 6))
    a = ours(idx)
    b = theirs(idx)
    assert max_diff(a, b) < TOL
    a.square().sum().backward()
    b.square().sum().backward()
    assert max_diff(ours.embed.weight.grad, theirs.embed.weight.grad) < TOL
    assert max_diff(ours.head.weight.grad, theirs.head.weight.grad) < TOL
    assert max_diff(ours.rnn.cells[1].weight_hh.grad, theirs.rnn.weight_hh_l1.grad) < TOL
    back = theirs.to_impl("seqlab")
    assert max_diff(back(idx), a) < TOL


def test_lm_rejects_unknown_cell_and_impl():
    with pytest.raises(ValueError, match="cell"):
        R.RecurrentLM(V, "transformer")
    with pytest.raises(ValueError, match="impl"):
        R.RecurrentLM(V, "lstm", impl="cudnn")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_trace_replays_the_forward_pass(kind):
    lm = R.RecurrentLM(V, kind, hidden_size=8, num_layers=2).double().eval()
    idx = torch.randint(V, (10,))
    out, _ = lm.rnn(lm.embed(idx[None]))
    tr = lm.trace(idx, layer=1)
    expected = {"rnn": {"h"}, "lstm": set("ifgoch"), "gru": set("rznh")}[kind]
    assert set(tr) == expected
    assert all(v.shape == (10, 8) for v in tr.values())
    assert max_diff(tr["h"], out[0]) < 1e-12
    tr_torch = lm.to_impl("torch").trace(idx, layer=1)   # converts to seqlab's cells first
    assert max_diff(tr_torch["h"], out[0]) < TOL


def test_hidden_size_for_matches_real_parameter_counts():
    for kind in ("rnn", "lstm", "gru"):
        for target in (20_000, 200_000):
            H = R.hidden_size_for(65, kind, target)
            n = R.num_params(R.RecurrentLM(65, kind, hidden_size=H))
            n_up = R.num_params(R.RecurrentLM(65, kind, hidden_size=H + 1))
            n_down = R.num_params(R.RecurrentLM(65, kind, hidden_size=H - 1))
            assert abs(n - target) <= min(abs(n_up - target), abs(n_down - target))
    # at equal budget the RNN gets the widest state and the LSTM the narrowest
    sizes = {k: R.hidden_size_for(65, k, 200_000) for k in ("rnn", "gru", "lstm")}
    assert sizes["rnn"] > sizes["gru"] > sizes["lstm"]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_hidden_jacobian_norms_equal_autograd_jacobians(kind):
    cell = OUR_CELLS[kind](3, H).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    norms = R.hidden_jacobian_norms(cell, x)
    assert norms.shape == (6,)
    assert all(p.grad is None for p in cell.parameters())   # no side effects on the parameters

    def run_from(t, h_t, c_t=None):
        s = (h_t, c_t) if kind == "lstm" else h_t
        for x_u in x[t + 1:]:
            s = cell(x_u[None], s)
        return s[0] if kind == "lstm" else s

    # the states h_t along the way, then d h_T / d h_t by torch.autograd.functional.jacobian
    s = (torch.zeros(1, H, dtype=torch.float64),) * 2 if kind == "lstm" else torch.zeros(1, H, dtype=torch.float64)
    for t in range(6):
        s = cell(x[t][None], s)
        h_t, c_t = (s[0], s[1]) if kind == "lstm" else (s, None)
        J = torch.autograd.functional.jacobian(lambda h: run_from(t, h, c_t), h_t.detach())
        assert abs(J.reshape(H, H).norm().item() - norms[t].item()) < 1e-10
    assert abs(norms[-1].item() - H ** 0.5) < 1e-12          # d h_T / d h_T = I
