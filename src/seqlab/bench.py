"""Honest timing: warm-up, device synchronisation, repeats, min and median; peak memory.

    t = timeit(lambda: model(x), device=device)       # {"min": s, "median": s, "times": [...]}

Rules every benchmark of the course follows:

- warm up first (the first calls pay for allocation, kernel selection, lazy init);
- on CUDA, synchronise before reading the clock: kernels run asynchronously, so a
  clock read right after a launch measures the launch, not the work;
- repeat, and report the minimum (the least disturbed run) and the median;
- compare implementations side by side in one run, as ratios: absolute numbers
  depend on the machine, ratios far less. Tests never assert times.

``python -m seqlab bench rnn`` runs :func:`bench_rnn`.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def synchronize(device) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timeit(fn, *, device="cpu", warmup: int = 2, repeats: int = 5) -> dict:
    """Seconds per call of fn(): {"min", "median", "times"} over ``repeats`` timed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return {"min": min(times), "median": statistics.median(times), "times": times}


def peak_memory(fn, *, device) -> int | None:
    """Peak bytes allocated on a CUDA device while fn() runs; None elsewhere (not measured)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table, numbers right-aligned."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)
    cells = [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- bench rnn

def bench_rnn(hidden_sizes=(64, 128, 256, 512), batch_size: int = 32, seq_len: int = 128,
              device=None, repeats: int = 5, print_table: bool = True) -> list[dict]:
    """Tokens/s of seqlab's from-scratch LSTM layer vs ``torch.nn.LSTM``, same weights.

    For each hidden size H (input size = H, one layer, float32): a training step
    (forward + backward of out.sum()) and an inference forward (no grad) on a batch of
    (batch_size, seq_len). Both layers compute the same function (tests/test_rnn.py);
    the ratio is the price of running the time loop in Python, one small kernel per
    gate operation, instead of torch's fused oneDNN (CPU) or cuDNN (GPU) kernel.
    """
    from .models.rnn import LSTM

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for H in hidden_sizes:
        torch.manual_seed(0)
        ours = LSTM(H, H).to(device)
        ref = ours.to_torch()
        x = torch.randn(batch_size, seq_len, H, device=device)
        tokens = batch_size * seq_len
        row = {"H": H}
        for name, layer in (("seqlab", ours), ("torch", ref)):
            def train_step():
                out, _ = layer(x)
                out.sum().backward()

            def infer():
                with torch.no_grad():
                    layer(x)

            row[f"{name} train tok/s"] = tokens / timeit(train_step, device=device, repeats=repeats)["min"]
            row[f"{name} infer tok/s"] = tokens / timeit(infer, device=device, repeats=repeats)["min"]
        row["train ratio"] = row["torch train tok/s"] / row["seqlab train tok/s"]
        row["infer ratio"] = row["torch infer tok/s"] / row["seqlab infer tok/s"]
        rows.append(row)
    if print_table:
        threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
        print(f"LSTM layer, batch {batch_size} x {seq_len} steps, float32, {device}{threads}; "
              f"tokens/s from the fastest of {repeats} runs; ratio = torch / seqlab")
        print(format_table(rows, ["H", "seqlab train tok/s", "torch train tok/s", "train ratio",
                                  "seqlab infer tok/s", "torch infer tok/s", "infer ratio"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqlab bench", description="side-by-side benchmarks")
    parser.add_argument("which", choices=["rnn"])
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: fastest present)")
    parser.add_argument("--sizes", default="64,128,256,512", help="hidden sizes, comma-separated")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    bench_rnn(sizes, args.batch, args.seq_len, args.device, args.repeats)
    return 0
