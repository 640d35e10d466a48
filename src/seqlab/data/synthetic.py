"""Synthetic tasks that isolate one ability of a sequence model (Part VI).

    task = SelectiveCopying(seq_len=64, n_tokens=8, vocab=8)
    task = AssociativeRecall(n_pairs=16, n_keys=32, n_values=32)
    x, y = task.batch(32, generator=g)             # (B, T) inputs, (B, T) targets, -100 = not scored
    get_batch = task.batcher(32, val_batches=4)   # for seqlab.train.train: fresh training batches, fixed val
    acc = accuracy(model, x, y)                    # fraction of scored positions predicted exactly

Targets use -100 where nothing is asked, which ``F.cross_entropy`` ignores by default, so
the course's training loop trains on exactly the answers.

**Selective copying** (Gu and Dao, 2023, fig. 2): a few data tokens are scattered at random
positions among noise tokens; after them come as many "go" markers, and at each marker the
model must output the next data token in order. Where the data sits changes from example
to example, so a fixed (time-invariant) convolution cannot pick it out: the model has to
decide, token by token, what to keep.

**Associative recall**, in its multi-query form (MQAR: Arora et al., 2023, "Zoology"): a list
of key-value pairs, then keys asked again in random order, each followed by its value. At
each asked key the model must predict the value it was paired with. This measures how much
a fixed-size state can hold and look up; attention, which keeps every token, finds it easy.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass
class SelectiveCopying:
    """Vocabulary: 0 noise, 1 "go" marker, 2 .. vocab + 1 data. Sequence length seq_len + n_tokens."""
    seq_len: int = 64           # the noisy part
    n_tokens: int = 8           # data tokens to remember, in order
    vocab: int = 8              # distinct data tokens

    @property
    def vocab_size(self) -> int:
        return self.vocab + 2

    def batch(self, batch_size: int, generator: torch.Generator | None = None):
        """(x, y): (B, seq_len + n_tokens) each; y holds the data tokens at the marker positions."""
        B, L, K = batch_size, self.seq_len, self.n_tokens
        if K > L:
            raise ValueError(f"n_tokens ({K}) cannot exceed seq_len ({L})")
        data = torch.randint(2, self.vocab + 2, (B, K), generator=generator)
        pos = torch.rand(B, L, generator=generator).argsort(dim=1)[:, :K].sort(dim=1).values   # K distinct places, in order
        x = torch.zeros(B, L + K, dtype=torch.long)
        x.scatter_(1, pos, data)
        x[:, L:] = 1                                                                   # the "go" markers
        y = torch.full_like(x, IGNORE)
        y[:, L:] = data                                                                # at marker i: data token i
        return x, y


@dataclass
class AssociativeRecall:
    """Keys are ids 0 .. n_keys - 1, values n_keys .. n_keys + n_values - 1. Length 4 n_queries-ish.

    x = k_1 v_1 k_2 v_2 ... k_P v_P | q_1 a_1 q_2 a_2 ... q_Q a_Q, with distinct keys, each q_j one
    of the keys and a_j its value; y = a_j at the position of q_j, ignored elsewhere.
    """
    n_pairs: int = 16
    n_keys: int = 32
    n_values: int = 32
    n_queries: int | None = None    # default: every key once

    @property
    def vocab_size(self) -> int:
        return self.n_keys + self.n_values

    def batch(self, batch_size: int, generator: torch.Generator | None = None):
        B, P = batch_size, self.n_pairs
        Q = self.n_queries or P
        if P > self.n_keys:
            raise ValueError(f"n_pairs ({P}) cannot exceed n_keys ({self.n_keys}): keys must be distinct")
        keys = torch.rand(B, self.n_keys, generator=generator).argsort(dim=1)[:, :P]           # distinct keys
        values = torch.randint(self.n_keys, self.n_keys + self.n_values, (B, P), generator=generator)
        asked = torch.randint(0, P, (B, Q), generator=generator)                                # which pair each query asks
        q, a = keys.gather(1, asked), values.gather(1, asked)
        x = torch.cat([torch.stack([keys, values], 2).flatten(1), torch.stack([q, a], 2).flatten(1)], dim=1)
        y = torch.full_like(x, IGNORE)
        y[:, 2 * P::2] = a                                                                     # predict a_j at q_j
        return x, y


def make_batcher(task, batch_size: int, val_batches: int = 4, seed: int = 0):
    """get_batch(split) for :func:`seqlab.train.train`: new random training batches; a fixed val set."""
    g_train = torch.Generator().manual_seed(seed)
    g_val = torch.Generator().manual_seed(seed + 1_000_003)
    val = [task.batch(batch_size, g_val) for _ in range(val_batches)]
    count = {"val": 0}

    def get_batch(split: str):
        if split == "train":
            return task.batch(batch_size, g_train)
        out = val[count["val"] % val_batches]
        count["val"] += 1
        return out

    get_batch.val = val
    return get_batch


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor, device=None) -> float:
    """Fraction of the scored positions (y != -100) where the model's most likely token is y."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    pred = model(x.to(device)).argmax(-1).cpu()
    model.train(was_training)
    scored = y != IGNORE
    return (pred[scored] == y[scored]).float().mean().item()
