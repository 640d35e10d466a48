"""Trains a tiny float64 GPT with seqlab.train, alone or under torchrun; used by tests/test_ddp.py.

    python tests/ddp_worker.py out.json                                    # one process
    torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py out.json  # two processes (gloo on CPU)

Every process seeds the same way and draws the same global batch of 8 windows; with two
processes each trains on 4 of them. Rank 0 writes the loss history and the final weights' sum.
"""
import json
import sys

import torch

from seqlab.data import batcher
from seqlab.models.gpt import GPT, GPTConfig
from seqlab.train import TrainConfig, distributed_cleanup, distributed_setup, train


def main(out_path: str) -> None:
    rank, size, _ = distributed_setup()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = (torch.arange(6000) * 3) % 20                     # a learnable sequence, with some noise
    noise = torch.rand(6000) < 0.1
    data[noise] = torch.randint(0, 20, (int(noise.sum()),))
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, d_model=32)).double()
    cfg = TrainConfig(max_steps=20, lr=3e-3, warmup_steps=4, eval_every=5, eval_batches=2, progress=False)
    result = train(model, batcher(data[:5000], data[5000:], 16, 8), cfg)
    if rank == 0:
        with open(out_path, "w") as f:
            json.dump({"world": size, "history": result.history,
                       "weights": [p.detach().sum().item() for p in model.parameters()]}, f)
    distributed_cleanup()


if __name__ == "__main__":
    main(sys.argv[1])
