"""Continuous Thought Machine (CTM): Darlow, Regan, Risi, Seely and Jones (Sakana AI, 2025).

A CTM "thinks" for T internal **ticks** t = 1..T that are decoupled from the input: it reads the
whole input through attention at every tick and makes a prediction at every tick.

    cfg = CTMConfig(vocab_size=2, seq_len=16, n_outputs=16, n_classes=2, ticks=20)
    model = CTM(cfg)
    logits, certainty = model(x)                     # x (B, N) token ids
    # logits (B, T, n_outputs, n_classes): one prediction per tick; certainty (B, T)
    loss = ctm_loss(logits, y, certainty)            # y (B, n_outputs)

State per sample: post-activations z^t in R^D (D neurons) and the pre-activation history
A^t in R^{D x M} (the last M pre-activations of every neuron, first in, first out). Both start
from learned values z^0 and A^0. One tick, in the paper's order:

    S_action = sync(z^0..z^{t-1}, action pairs)        neural synchronisation, see below
    q^t = W_in S_action                                 attention query
    o^t = MultiHeadAttention(q^t, keys, values)         keys/values from the input, computed once
    a^t = f_syn([z^{t-1} ; o^t])                        synapse model: an MLP shared by all neurons
    A^t = [A^{t-1}[:, 1:], a^t]                         history: drop the oldest, append the newest
    z^t_d = g_{theta_d}(A^t_d)                          neuron-level model: one private MLP per neuron
    S_out = sync(z^1..z^t, output pairs)
    y^t = W_out S_out                                   this tick's prediction

(The paper writes the NLM output as z^{t+1}; here z^t is the state *after* tick t, so that y^t
and z^t belong to the same tick.) Nothing at tick t uses anything computed at a later tick.

Neural synchronisation. With Z^t = [z^1 .. z^t] in R^{D x t}, the full synchronisation matrix is
Z^t (Z^t)^T. The CTM reads only a fixed random subset of pairs (i, j) (a few self-pairs i = j among
them), one subset for the output and one for the attention query, and gives every pair a learned
decay r_ij >= 0 that weights recent ticks more:

    S^t_ij = sum_{tau<=t} e^{-r_ij (t - tau)} z_i^tau z_j^tau  /  sqrt(sum_{tau<=t} e^{-r_ij (t - tau)})

computed recursively:  alpha <- e^{-r} alpha + z_i z_j,  beta <- e^{-r} beta + 1,  S = alpha / sqrt(beta).

Simplifications against the paper (said here so that nobody mistakes this for the reference): the
synapse model is a stack of Linear -> GLU -> LayerNorm layers, not the paper's U-Net MLP; the NLMs
are M -> H -> 1 with a SiLU (the paper uses GLUs); the input "backbone" is a token embedding plus a
learned position embedding (the paper's parity model uses the same kind of embedding input).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class CTMConfig:
    vocab_size: int = 2          # input tokens (parity: 0 stands for +1, 1 for -1)
    seq_len: int = 16            # N, input positions (learned position embeddings)
    n_outputs: int = 16          # L, predictions per tick (parity: one per position)
    n_classes: int = 2           # K, classes per prediction
    d_model: int = 128           # D, neurons
    memory: int = 10             # M, pre-activations each neuron remembers
    d_nlm: int = 16              # H, hidden width of every neuron-level model
    ticks: int = 20              # T, internal ticks
    d_input: int = 64            # width of the attention keys, values and output o^t
    n_head: int = 4
    synapse_depth: int = 1       # Linear -> GLU -> LayerNorm layers in the synapse model
    n_sync_out: int = 64         # D_out: neuron pairs read for the output
    n_sync_action: int = 32      # D_action: neuron pairs read for the attention query
    n_self_pairs: int = 8        # how many of each set of pairs are self-pairs (i, i)
    pair_seed: int = 0           # the random pairs are fixed by this seed


def parity_batch(batch_size: int, length: int, generator: torch.Generator | None = None):
    """Cumulative parity (the paper's task). Returns x (B, N) in {0, 1} and y (B, N) in {0, 1}.

    The sequence is +-1 values; token 1 stands for -1. y_n is the parity of the number of -1s among
    positions 1..n, i.e. whether the running product of the +-1 values is negative.
    """
    x = torch.randint(0, 2, (batch_size, length), generator=generator)
    return x, x.cumsum(dim=1) % 2


class Synapse(nn.Module):
    """f_syn: [z ; o] (B, D + d_input) -> a (B, D). Every layer is Linear -> GLU -> LayerNorm."""

    def __init__(self, cfg: CTMConfig):
        super().__init__()
        layers, d_in = [], cfg.d_model + cfg.d_input
        for _ in range(cfg.synapse_depth):
            layers += [nn.Linear(d_in, 2 * cfg.d_model), nn.GLU(dim=-1), nn.LayerNorm(cfg.d_model)]
            d_in = cfg.d_model
        self.net = nn.Sequential(*layers)

    def forward(self, zo):
        return self.net(zo)


class NeuronLevelModels(nn.Module):
    """D private MLPs, one per neuron: A (B, D, M) -> z (B, D).

    z_d = w2_d . silu(W1_d A_d + b1_d) + b2_d, with weights w1 (D, M, H), b1 (D, H), w2 (D, H), b2 (D).
    The einsums run all D small MLPs at once; a loop over D nn.Linear pairs gives the same numbers.
    """

    def __init__(self, cfg: CTMConfig):
        super().__init__()
        D, M, H = cfg.d_model, cfg.memory, cfg.d_nlm
        self.w1 = nn.Parameter(torch.empty(D, M, H).uniform_(-1, 1) / math.sqrt(M))
        self.b1 = nn.Parameter(torch.zeros(D, H))
        self.w2 = nn.Parameter(torch.empty(D, H).uniform_(-1, 1) / math.sqrt(H))
        self.b2 = nn.Parameter(torch.zeros(D))

    def forward(self, A):
        h = F.silu(torch.einsum("bdm,dmh->bdh", A, self.w1) + self.b1)    # (B, D, H)
        return torch.einsum("bdh,dh->bd", h, self.w2) + self.b2            # (B, D)


def random_pairs(D: int, n_pairs: int, n_self: int, generator: torch.Generator):
    """Fixed neuron pairs (left, right), each (n_pairs,): the first n_self have left == right."""
    left = torch.randint(0, D, (n_pairs,), generator=generator)
    right = torch.randint(0, D, (n_pairs,), generator=generator)
    right[:n_self] = left[:n_self]
    return left, right


class CTM(nn.Module):
    def __init__(self, cfg: CTMConfig):
        super().__init__()
        self.cfg = cfg
        D, M = cfg.d_model, cfg.memory
        # input features: token + position embeddings, then keys and values are made by the attention
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_input)
        self.pos_emb = nn.Parameter(0.02 * torch.randn(cfg.seq_len, cfg.d_input))
        self.kv_norm = nn.LayerNorm(cfg.d_input)
        self.attn = nn.MultiheadAttention(cfg.d_input, cfg.n_head, batch_first=True)
        # learned start state z^0 (D,) and history A^0 (D, M)
        self.z0 = nn.Parameter(torch.empty(D).uniform_(-1, 1) / math.sqrt(D))
        self.A0 = nn.Parameter(torch.empty(D, M).uniform_(-1, 1) / math.sqrt(D + M))
        self.synapse = Synapse(cfg)
        self.nlm = NeuronLevelModels(cfg)
        # neural synchronisation: fixed random pairs, a learned decay r >= 0 per pair
        g = torch.Generator().manual_seed(cfg.pair_seed)
        for kind, n in (("out", cfg.n_sync_out), ("action", cfg.n_sync_action)):
            left, right = random_pairs(D, n, min(cfg.n_self_pairs, n), g)
            self.register_buffer(f"{kind}_left", left)
            self.register_buffer(f"{kind}_right", right)
        self.decay_out = nn.Parameter(torch.zeros(cfg.n_sync_out))
        self.decay_action = nn.Parameter(torch.zeros(cfg.n_sync_action))
        self.q_proj = nn.Linear(cfg.n_sync_action, cfg.d_input)               # q = W_in S_action
        self.out_proj = nn.Linear(cfg.n_sync_out, cfg.n_outputs * cfg.n_classes)  # y = W_out S_out

    @staticmethod
    def sync_update(z, left, right, decay, alpha, beta):
        """One step of the recursive synchronisation. z (B, D); alpha, beta (B, P) or None (first step).

        alpha <- e^{-r} alpha + z_i z_j ;  beta <- e^{-r} beta + 1 ;  S = alpha / sqrt(beta).
        Returns S, alpha, beta, each (B, P). The decay r is clamped to [0, 15].
        """
        pair = z[:, left] * z[:, right]                                    # z_i z_j   (B, P)
        if alpha is None:
            alpha, beta = pair, torch.ones_like(pair)
        else:
            keep = torch.exp(-decay.clamp(0, 15))                          # e^{-r}    (P,)
            alpha, beta = keep * alpha + pair, keep * beta + 1
        return alpha / torch.sqrt(beta), alpha, beta

    def forward(self, x, ticks: int | None = None, return_traces: bool = False):
        """x (B, N) token ids -> logits (B, T, L, K), certainty (B, T) [, traces].

        traces (detached): z (B, T+1, D) with z^0 first, attention (B, T, N) averaged over heads,
        sync_out (B, T, D_out), sync_action (B, T, D_action) (the one used at each tick).
        """
        cfg = self.cfg
        T = ticks or cfg.ticks
        B, N = x.shape
        kv = self.kv_norm(self.tok_emb(x) + self.pos_emb[:N])              # (B, N, d_input)
        z = self.z0.expand(B, -1)                                          # z^0 (B, D)
        A = self.A0.expand(B, -1, -1)                                      # A^0 (B, D, M)
        S_act, a_act, b_act = self.sync_update(z, self.action_left, self.action_right, self.decay_action, None, None)
        a_out = b_out = None
        logits, zs, attns, s_outs, s_acts = [], [z], [], [], []
        for t in range(T):
            q = self.q_proj(S_act).unsqueeze(1)                            # q^t = W_in S_action  (B, 1, d_input)
            o, w = self.attn(q, kv, kv, need_weights=return_traces)        # o^t (B, 1, d_input), w (B, 1, N)
            a = self.synapse(torch.cat([z, o.squeeze(1)], dim=-1))        # a^t = f_syn([z ; o])  (B, D)
            A = torch.cat([A[:, :, 1:], a.unsqueeze(-1)], dim=-1)          # A^t = [A[:, 1:], a^t]  (B, D, M)
            z = self.nlm(A)                                                # z^t_d = g_d(A^t_d)  (B, D)
            S_out, a_out, b_out = self.sync_update(z, self.out_left, self.out_right, self.decay_out, a_out, b_out)
            logits.append(self.out_proj(S_out))                            # y^t = W_out S_out
            if return_traces:
                zs.append(z.detach()); attns.append(w[:, 0].detach())
                s_outs.append(S_out.detach()); s_acts.append(S_act.detach())
            S_act, a_act, b_act = self.sync_update(z, self.action_left, self.action_right, self.decay_action, a_act, b_act)
        logits = torch.stack(logits, 1).view(B, T, cfg.n_outputs, cfg.n_classes)
        cert = certainty(logits)
        if not return_traces:
            return logits, cert
        traces = {"z": torch.stack(zs, 1), "attention": torch.stack(attns, 1),
                  "sync_out": torch.stack(s_outs, 1), "sync_action": torch.stack(s_acts, 1)}
        return logits, cert, traces


def certainty(logits):
    """C^t = 1 - H(p^t) / log K, averaged over the L outputs. logits (B, T, L, K) -> (B, T) in [0, 1]."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))   # float32 at least, float64 stays
    logp = F.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)                                 # (B, T, L)
    return 1 - (entropy / math.log(logits.size(-1))).mean(-1)


def ctm_loss(logits, y, cert, return_ticks: bool = False):
    """The CTM loss. logits (B, T, L, K), y (B, L), cert (B, T) -> scalar [, (t1, t2)].

    Per sample, L^t is the cross-entropy at tick t (mean over the L outputs);
    t1 = argmin_t L^t (the tick with the lowest loss), t2 = argmax_t C^t (the most certain tick);
    the loss is (L^{t1} + L^{t2}) / 2, averaged over the batch. Only the choice of ticks is
    non-differentiable; the gradient flows through both chosen losses.
    """
    B, T, L, K = logits.shape
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    per_tick = F.cross_entropy(logits.reshape(-1, K), y.unsqueeze(1).expand(B, T, L).reshape(-1),
                               reduction="none").view(B, T, L).mean(-1)    # L^t  (B, T)
    t1 = per_tick.argmin(dim=1)
    t2 = cert.argmax(dim=1)
    rows = torch.arange(B, device=logits.device)
    loss = (per_tick[rows, t1] + per_tick[rows, t2]).mean() / 2
    return (loss, (t1, t2)) if return_ticks else loss


def most_certain(logits, cert):
    """The prediction at each sample's most certain tick: (B, T, L, K), (B, T) -> (B, L) class ids."""
    best = cert.argmax(dim=1)
    return logits[torch.arange(logits.size(0), device=logits.device), best].argmax(-1)


@torch.no_grad()
def adaptive_predict(model: CTM, x, threshold: float, ticks: int | None = None):
    """Stop each sample at the first tick whose certainty reaches ``threshold`` (else at the last).

    Returns predictions (B, L) and ticks used (B,) (1-based). Because the tick-t output depends only
    on ticks <= t, running all ticks and reading tick t_stop gives exactly the prediction that
    stopping there would have given; this helper counts the ticks an early exit would save, it does
    not save them (a batch runs until its slowest sample stops).
    """
    logits, cert = model(x, ticks=ticks)
    T = cert.size(1)
    passed = cert >= threshold                                             # (B, T)
    first = torch.where(passed.any(1), passed.float().argmax(1), torch.full_like(passed[:, 0], T - 1, dtype=torch.long))
    preds = logits[torch.arange(x.size(0), device=x.device), first].argmax(-1)
    return preds, first + 1
