"""Splits and batches for language modelling on one long token stream."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def train_val_split(data, train_fraction: float = 0.9):
    """First ``train_fraction`` of the stream for training, the rest for validation.

    nanoGPT's convention (first 90% / last 10%), so results compare with published numbers.
    Works for strings, lists, NumPy arrays and tensors.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n = int(len(data) * train_fraction)
    return data[:n], data[n:]


def random_windows(
    data: torch.Tensor, block_size: int, batch_size: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of a 1-D token tensor.

    Returns x: (B, T) and y: (B, T) with y[b, t] = x[b, t+1] (the next token), T = block_size.
    Randomness comes from torch's global RNG, which the training loop saves in checkpoints,
    so a resumed run draws exactly the batches the uninterrupted one would have.
    """
    if data.dim() != 1:
        raise ValueError(f"expected a 1-D token tensor, got shape {tuple(data.shape)}")
    if len(data) <= block_size:
        raise ValueError(f"the data ({len(data)} tokens) must be longer than block_size={block_size}")
    starts = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([data[s : s + block_size] for s in starts])
    y = torch.stack([data[s + 1 : s + 1 + block_size] for s in starts])
    return x.to(device), y.to(device)


def batcher(
    train, val, block_size: int, batch_size: int, device: torch.device | str = "cpu"
) -> Callable[[str], tuple[torch.Tensor, torch.Tensor]]:
    """``get_batch(split)`` for :func:`seqlab.train.train` over two token streams."""
    splits = {"train": torch.as_tensor(np.asarray(train), dtype=torch.long),
              "val": torch.as_tensor(np.asarray(val), dtype=torch.long)}

    def get_batch(split: str):
        if split not in splits:
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        return random_windows(splits[split], block_size, batch_size, device)

    return get_batch


class StreamBatcher:
    """``get_batch(split)`` for truncated backpropagation through time (Part II).

    Each split's token stream is cut into ``batch_size`` equal, contiguous *streams*
    (row b of every batch continues stream b), and each call returns the next window
    of ``block_size`` tokens of every stream:

        stream b:  |-- window 0 --|-- window 1 --|-- window 2 --| ...
        call k returns x[b] = stream_b[k*T : (k+1)*T],  y[b] = the same shifted by one token

    so a recurrent model can carry its state from one call to the next: the state at
    the end of window k is exactly the history window k+1 needs. After the last full
    window a split starts again from window 0 (the few tokens that do not fill a
    window, at most ``block_size * batch_size``, are never used for training).

    ``windows(split, n)`` walks the first n windows (all of them by default) from the
    start without moving the cursors, for evaluation. The cursors are the batcher's
    only state; ``seqlab.train.train`` saves them in checkpoints (``state_dict``).
    """

    def __init__(self, train, val, block_size: int, batch_size: int,
                 device: torch.device | str = "cpu"):
        self.block_size, self.batch_size, self.device = block_size, batch_size, device
        self.streams, self.n_windows = {}, {}
        for split, data in (("train", train), ("val", val)):
            data = torch.as_tensor(np.asarray(data), dtype=torch.long)
            length = (len(data) - 1) // batch_size            # tokens per stream (x side)
            n = length // block_size
            if n < 1:
                raise ValueError(
                    f"the {split} split ({len(data)} tokens) is too short for {batch_size} streams "
                    f"of at least one window of {block_size} tokens")
            # (B, length + 1): stream b holds data[b*length : (b+1)*length + 1]
            starts = torch.arange(batch_size) * length
            self.streams[split] = torch.stack([data[s: s + length + 1] for s in starts])
            self.n_windows[split] = n
        self.cursor = {"train": 0, "val": 0}

    def window(self, split: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Window k of every stream: x, y both (B, T)."""
        T = self.block_size
        s = self.streams[split]
        return s[:, k * T: (k + 1) * T].to(self.device), s[:, k * T + 1: (k + 1) * T + 1].to(self.device)

    def __call__(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in self.streams:
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        k = self.cursor[split]
        self.cursor[split] = (k + 1) % self.n_windows[split]
        return self.window(split, k)

    def windows(self, split: str, n: int | None = None):
        """Yield the first n windows (default: all) of a split in order; cursors unchanged."""
        n = self.n_windows[split] if n is None else min(n, self.n_windows[split])
        for k in range(n):
            yield self.window(split, k)

    def starts_new_pass(self, split: str = "train") -> bool:
        """True when the next call returns window 0 again (the stream wrapped around)."""
        return self.cursor[split] == 0

    def state_dict(self) -> dict:
        return {"cursor": dict(self.cursor)}

    def load_state_dict(self, state: dict) -> None:
        self.cursor = dict(state["cursor"])
