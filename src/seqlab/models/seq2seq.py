"""Sequence to sequence with GRUs, with and without Bahdanau attention (Part III).

    model = Seq2Seq(src_vocab=8000, tgt_vocab=6000, attention=True)
    logits = model(src, src_mask, tgt_in)         # teacher forcing: (B, T, V)
    state = model.encode(src, src_mask)           # then, one output token at a time:
    logits, state = model.decode_step(y_prev, state)     # y_prev: (B,) -> logits (B, V)
    state["attn"]                                 # (B, S): where this step looked (attention)

The encoder reads the source with a bidirectional GRU (Cho et al., 2014;
Bahdanau et al., 2015): h_j = [->h_j ; <-h_j], one 2H-vector per source token.

The two decoders differ in one thing only, the context vector c_t they read at
step t, so the lab's comparison isolates attention:

- ``attention=False`` (the fixed-vector bottleneck of Sutskever et al. 2014 and
  Cho et al. 2014): c_t = c = [->h_S ; <-h_1], the two directions' final states,
  the same vector for every output word. The whole sentence must fit into it.
- ``attention=True`` (Bahdanau et al., 2015): the decoder scores every encoder
  state against its previous state s_{t-1},

      e_tj = v^T tanh(W s_{t-1} + U h_j)              (additive attention)
      a_tj = softmax_j(e_tj)    over real source tokens (padding masked)
      c_t  = sum_j a_tj h_j

  and the weights a_t are an alignment: which source words output word t used.

Both then update s_t = GRUCell([E y_{t-1} ; c_t], s_{t-1}), starting from
s_0 = tanh(W_init c), and predict y_t from o_t = tanh(W_o [s_t ; c_t ; E y_{t-1}])
with logits = W_out o_t. The encoder and the decoder's GRU are torch's fused
``nn.GRU`` / ``nn.GRUCell``: Part II built the same cells from scratch and
checked them equal.

``state`` is a dict of tensors whose first dimension is the batch, so greedy and
beam search in ``seqlab.generate`` can reorder or repeat it for any model.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class Encoder(nn.Module):
    """Bidirectional GRU over the source. src: (B, S) ids, src_mask: (B, S) bool (True = real).

    Returns (h: (B, S, 2H) the encoder states, zero at padding; c: (B, 2H) = [->h_last ; <-h_first]).
    """

    def __init__(self, vocab: int, emb_size: int, hidden_size: int, dropout: float = 0.0, pad_id: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb_size, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.GRU(emb_size, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, src, src_mask):
        lengths = src_mask.sum(1)
        if (lengths == 0).any():
            raise ValueError("every source sentence needs at least one real token (src_mask all False)")
        x = self.drop(self.embed(src))                               # (B, S, E)
        # packing makes the forward GRU stop at each sentence's last real token and
        # the backward GRU start there, so padding never enters a state
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)                                  # h_n: (2, B, H)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        return h, torch.cat([h_n[0], h_n[1]], dim=-1)


class AdditiveAttention(nn.Module):
    """Bahdanau attention: e_j = v^T tanh(W s + U h_j); a = softmax(e) over real tokens; c = sum_j a_j h_j."""

    def __init__(self, query_size: int, key_size: int, attn_size: int):
        super().__init__()
        self.W = nn.Linear(query_size, attn_size, bias=False)
        self.U = nn.Linear(key_size, attn_size, bias=True)
        self.v = nn.Linear(attn_size, 1, bias=False)

    def project_keys(self, h):
        """U h_j for every source position, computed once per sentence. h: (B, S, 2H) -> (B, S, A)."""
        return self.U(h)

    def forward(self, s, keys, h, src_mask):
        """s: (B, Hd) decoder state, keys: (B, S, A) = U h, h: (B, S, 2H) -> (c: (B, 2H), a: (B, S))."""
        e = self.v(torch.tanh(self.W(s)[:, None, :] + keys)).squeeze(-1)      # (B, S) scores e_j
        e = e.masked_fill(~src_mask, float("-inf"))                            # padding gets weight 0
        a = F.softmax(e, dim=-1)                                               # a_j = exp(e_j) / sum_k exp(e_k)
        c = torch.bmm(a[:, None, :], h).squeeze(1)                             # c = sum_j a_j h_j
        return c, a


class Seq2Seq(nn.Module):
    """GRU encoder-decoder; ``attention`` switches between the fixed context and Bahdanau attention.

    src_vocab, tgt_vocab: vocabulary sizes; emb_size E; hidden_size H (each encoder
    direction and the decoder); attn_size A (attention's hidden layer).
    teacher_forcing: probability of feeding the true previous word in training (1.0 =
    always, as in the papers); below 1 the model is sometimes fed its own greedy guess.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, emb_size: int = 256, hidden_size: int = 256,
                 attention: bool = True, attn_size: int | None = None, dropout: float = 0.2,
                 teacher_forcing: float = 1.0, pad_id: int = 0):
        super().__init__()
        H, E = hidden_size, emb_size
        self.use_attention, self.teacher_forcing = attention, teacher_forcing
        self.encoder = Encoder(src_vocab, E, H, dropout, pad_id)
        self.attention = AdditiveAttention(H, 2 * H, attn_size or H) if attention else None
        self.init = nn.Linear(2 * H, H)                         # s_0 = tanh(W_init c)
        self.embed = nn.Embedding(tgt_vocab, E, padding_idx=pad_id)
        self.cell = nn.GRUCell(E + 2 * H, H)                    # s_t = GRU([E y_{t-1} ; c_t], s_{t-1})
        self.pre_out = nn.Linear(H + 2 * H + E, E)              # o_t = tanh(W_o [s_t ; c_t ; E y_{t-1}])
        self.out = nn.Linear(E, tgt_vocab)                      # logits = W_out o_t
        self.drop = nn.Dropout(dropout)

    def encode(self, src, src_mask) -> dict:
        """Read the source once. Returns the decoding state (every tensor batch-first):

        h (B, S, 2H) encoder states; keys (B, S, A) = U h (attention only); src_mask (B, S);
        c (B, 2H) the fixed context; s (B, H) the decoder state s_0; attn (B, S) the last weights.
        """
        h, c = self.encoder(src, src_mask)
        state = {"h": h, "src_mask": src_mask, "c": c, "s": torch.tanh(self.init(c)),
                 "attn": torch.zeros_like(src_mask, dtype=h.dtype)}
        if self.attention is not None:
            state["keys"] = self.attention.project_keys(h)
        return state

    def _recur(self, y_prev, state: dict):
        """The recurrent part of a step: attend, then update the GRU. Returns (s_t, c_t, E y_{t-1}, state)."""
        s = state["s"]
        if self.attention is not None:
            c, a = self.attention(s, state["keys"], state["h"], state["src_mask"])   # attends with s_{t-1}
        else:
            c, a = state["c"], state["attn"]                   # the same vector at every step
        emb = self.drop(self.embed(y_prev))                                         # (B, E)
        s = self.cell(torch.cat([emb, c], dim=-1), s)                               # (B, H)
        return s, c, emb, {**state, "s": s, "attn": a}

    def _readout(self, s, c, emb):
        """logits = W_out tanh(W_o [s_t ; c_t ; E y_{t-1}]); works on (B, .) or (B, T, .) inputs."""
        o = torch.tanh(self.pre_out(torch.cat([s, c, emb], dim=-1)))
        return self.out(self.drop(o))

    def decode_step(self, y_prev, state: dict):
        """One output word. y_prev: (B,) previous token ids -> (logits (B, V), new state)."""
        s, c, emb, state = self._recur(y_prev, state)
        return self._readout(s, c, emb), state

    def forward(self, src, src_mask, tgt_in, return_attention: bool = False):
        """Teacher-forced logits. src, src_mask: (B, S); tgt_in: (B, T) = <bos> y_1 .. y_{T-1}.

        Returns logits (B, T, V) (and the attention weights (B, T, S) if asked).
        The same computation as calling decode_step T times, but the output layer, the
        costliest part (V is thousands of words), runs once over all T steps.
        """
        state = self.encode(src, src_mask)
        steps, attn = [], []
        y_prev = tgt_in[:, 0]
        for t in range(tgt_in.size(1)):
            s, c, emb, state = self._recur(y_prev, state)
            steps.append((s, c, emb))
            attn.append(state["attn"])
            if t + 1 < tgt_in.size(1):
                y_prev = tgt_in[:, t + 1]
                if self.training and self.teacher_forcing < 1.0:   # sometimes feed the model's own guess
                    own = torch.rand(y_prev.shape, device=y_prev.device) >= self.teacher_forcing
                    y_prev = torch.where(own, self._readout(s, c, emb).argmax(-1), y_prev)
        s, c, emb = (torch.stack(parts, dim=1) for parts in zip(*steps))           # (B, T, .)
        logits = self._readout(s, c, emb)                                           # (B, T, V)
        return (logits, torch.stack(attn, dim=1)) if return_attention else logits
