"""The shared training loop under torchrun with DistributedDataParallel (gloo, 2 CPU processes):
the same loss curve and weights as one process with the same global batch, to 1e-6 (float64)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

WORKER = Path(__file__).with_name("ddp_worker.py")


def _run(args, tmp_path, name):
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*args, str(WORKER), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_two_processes_match_one_process(tmp_path):
    one = _run([sys.executable], tmp_path, "one")
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], tmp_path, "two")
    assert (one["world"], two["world"]) == (1, 2)
    h1, h2 = one["history"], two["history"]
    assert len(h1["train_loss"]) == len(h2["train_loss"]) == 20
    for key in ("train_loss", "val_loss", "eval_train_loss", "grad_norm", "lr"):
        gap = max(abs(a - b) for a, b in zip(h1[key], h2[key]))
        assert gap < 1e-6, (key, gap)
    assert max(abs(a - b) for a, b in zip(one["weights"], two["weights"])) < 1e-6
    # and the run did learn something: not a trivially constant curve
    assert h1["train_loss"][-1] < h1["train_loss"][0] - 0.05
