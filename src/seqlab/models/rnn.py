"""Recurrent networks from scratch: the Elman RNN, the LSTM and the GRU (Part II).

Three layers of the same shape:

    cells   RNNCell, LSTMCell, GRUCell       one time step:   x_t: (B, I), h_{t-1}: (B, H) -> h_t: (B, H)
    layers  RNN, LSTM, GRU                   a whole sequence: x: (B, T, I) -> out: (B, T, H), final state
    model   RecurrentLM                      a character language model: idx: (B, T) -> logits: (B, T, V)

The cells use PyTorch's parameter names, shapes and gate order (``weight_ih``,
``weight_hh``, ``bias_ih``, ``bias_hh``; LSTM gates i, f, g, o; GRU gates r, z, n),
so ``our_cell.load_state_dict(torch_cell.state_dict())`` copies weights and the
tests can check every output and gradient against ``torch.nn.LSTMCell`` and friends.

States follow ``torch.nn.RNN``/``LSTM``/``GRU``: a tensor ``h: (L, B, H)`` for the RNN
and GRU, a pair ``(h, c)`` of such tensors for the LSTM (L = number of layers).

The layers iterate time with ``x.unbind(1)``. Never write ``x[:, t]`` inside a
differentiated loop: each such slice's backward materialises a zero tensor of the
whole input's size, which makes backward orders of magnitude slower.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

CELL_KINDS = ("rnn", "lstm", "gru")


def _add_weights(cell: nn.Module, n_blocks: int, input_size: int, hidden_size: int) -> None:
    """The parameters of a cell with ``n_blocks`` stacked gate blocks, named and shaped as torch's:

        weight_ih (n_blocks*H, I), weight_hh (n_blocks*H, H), bias_ih, bias_hh (n_blocks*H,)

    initialised as PyTorch does: every entry ~ U(-1/sqrt(H), 1/sqrt(H)).
    """
    cell.input_size, cell.hidden_size = input_size, hidden_size
    cell.weight_ih = nn.Parameter(torch.empty(n_blocks * hidden_size, input_size))
    cell.weight_hh = nn.Parameter(torch.empty(n_blocks * hidden_size, hidden_size))
    cell.bias_ih = nn.Parameter(torch.empty(n_blocks * hidden_size))
    cell.bias_hh = nn.Parameter(torch.empty(n_blocks * hidden_size))
    bound = 1.0 / math.sqrt(hidden_size)
    for p in cell.parameters():
        nn.init.uniform_(p, -bound, bound)


# ----------------------------------------------------------------------------- cells

class RNNCell(nn.Module):
    """The Elman RNN step (Elman, 1990).

        h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

    x: (B, I), h: (B, H) -> h_t: (B, H). ``nonlinearity="relu"`` swaps tanh for ReLU.
    Parameters (as ``torch.nn.RNNCell``): weight_ih (H, I), weight_hh (H, H), bias_ih (H,), bias_hh (H,).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        _add_weights(self, 1, input_size, hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        pre = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)   # h_t


class LSTMCell(nn.Module):
    """The long short-term memory step (Hochreiter & Schmidhuber, 1997; forget gate: Gers et al., 2000).

        i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)     input gate: how much to write
        f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)     forget gate: how much to keep
        g_t = tanh   (W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     candidate values to write
        o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)     output gate: how much to show
        c_t = f_t * c_{t-1} + i_t * g_t                          the cell state: additive update
        h_t = o_t * tanh(c_t)

    x: (B, I), state (h, c): (B, H) each -> (h_t, c_t). The four gates' weights are stacked
    in the order i, f, g, o: weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,),
    as in ``torch.nn.LSTMCell``.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _add_weights(self, 4, input_size, hidden_size)

    def gates(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every intermediate of one step, by name: i, f, g, o, c, h (each (B, H))."""
        h, c = state
        pre = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        pre_i, pre_f, pre_g, pre_o = pre.chunk(4, dim=-1)
        i = torch.sigmoid(pre_i)                # input gate
        f = torch.sigmoid(pre_f)                # forget gate
        g = torch.tanh(pre_g)                   # candidate
        o = torch.sigmoid(pre_o)                # output gate
        c_new = f * c + i * g                   # c_t = f_t * c_{t-1} + i_t * g_t
        h_new = o * torch.tanh(c_new)           # h_t = o_t * tanh(c_t)
        return {"i": i, "f": f, "g": g, "o": o, "c": c_new, "h": h_new}

    def forward(self, x, state):
        out = self.gates(x, state)
        return out["h"], out["c"]


class GRUCell(nn.Module):
    """The gated recurrent unit step (Cho et al., 2014), in PyTorch's convention.

        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)             reset gate
        z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)             update gate
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))        candidate
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    Note where r_t acts: on ``W_hn h + b_hn`` (as cuDNN and PyTorch compute it), not on h
    before the product as in the original paper; the two are different functions.
    x: (B, I), h: (B, H) -> h_t: (B, H). Gates stacked r, z, n: weight_ih (3H, I), weight_hh (3H, H).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        _add_weights(self, 3, input_size, hidden_size)

    def gates(self, x: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate of one step, by name: r, z, n, h (each (B, H))."""
        ir, iz, in_ = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, dim=-1)
        hr, hz, hn = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r = torch.sigmoid(ir + hr)              # reset gate
        z = torch.sigmoid(iz + hz)              # update gate
        n = torch.tanh(in_ + r * hn)            # candidate: r scales (W_hn h + b_hn)
        h_new = (1 - z) * n + z * h             # h_t = (1 - z_t) n_t + z_t h_{t-1}
        return {"r": r, "z": z, "n": n, "h": h_new}

    def forward(self, x, h):
        return self.gates(x, h)["h"]


# ----------------------------------------------------------------------------- layers

class _Recurrent(nn.Module):
    """A stack of ``num_layers`` cells run over time; layer k reads layer k-1's outputs.

    forward(x: (B, T, I), state=None) -> (out: (B, T, H), state)
    state: h (L, B, H) for RNN/GRU, (h, c) for LSTM; None means zeros. Batch-first only.
    ``dropout`` is applied to the outputs of every layer but the last, as in torch.
    """

    kind = ""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, **cell_kwargs):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.input_size, self.hidden_size, self.num_layers, self.dropout = (
            input_size, hidden_size, num_layers, dropout)
        cell = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}[self.kind]
        self.cells = nn.ModuleList(
            cell(input_size if k == 0 else hidden_size, hidden_size, **cell_kwargs)
            for k in range(num_layers))

    def zero_state(self, batch_size: int, like: torch.Tensor):
        h = like.new_zeros(self.num_layers, batch_size, self.hidden_size)
        return (h, h.clone()) if self.kind == "lstm" else h

    def layer_state(self, state, k: int):
        """Layer k's slice of a stacked state: h[k] (B, H), or (h[k], c[k]) for the LSTM."""
        return (state[0][k], state[1][k]) if self.kind == "lstm" else state[k]

    def run_layer(self, k: int, x: torch.Tensor, s):
        """Layer k alone over time: x (B, T, in) from state s -> (outputs (B, T, H), final state)."""
        cell, outs = self.cells[k], []
        for x_t in x.unbind(1):                 # time steps, t = 0 .. T-1
            s = cell(x_t, s)
            outs.append(s[0] if self.kind == "lstm" else s)
        return torch.stack(outs, dim=1), s

    def forward(self, x: torch.Tensor, state=None):
        if x.dim() != 3 or x.size(-1) != self.input_size:
            raise ValueError(f"expected x of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        if state is None:
            state = self.zero_state(x.size(0), x)
        finals = []
        for k in range(self.num_layers):
            x, s = self.run_layer(k, x, self.layer_state(state, k))   # (B, T, H): the next layer's input
            if self.dropout and self.training and k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
            finals.append(s)
        if self.kind == "lstm":
            new_state = (torch.stack([s[0] for s in finals]), torch.stack([s[1] for s in finals]))
        else:
            new_state = torch.stack(finals)
        return x, new_state

    # -- weights shared with torch.nn.RNN / LSTM / GRU -----------------------------------
    def load_torch_weights(self, module: nn.Module) -> None:
        """Copy the weights of a ``torch.nn.RNN/LSTM/GRU`` of the same sizes into this layer."""
        sd = {}
        for k in range(self.num_layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                sd[f"cells.{k}.{name}"] = getattr(module, f"{name}_l{k}")
        self.load_state_dict(sd)

    def to_torch(self) -> nn.Module:
        """The equivalent ``torch.nn.RNN/LSTM/GRU`` (batch_first) with these weights copied."""
        cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[self.kind]
        extra = {"nonlinearity": self.cells[0].nonlinearity} if self.kind == "rnn" else {}
        p = self.cells[0].weight_ih
        module = cls(self.input_size, self.hidden_size, self.num_layers, batch_first=True,
                     dropout=self.dropout, **extra).to(device=p.device, dtype=p.dtype)
        with torch.no_grad():
            for k, cell in enumerate(self.cells):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(module, f"{name}_l{k}").copy_(getattr(cell, name))
        return module


class RNN(_Recurrent):
    """Multi-layer Elman RNN; same maths and state as ``torch.nn.RNN(batch_first=True)``."""
    kind = "rnn"


class LSTM(_Recurrent):
    """Multi-layer LSTM; same maths and state as ``torch.nn.LSTM(batch_first=True)``."""
    kind = "lstm"


class GRU(_Recurrent):
    """Multi-layer GRU; same maths and state as ``torch.nn.GRU(batch_first=True)``."""
    kind = "gru"


LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


# ----------------------------------------------------------------------------- language model

class RecurrentLM(nn.Module):
    """A character (or word) language model: embedding -> recurrent layers -> linear head.

        e_t = E[idx_t]                      (B, T, d_emb)
        h_t = recurrent layers(e_1..e_t)     (B, T, H)
        logits_t = W_out dropout(h_t) + b    (B, T, V)

    cell:  "rnn" | "lstm" | "gru"
    impl:  "seqlab" runs this file's from-scratch layers; "torch" runs ``torch.nn.RNN/LSTM/GRU``
           (fused oneDNN/cuDNN kernels: faster, by how much depends on the cell, the size and
           the device; ``python -m seqlab bench rnn`` measures it; the tests prove the maths
           is the same). ``to_impl`` converts a trained model between the two.

    The course's LM interface:
        model(idx) -> logits (B, T, V)
        model(idx, state, return_state=True) -> (logits, state)   # truncated BPTT carries state
        model.step(token: (B,), state) -> (logits (B, V), state)   # generation, one token at a time
    """

    def __init__(self, vocab_size: int, cell: str = "lstm", hidden_size: int = 256,
                 num_layers: int = 1, emb_size: int | None = None, dropout: float = 0.0,
                 impl: str = "seqlab"):
        super().__init__()
        if cell not in CELL_KINDS:
            raise ValueError(f"cell must be one of {CELL_KINDS}, not {cell!r}")
        if impl not in ("seqlab", "torch"):
            raise ValueError(f"impl must be 'seqlab' or 'torch', not {impl!r}")
        emb_size = emb_size or hidden_size
        self.config = dict(vocab_size=vocab_size, cell=cell, hidden_size=hidden_size,
                           num_layers=num_layers, emb_size=emb_size, dropout=dropout)
        self.cell, self.impl = cell, impl
        self.embed = nn.Embedding(vocab_size, emb_size)
        between = dropout if num_layers > 1 else 0.0          # dropout between stacked layers
        if impl == "seqlab":
            self.rnn = LAYERS[cell](emb_size, hidden_size, num_layers, dropout=between)
        else:
            cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
            self.rnn = cls(emb_size, hidden_size, num_layers, batch_first=True, dropout=between)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx: torch.Tensor, state=None, return_state: bool = False):
        """idx: (B, T) token ids -> logits (B, T, V) [, final state]."""
        out, state = self.rnn(self.drop(self.embed(idx)), state)
        logits = self.head(self.drop(out))
        return (logits, state) if return_state else logits

    def step(self, token: torch.Tensor, state=None):
        """One token per sequence, token: (B,) -> (logits (B, V), new state). O(1) memory per step."""
        logits, state = self(token[:, None], state, return_state=True)
        return logits[:, -1], state

    def to_impl(self, impl: str) -> "RecurrentLM":
        """A copy of this model running on the other implementation, with the same weights."""
        other = RecurrentLM(**self.config, impl=impl).to(self.head.weight)
        other.embed.load_state_dict(self.embed.state_dict())
        other.head.load_state_dict(self.head.state_dict())
        if impl == self.impl:
            other.rnn.load_state_dict(self.rnn.state_dict())
        elif impl == "seqlab":
            other.rnn.load_torch_weights(self.rnn)
        else:
            other.rnn = self.rnn.to_torch()
        return other.train(self.training)

    @torch.no_grad()
    def trace(self, idx: torch.Tensor, layer: int = 0) -> dict[str, torch.Tensor]:
        """Every gate and state of one layer while reading idx: (T,) -> {name: (T, H)}.

        For the gate views of the labs. LSTM: i, f, g, o, c, h; GRU: r, z, n, h; RNN: h.
        Runs the from-scratch cells (converting a torch-impl model first).
        """
        model = self if self.impl == "seqlab" else self.to_impl("seqlab")
        rnn = model.rnn
        x = model.embed(idx.reshape(1, -1))
        zeros = rnn.zero_state(1, x)
        for k in range(layer):                  # the layers below only feed the traced one
            x, _ = rnn.run_layer(k, x, rnn.layer_state(zeros, k))
        cell, s, records = rnn.cells[layer], rnn.layer_state(zeros, layer), []
        for x_t in x.unbind(1):
            if self.cell == "rnn":
                s = cell(x_t, s)
                rec = {"h": s}
            else:
                rec = cell.gates(x_t, s)
                s = (rec["h"], rec["c"]) if self.cell == "lstm" else rec["h"]
            records.append(rec)
        return {name: torch.cat([r[name] for r in records]) for name in records[0]}


def num_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def hidden_size_for(vocab_size: int, cell: str, target_params: int, num_layers: int = 1) -> int:
    """The hidden size H (emb_size = H) whose RecurrentLM has the parameter count nearest target.

    For a fair race between cells at (nearly) equal size: an LSTM has 4 weight blocks
    per layer, a GRU 3, an RNN 1, so at equal parameters the RNN gets the widest state.
    """
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]

    def count(H):  # embedding + layers (2 biases per gate block) + head
        layers = gates * (H * H + H * H + 2 * H) * num_layers
        return vocab_size * H + layers + H * vocab_size + vocab_size

    return min(range(1, 4096), key=lambda H: abs(count(H) - target_params))


# ----------------------------------------------------------------------------- gradients through time

def hidden_jacobian_norms(cell: nn.Module, x: torch.Tensor, state=None) -> torch.Tensor:
    """How strongly h_T depends on each earlier state: ||d h_T / d h_t||_F for t = 0 .. T-1.

    cell: an RNNCell, LSTMCell or GRUCell; x: (T, I) one input sequence; state: the initial
    state for a batch of one ((1, H), or a pair for the LSTM), default zeros.
    Returns (T,) with entry t the Frobenius norm of the H x H Jacobian of the final hidden
    state with respect to h_t (h_t the state after reading x_t), so entry T-1 is ||I|| = sqrt(H).

    One backward pass gives every Jacobian: we run H identical copies of the sequence as a
    batch and seed copy k's backward with the k-th unit vector, so copy k's gradient at h_t is
    row k of d h_T / d h_t. For the LSTM the path also runs through the cell state c.
    """
    H = cell.hidden_size
    xs = x.expand(H, *x.shape)                                  # (H, T, I): H copies
    if state is None:
        zeros = x.new_zeros(H, H)
        state = (zeros, zeros.clone()) if isinstance(cell, LSTMCell) else zeros
    else:
        state = tuple(s.expand(H, H) for s in state) if isinstance(cell, LSTMCell) else state.expand(H, H)
    hs = []
    s = state
    for x_t in xs.unbind(1):
        s = cell(x_t, s)
        hs.append(s[0] if isinstance(cell, LSTMCell) else s)
    eye = torch.eye(H, dtype=x.dtype, device=x.device)
    # autograd.grad (not .backward) leaves the cell's parameter gradients untouched.
    grads = torch.autograd.grad(hs[-1], hs, grad_outputs=eye)
    return torch.stack([g.norm() for g in grads])
