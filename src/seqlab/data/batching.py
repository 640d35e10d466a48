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
