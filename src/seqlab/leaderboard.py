"""The grand comparison (Part VII): every language-model family of the course, one benchmark.

    python -m seqlab leaderboard --budget cpu                # about an hour on a 2-core CPU
    python -m seqlab leaderboard --budget gpu                # the headline table
    results = run_leaderboard("smoke")                       # the same from Python; a dict

The benchmark is tiny Shakespeare as characters (nanoGPT's 90/10 split). For every family in
:data:`FAMILIES` and each of the budget's two parameter sizes:

1. **Size.** The family's width is the one whose parameter count is nearest the target
   (:func:`fit_width`); depth is fixed per family. Counts are :func:`seqlab.charlm.count_params`
   (a tied embedding once, a GPT's position table left out). An MoE-GPT is matched on its
   *total* parameters; its active count is recorded beside it.
2. **Learning rate.** Each family gets one rate, chosen by a sweep that this command runs and
   records: at the small size, every rate of the budget's grid trains for ``sweep_steps`` on
   the first 95% of the training split and is scored on the held-out last 5% (the *dev*
   slice). When the best rate is the grid's largest (or smallest), the sweep tries the next
   rung of :data:`LADDER` beyond it, up to :data:`MAX_EXTENSIONS` times, so a family is not
   held at the edge of the grid. The validation split is never used to choose anything.
3. **Training.** Both sizes train for ``steps`` on the whole training split with the family's
   rate, the same batches (same seed) and the same schedule (charlm's: AdamW, 100 warm-up steps,
   cosine to a tenth, beta_2 0.99, weight decay 0.1, gradients clipped to norm 1): the same
   token budget, ``steps x batch_size x block_size``, for everyone.
4. **Scores.** Val bits per character over the *whole* validation split (consecutive windows
   of ``block_size``); training tokens/s and wall time of step 3; generation ms/token
   (:func:`seqlab.generate.generate`, batch 1: state-carrying models step, the others re-run
   their window); peak memory of one training step (:func:`seqlab.bench.peak_memory`).

The n-gram model has no learning rate and no width: its sweep picks the Kneser-Ney order on
the dev slice, and its "parameters" are the n-gram counts it stores (one row, not size-matched).
The BERT-style encoder is left out: it is not a causal language model.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

BUDGETS = {
    # sizes: the two parameter targets; steps x batch_size x block_size: the token budget per run
    "smoke": dict(sizes=(12_000, 24_000), block_size=32, batch_size=8, steps=12, warmup=2, sweep_steps=6,
                  lrs=(1e-3, 1e-2), ngram_orders=(2, 3), gen_tokens=8, val_windows=20),
    "cpu": dict(sizes=(200_000, 800_000), block_size=64, batch_size=12, steps=1000, warmup=100, sweep_steps=300,
                lrs=(1e-3, 3e-3, 1e-2), ngram_orders=(2, 3, 4, 5, 6, 7, 8), gen_tokens=100, val_windows=None),
    "gpu": dict(sizes=(800_000, 3_200_000), block_size=256, batch_size=64, steps=5000, warmup=200,
                sweep_steps=1000, lrs=(3e-4, 1e-3, 3e-3, 1e-2), ngram_orders=(2, 3, 4, 5, 6, 7, 8, 9, 10),
                gen_tokens=200, val_windows=None),
}
LADDER = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)   # the rates a sweep may try; a budget's grid is a run of them
MAX_EXTENSIONS = 2       # rungs a sweep may add past the grid's edge when the best rate sits on it
DEV_FRACTION = 0.05      # the tail of the training split that the sweeps score on
SEED = 1337


# ----------------------------------------------------------------------------- the families

@dataclass
class Family:
    """How to build one family at a given width: make(vocab, width, block_size) -> model."""
    name: str
    make: Callable[[int, int, int], torch.nn.Module]
    widths: range             # the widths fit_width may choose from (multiples the family needs)
    depth: str                # for the table: what is fixed


def _recurrent(cell):
    def make(V, H, T):
        from .models.rnn import RecurrentLM
        return RecurrentLM(V, cell, hidden_size=H, num_layers=2, impl="torch")     # fused cuDNN / oneDNN
    return make


def _gpt(V, D, T):
    from .models.gpt import GPT, GPTConfig
    return GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=4, n_head=4, d_model=D, bias=False))


def _moe_gpt(V, D, T):
    from .models.gpt import GPTConfig
    from .models.moe import MoEConfig, MoEGPT
    return MoEGPT(GPTConfig(vocab_size=V, block_size=T, n_layer=4, n_head=4, d_model=D, bias=False),
                  MoEConfig(d_model=D, d_expert=D // 2, n_routed=8, n_shared=1, top_k=2))


def _mixer(kind):
    def make(V, D, T):
        from .models.hyena import HyenaOperator
        from .models.linear_attention import MultiScaleRetention
        from .models.minrnn import MinGRU
        from .models.stack import MixerLM
        mixers = {"mingru": lambda: MinGRU(D, D), "hyena": lambda: HyenaOperator(D, max_len=T),
                  "retnet": lambda: MultiScaleRetention(D, n_heads=4)}
        return MixerLM(V, D, 4, mixer=mixers[kind])
    return make


def _mamba(V, D, T):
    from .models.mamba import Mamba, MambaConfig
    scan = "parallel" if torch.cuda.is_available() else "sequential"   # the same numbers; the faster one there
    return Mamba(MambaConfig(vocab_size=V, d_model=D, n_layer=6, scan=scan))


def _rwkv7(V, D, T):
    from .models.rwkv import RWKV7, RWKV7Config
    return RWKV7(RWKV7Config(vocab_size=V, d_model=D, n_layer=4, head_size=16, d_decay=16, d_a=16, d_v=8,
                             d_gate=32, d_ffn=7 * D // 2))           # Lab 12's char model: FFN 3.5 D


FAMILIES = {f.name: f for f in [
    Family("RNN", _recurrent("rnn"), range(8, 2049, 4), "2 layers, torch.nn.RNN"),
    Family("LSTM", _recurrent("lstm"), range(8, 2049, 4), "2 layers, torch.nn.LSTM"),
    Family("GRU", _recurrent("gru"), range(8, 2049, 4), "2 layers, torch.nn.GRU"),
    Family("minGRU", _mixer("mingru"), range(8, 1025, 4), "4 blocks (+MLP)"),
    Family("GPT", _gpt, range(8, 1025, 4), "4 layers, 4 heads"),
    Family("MoE-GPT", _moe_gpt, range(8, 1025, 4), "4 layers, 8 routed top-2 + 1 shared"),
    Family("Mamba", _mamba, range(8, 1025, 4), "6 layers"),
    Family("RWKV-7", _rwkv7, range(16, 1025, 16), "4 layers, heads of 16, FFN 3.5 D"),
    Family("Hyena", _mixer("hyena"), range(8, 1025, 4), "4 blocks (+MLP), order 2"),
    Family("RetNet", _mixer("retnet"), range(8, 1025, 4), "4 blocks (+MLP), 4 heads"),
]}
NGRAM = "n-gram (KN)"


def fit_width(family: Family, vocab_size: int, target: int, block_size: int) -> tuple[int, int]:
    """(width, params): the family's allowed width whose parameter count is nearest ``target``.

    Parameter counts grow with the width, so a binary search finds the crossing; models are
    built on the meta device (no memory, no initialisation).
    """
    from .charlm import count_params

    def params(w):
        with torch.device("meta"):
            return count_params(family.make(vocab_size, w, block_size))

    widths = list(family.widths)
    lo, hi = 0, len(widths) - 1
    while lo < hi:                                   # first width with params >= target
        mid = (lo + hi) // 2
        if params(widths[mid]) < target:
            lo = mid + 1
        else:
            hi = mid
    best = min(widths[max(0, lo - 1):lo + 1], key=lambda w: abs(params(w) - target))
    return best, params(best)


def active_params(model) -> int:
    """Parameters one token uses: all of them, except an MoE's unchosen routed experts."""
    from .charlm import count_params

    return model.active_params() if hasattr(model, "active_params") else count_params(model)


# ----------------------------------------------------------------------------- one run

def _train(model, train_ids, val_ids, cfg: dict, lr: float, steps: int, device, progress: bool, desc: str):
    from .charlm import OPTIM
    from .data import batcher
    from .train import TrainConfig, train

    torch.manual_seed(SEED)                                              # the same batches for every model
    model.to(device)
    optim = {**OPTIM, "lr": lr, "warmup_steps": min(cfg["warmup"], steps // 2)}
    tc = TrainConfig(max_steps=steps, eval_every=0, eval_batches=1, progress=progress, **optim)
    if progress:
        print(desc, flush=True)
    return train(model, batcher(train_ids, val_ids, cfg["block_size"], cfg["batch_size"], device), tc)


def _loss(model, ids, cfg, device) -> float:
    from .charlm import whole_split_loss

    loss = whole_split_loss(model, ids, cfg["block_size"], device, max_windows=cfg["val_windows"])
    return loss if math.isfinite(loss) else float("inf")


def generation_ms_per_token(model, prompt: torch.Tensor, n: int) -> float:
    """Milliseconds per generated token, batch 1, greedy, after one untimed warm-up token.

    Models without ``step`` re-run their last prompt.size(1) tokens (the trained context) per token.
    """
    from .bench import synchronize
    from .generate import generate

    with torch.no_grad():                                                # generate() switches to eval and back
        generate(model, prompt, 1, temperature=0, block_size=prompt.size(1))
        synchronize(prompt.device)
        t0 = time.perf_counter()
        generate(model, prompt, n, temperature=0, block_size=prompt.size(1))
        synchronize(prompt.device)
    return (time.perf_counter() - t0) * 1e3 / n


def train_step_memory(model, cfg, device, vocab_size: int) -> float | None:
    """Peak MiB of one training step (forward, backward) above what was in use; None if not measurable."""
    from .bench import peak_memory

    x = torch.randint(0, vocab_size, (cfg["batch_size"], cfg["block_size"]), device=device)

    def step():
        logits = model(x)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), x.flatten()).backward()
        model.zero_grad(set_to_none=True)

    step()                                                               # allocate the gradients once
    model.zero_grad(set_to_none=True)
    mem = peak_memory(step, device=device)
    return None if mem is None else mem / 2**20


def _load() -> float | None:
    """The machine's 1-minute load average (None off Unix): above the core count, other work
    shared the processors and the times of this row are slower than on a quiet machine."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def dev_split(train_ids):
    """(fit, dev): the training split without and with only its last DEV_FRACTION, for the sweeps."""
    n_dev = int(len(train_ids) * DEV_FRACTION)
    return train_ids[:-n_dev], train_ids[-n_dev:]


def _ngram(data, cfg, log) -> tuple[dict, list[dict]]:
    """The n-gram row: the Kneser-Ney order chosen on the dev slice, refit on the whole split."""
    from .models.ngram import NGramLM

    fit_ids, dev_ids = dev_split(data.train)
    sweep = []
    for order in cfg["ngram_orders"]:
        lm = NGramLM(order, "kn").fit(fit_ids, data.vocab_size)
        sweep.append({"family": NGRAM, "order": order, "dev_loss": float(lm.cross_entropy(dev_ids))})
        log(f"  {NGRAM} sweep: order {order}: dev {sweep[-1]['dev_loss'] / math.log(2):.3f} bits/char")
    best = min(sweep, key=lambda s: s["dev_loss"])["order"]
    t0 = time.perf_counter()
    lm = NGramLM(best, "kn").fit(data.train, data.vocab_size)
    wall = time.perf_counter() - t0
    val = float(lm.cross_entropy(data.val))
    rng = np.random.default_rng(0)
    context = list(data.val[:best - 1])
    t0 = time.perf_counter()
    lm.generate(context, cfg["gen_tokens"], rng=rng)
    gen_ms = (time.perf_counter() - t0) * 1e3 / cfg["gen_tokens"]
    stored = int(sum(len(c) for c in lm._codes[1:]))
    row = {"family": NGRAM, "size": "-", "target_params": None, "params": stored, "active_params": stored,
           "width": None, "depth": f"order {best} (chosen on dev)", "lr": None, "order": best,
           "val_loss": val, "val_bpc": val / math.log(2), "train_tokens_per_s": len(data.train) / wall,
           "wall_s": wall, "gen_ms_per_token": gen_ms, "peak_mib": None, "load_avg_1min": _load()}
    return row, sweep


def train_row(fam: Family, data, cfg: dict, width: int, lr: float, device, progress: bool = False,
              prompt: torch.Tensor | None = None) -> dict:
    """Step 3 and 4 for one family at one width: train on the whole split, score; a results row."""
    from .charlm import count_params

    torch.manual_seed(SEED)
    model = fam.make(data.vocab_size, width, cfg["block_size"])
    params = count_params(model)
    out = _train(model, data.train, data.val, cfg, lr, cfg["steps"], device, progress,
                 f"{fam.name}: width {width}, {params:,} parameters, lr {lr:g}")
    val = _loss(model, data.val, cfg, device)
    if prompt is None:
        prompt = torch.as_tensor(data.val[:cfg["block_size"]], dtype=torch.long, device=device)[None]
    return {"family": fam.name, "params": params, "active_params": active_params(model), "width": width,
            "depth": fam.depth, "lr": lr, "val_loss": val, "val_bpc": val / math.log(2),
            "train_tokens_per_s": out.tokens_per_s, "wall_s": out.wall_time_s,
            "gen_ms_per_token": generation_ms_per_token(model, prompt, cfg["gen_tokens"]),
            "peak_mib": train_step_memory(model, cfg, device, data.vocab_size), "load_avg_1min": _load()}


def reproduce(results: dict, family: str, size: str, device=None) -> dict:
    """Train one row of a results file again, from its recorded budget, width and rate; the new row."""
    from .bench import _device
    from .charlm import shakespeare_chars

    old = next(r for r in results["rows"] if r["family"] == family and r["size"] == size)
    row = train_row(FAMILIES[family], shakespeare_chars(), BUDGETS[results["budget"]], old["width"], old["lr"],
                    _device(device))
    return {**row, "size": size, "target_params": old["target_params"]}


def run_leaderboard(budget: str = "cpu", families: list[str] | None = None, device=None,
                    progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Run the grand comparison; return the results (what ``python -m seqlab leaderboard`` writes)."""
    from .bench import _device
    from .charlm import shakespeare_chars
    from .runtime import describe_device

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {list(BUDGETS)}, got {budget!r}")
    names = list(FAMILIES) + [NGRAM] if families is None else families
    unknown = [n for n in names if n not in FAMILIES and n != NGRAM]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {list(FAMILIES) + [NGRAM]}")
    log = log or (lambda s: print(s, flush=True))
    cfg = BUDGETS[budget]
    device = _device(device)
    t_start = time.perf_counter()
    data = shakespeare_chars()
    V = data.vocab_size
    fit_ids, dev_ids = dev_split(data.train)
    prompt = torch.as_tensor(data.val[:cfg["block_size"]], dtype=torch.long, device=device)[None]   # (1, T)
    rows, sweep = [], []
    for name in names:
        if name == NGRAM:
            row, s = _ngram(data, cfg, log)
            rows.append(row)
            sweep += s
            log(f"{NGRAM}: order {row['order']}, {row['params']:,} stored counts, val {row['val_bpc']:.3f} bits/char")
            continue
        fam = FAMILIES[name]
        widths = [fit_width(fam, V, target, cfg["block_size"]) for target in cfg["sizes"]]
        def try_lr(lr):                                                  # 2. the sweep, small size, dev slice
            torch.manual_seed(SEED)
            model = fam.make(V, widths[0][0], cfg["block_size"])
            _train(model, fit_ids, dev_ids, cfg, lr, cfg["sweep_steps"], device, progress,
                   f"{name} sweep: lr {lr:g}, width {widths[0][0]}")
            dev = _loss(model, dev_ids, {**cfg, "val_windows": None}, device)
            sweep.append({"family": name, "lr": lr, "dev_loss": dev})
            log(f"  {name} sweep: lr {lr:g}: dev {dev / math.log(2):.3f} bits/char")
            return dev

        tried = {lr: try_lr(lr) for lr in cfg["lrs"]}
        for _ in range(MAX_EXTENSIONS):                                  # best at an edge: look one rung past it
            best = min(tried, key=tried.get)
            step = LADDER.index(best) + (1 if best == max(tried) else -1 if best == min(tried) else 0)
            if best not in (min(tried), max(tried)) or not 0 <= step < len(LADDER) or LADDER[step] in tried:
                break
            tried[LADDER[step]] = try_lr(LADDER[step])
        lr = min((s for s in sweep if s["family"] == name), key=lambda s: s["dev_loss"])["lr"]
        for size, (target, (width, params)) in zip(("small", "large"), zip(cfg["sizes"], widths)):
            row = train_row(fam, data, cfg, width, lr, device, progress, prompt)
            row.update(size=size, target_params=target)
            assert row["params"] == params
            rows.append(row)
            log(f"{name} {size}: {params:,} params, lr {lr:g}, val {row['val_bpc']:.3f} bits/char, "
                f"{row['train_tokens_per_s']:,.0f} tok/s, {row['wall_s']:.0f} s")
    return {
        "benchmark": "leaderboard", "budget": budget, "device": describe_device(device),
        "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "protocol": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "dev_fraction": DEV_FRACTION, "seed": SEED, "vocab_size": V,
        "tokens_per_run": cfg["steps"] * cfg["batch_size"] * cfg["block_size"],
        "sweep": sweep, "rows": rows, "total_s": time.perf_counter() - t_start,
    }


# ----------------------------------------------------------------------------- reading the results

def pareto_front(rows: list[dict], x: str, y: str = "val_bpc") -> list[dict]:
    """The rows no other row beats on both x and y (lower is better on both), sorted by x."""
    front, best = [], math.inf
    for r in sorted(rows, key=lambda r: (r[x], r[y])):
        if r[y] < best:
            front.append(r)
            best = r[y]
    return front


def table(results: dict) -> str:
    """The leaderboard as plain text, best val bits/char first."""
    from .bench import format_table

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    rows = [{"rank": i + 1, "model": r["family"], "size": r["size"], "params": f"{r['params']:,}",
             "lr": fmt(r["lr"], "g"), "val bits/char": f"{r['val_bpc']:.3f}",
             "train tok/s": fmt(r["train_tokens_per_s"], ",.0f"), "wall s": fmt(r["wall_s"], ".0f"),
             "gen ms/tok": fmt(r["gen_ms_per_token"], ".2f"), "peak MiB": fmt(r["peak_mib"], ".1f")}
            for i, r in enumerate(sorted(results["rows"], key=lambda r: r["val_bpc"]))]
    head = (f"tiny Shakespeare characters, budget {results['budget']}, {results['device']}, "
            f"{results['tokens_per_run']:,} training tokens per model, {results['date']}")
    return head + "\n" + format_table(rows, list(rows[0]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqlab leaderboard",
                                     description="train every language-model family of the course on one benchmark")
    parser.add_argument("--budget", choices=list(BUDGETS), default=None,
                        help="smoke | cpu | gpu (default: gpu when CUDA is present, else cpu)")
    parser.add_argument("--families", default=None,
                        help=f"comma-separated subset of: {', '.join(list(FAMILIES) + [NGRAM])}")
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: fastest present)")
    parser.add_argument("--out", default=None, help="results file (default: results/leaderboard-BUDGET.json)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    budget = args.budget or ("gpu" if torch.cuda.is_available() else "cpu")
    families = [f.strip() for f in args.families.split(",")] if args.families else None
    command = "python -m seqlab leaderboard " + " ".join(sys.argv[1:] if argv is None else argv)
    results = run_leaderboard(budget, families, args.device, progress=not args.quiet)
    results["command"] = command.strip()
    out = Path(args.out or f"results/leaderboard-{budget}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out)
    print()
    print(table(results))
    print(f"\nwritten to {out} ({results['total_s']:.0f} s)")
    return 0
