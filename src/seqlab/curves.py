"""Learning curves: validation loss against training tokens and seconds, several seeds per family.

    python -m seqlab curves --budget cpu            # about two hours on a 2-core CPU (one thread)
    python -m seqlab curves --budget cpu --families GPT,LSTM --seeds 3
    results = run_curves("smoke", ["GPT", "LSTM"])  # the same from Python; a dict

The leaderboard (:mod:`seqlab.leaderboard`) gives one number per model after a fixed budget.
A single number hides *how* each model gets there: a model with a local inductive bias (counts,
recurrence, token shift, short convolutions) learns fast in the first few hundred steps, while a
Transformer with learned positions starts slowly and keeps improving. Which one "wins" then
depends on where the budget stops. This command records the whole curve, so a chapter can show
where the curves cross, or that they do not cross within the budget.

Protocol (the same for every family and seed):

* **Models and learning rates** are the leaderboard's *large* rows: each family's width (about
  0.8 M parameters at ``cpu``) and the rate its sweep chose on the dev slice, read from
  ``results/leaderboard-BUDGET.json``. Without that file (the ``smoke`` budget, or a new budget)
  the width is fitted here and the rate is :data:`DEFAULT_LR`, and the results say so.
* **Training** is Lab 8's length: ``steps`` AdamW steps of ``batch_size x block_size`` characters
  of tiny Shakespeare, with the leaderboard's schedule. Seed ``s`` (0, 1, 2, ...) sets both the
  initial weights and the order of the batches (``leaderboard.SEED + s``).
* **The curve** is the validation loss every ``eval_every`` steps on ``eval_batches`` random
  windows (an estimate; its spread across seeds is shown), with the training seconds so far,
  evaluations left out (``TrainResult.history["eval_seconds"]``). The last point is the whole
  validation split, as in the leaderboard.
* **Time.** Each run records its seconds and the machine's load average. On a shared machine a
  run slows down whenever other work competes for its core, so :func:`summary` and
  :func:`loss_at_seconds` take a family's clock from its *fastest* seed (the least disturbed run):
  the seconds at which that run reached each evaluation step. The step a family reaches by a given
  time comes from that clock; the loss there is the mean over the seeds at that step.
* **The n-gram line**: interpolated Kneser-Ney at the order the leaderboard chose, fitted on the
  first ``n`` characters of the training split for growing ``n``: its curve against the tokens
  it has seen (it sees each once; the networks see the split more than once).

The results file is rewritten after every run, and ``--resume`` skips the runs it already holds,
so a long measurement can stop and go on; ``--merge`` joins files measured in separate processes.
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
from pathlib import Path

import torch

BUDGETS = {
    # steps x batch_size x block_size: the tokens of one run; eval_every: the curve's resolution
    "smoke": dict(block_size=32, batch_size=8, steps=20, warmup=2, eval_every=5, eval_batches=2,
                  size=24_000, val_windows=20, ngram_points=3),
    "cpu": dict(block_size=64, batch_size=12, steps=2000, warmup=100, eval_every=100, eval_batches=20,
                size=800_000, val_windows=None, ngram_points=12),
    "gpu": dict(block_size=256, batch_size=64, steps=5000, warmup=200, eval_every=250, eval_batches=20,
                size=3_200_000, val_windows=None, ngram_points=12),
}
DEFAULT_LR = 1e-2          # the rate most families' sweeps chose at the cpu budget
ORDER = ["LSTM", "GPT", "minGRU", "Hyena", "RetNet", "GRU", "RNN", "MoE-GPT", "Mamba", "RWKV-7"]  # fast first


def _recorded(budget: str, root: Path) -> dict:
    """{family: (width, lr)} of the leaderboard's large rows for this budget, or {} without a file."""
    path = root / "results" / f"leaderboard-{budget}.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["rows"]
    return {r["family"]: (r["width"], r["lr"]) for r in rows if r["size"] == "large"}


def ngram_curve(data, order: int, points: int) -> dict:
    """Kneser-Ney of one order fitted on growing prefixes of the training split: tokens, val loss."""
    from .models.ngram import NGramLM

    n_train = len(data.train)
    sizes = sorted({int(n_train * 2 ** (-k)) for k in range(points)})
    losses = [float(NGramLM(order, "kn").fit(data.train[:n], data.vocab_size).cross_entropy(data.val))
              for n in sizes]
    return {"order": order, "tokens": sizes, "val_loss": losses}


def run_one(family: str, seed: int, data, cfg: dict, width: int, lr: float, device, progress: bool = False) -> dict:
    """Train one family from one seed; its curve and final whole-split val loss (nats/char)."""
    from .charlm import OPTIM, count_params, whole_split_loss
    from .data import batcher
    from .leaderboard import FAMILIES, SEED
    from .train import TrainConfig, train

    torch.manual_seed(SEED + seed)
    model = FAMILIES[family].make(data.vocab_size, width, cfg["block_size"]).to(device)
    optim = {**OPTIM, "lr": lr, "warmup_steps": min(cfg["warmup"], cfg["steps"] // 2)}
    tc = TrainConfig(max_steps=cfg["steps"], eval_every=cfg["eval_every"], eval_batches=cfg["eval_batches"],
                     progress=progress, **optim)
    out = train(model, batcher(data.train, data.val, cfg["block_size"], cfg["batch_size"], device), tc)
    h = out.history
    final = whole_split_loss(model, data.val, cfg["block_size"], device, max_windows=cfg["val_windows"])
    tokens_per_step = cfg["batch_size"] * cfg["block_size"]
    return {"family": family, "seed": seed, "params": count_params(model), "width": width, "lr": lr,
            "eval_step": h["eval_step"], "eval_tokens": [s * tokens_per_step for s in h["eval_step"]],
            "eval_seconds": h["eval_seconds"], "val_loss": h["val_loss"],
            "final_val_loss": final if math.isfinite(final) else float("inf"),
            "train_s": h["eval_seconds"][-1], "wall_s": out.wall_time_s,
            "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def run_curves(budget: str = "cpu", families: list[str] | None = None, seeds: int = 3, device=None,
               progress: bool = False, previous: dict | None = None, save=None,
               log=None, root: Path | None = None) -> dict:
    """Measure the curves; return the results (what ``python -m seqlab curves`` writes).

    ``previous``: an earlier results dict of the same budget whose runs are kept and not redone.
    ``save(results)``: called after every run with the results so far.
    """
    from .bench import _device
    from .charlm import shakespeare_chars
    from .leaderboard import FAMILIES, fit_width
    from .runtime import describe_device

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {list(BUDGETS)}, got {budget!r}")
    families = families or ORDER
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {list(FAMILIES)}")
    log = log or (lambda s: print(s, flush=True))
    root = root or Path.cwd()
    cfg = BUDGETS[budget]
    device = _device(device)
    data = shakespeare_chars()
    recorded = _recorded(budget, root)
    if previous is not None and previous.get("budget") != budget:
        raise ValueError(f"cannot resume a {previous.get('budget')} results file with budget {budget}")
    results = previous or {
        "benchmark": "curves", "budget": budget, "device": describe_device(device), "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads() if device.type == "cpu" else None, "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "protocol": dict(cfg), "vocab_size": data.vocab_size,
        "tokens_per_run": cfg["steps"] * cfg["batch_size"] * cfg["block_size"],
        "train_tokens": len(data.train), "val_tokens": len(data.val),
        "widths_from": f"results/leaderboard-{budget}.json" if recorded else
                       f"fitted here to {cfg['size']:,} parameters; lr {DEFAULT_LR} for every family (no leaderboard file)",
        "runs": [],
    }
    if "ngram" not in results:
        order = next((r["order"] for r in _leaderboard_rows(budget, root) if r.get("order")), 7 if budget != "smoke" else 3)
        t0 = time.perf_counter()
        results["ngram"] = ngram_curve(data, order, cfg["ngram_points"])
        log(f"n-gram (KN, order {order}): {len(results['ngram']['tokens'])} prefixes in {time.perf_counter() - t0:.0f} s")
    done = {(r["family"], r["seed"]) for r in results["runs"]}
    for seed in range(seeds):
        for family in families:
            if (family, seed) in done:
                continue
            width, lr = recorded.get(family) or (fit_width(FAMILIES[family], data.vocab_size, cfg["size"],
                                                           cfg["block_size"])[0], DEFAULT_LR)
            run = run_one(family, seed, data, cfg, width, lr, device, progress)
            results["runs"].append(run)
            results["date_last"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            log(f"{family} seed {seed}: {run['params']:,} params, lr {lr:g}, val {run['final_val_loss'] / math.log(2):.3f}"
                f" bits/char, {run['train_s']:.0f} s")
            if save:
                save(results)
    return results


def _leaderboard_rows(budget: str, root: Path) -> list[dict]:
    path = root / "results" / f"leaderboard-{budget}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []


# ----------------------------------------------------------------------------- reading the results

def summary(results: dict) -> dict[str, dict]:
    """{family: mean and spread over seeds}: final val loss (nats/char, whole split), training seconds,
    and the mean curve (val loss per eval step, with its min and max over seeds)."""
    import numpy as np

    out = {}
    for family in dict.fromkeys(r["family"] for r in results["runs"]):
        runs = [r for r in results["runs"] if r["family"] == family]
        final = np.array([r["final_val_loss"] for r in runs])
        curves = np.array([r["val_loss"] for r in runs])
        out[family] = {
            "seeds": len(runs), "params": runs[0]["params"], "lr": runs[0]["lr"],
            "final_mean": float(final.mean()), "final_min": float(final.min()), "final_max": float(final.max()),
            "final_std": float(final.std(ddof=1)) if len(runs) > 1 else float("nan"),
            "train_s": clock(runs)["train_s"],                       # the fastest seed's
            "train_s_seeds": [r["train_s"] for r in runs],
            "eval_tokens": runs[0]["eval_tokens"],
            "eval_seconds": clock(runs)["eval_seconds"],
            "curve_mean": curves.mean(0).tolist(), "curve_min": curves.min(0).tolist(),
            "curve_max": curves.max(0).tolist(),
        }
    return out


def clock(runs: list[dict]) -> dict:
    """The run whose training took least time: the family's clock on a shared machine."""
    return min(runs, key=lambda r: r["train_s"])


def loss_at_seconds(results: dict, family: str, seconds: float) -> float | None:
    """A family's mean val loss over its seeds after ``seconds`` of training by its clock (the
    fastest seed's): the step that clock reaches by then, each seed's curve read at that step.
    None when the family's training ended before that time."""
    import numpy as np

    runs = [r for r in results["runs"] if r["family"] == family]
    if not runs:
        return None
    c = clock(runs)
    if seconds > c["eval_seconds"][-1]:
        return None
    step = float(np.interp(seconds, c["eval_seconds"], c["eval_step"]))
    return float(np.mean([np.interp(step, r["eval_step"], r["val_loss"]) for r in runs]))


def find_record(budget: str = "cpu") -> Path | None:
    """The committed ``results/curves-BUDGET.json`` seen from a lab (``../results``) or the repository
    root (``results``); None where this copy has none (a notebook opened alone, as in Colab)."""
    for folder in (Path("..") / "results", Path("results")):
        if (folder / f"curves-{budget}.json").exists():
            return folder / f"curves-{budget}.json"
    return None


def compare(results: dict, families: list[str], baseline: str = "GPT") -> str:
    """The families against ``baseline`` in a curves record, at matched steps and at matched time, in
    bits per character: a table (mean over seeds, best to worst seed, training seconds by the family's
    clock, loss at the baseline's clock) and one verdict line per family. Returns the printable text."""
    stats = summary(results)
    missing = [f for f in [baseline, *families] if f not in stats]
    if missing:
        raise ValueError(f"the curves record has no runs of {missing}; it has {sorted(stats)}")
    bpc = 1 / math.log(2)
    base = stats[baseline]
    t_base = base["train_s"]
    at_base = {fam: loss_at_seconds(results, fam, t_base) for fam in [baseline, *families]}   # at its clock
    base_at = at_base[baseline]
    head = (f"{'model':<8}{'seeds':>6}{'lr':>7}{'bits/char':>11}{'best to worst seed':>20}{'train s':>9}"
            f"{f'bits/char at {t_base:.0f} s':>20}")
    lines = [f"the learning-curve record ({results['budget']} budget, {results['device']}): "
             f"{results['tokens_per_run']:,} training characters per run, each family at the learning rate its "
             f"sweep chose; bits/char on the whole validation split at the end, on "
             f"{results['protocol']['eval_batches']} batches in between", head, "-" * len(head)]
    for fam in [baseline, *families]:
        f = stats[fam]
        at = at_base[fam]
        lines.append(f"{fam:<8}{f['seeds']:>6}{f['lr']:>7g}{bpc * f['final_mean']:>11.3f}"
                     f"{_range(f, bpc):>20}{f['train_s']:>9.0f}{'-' if at is None else f'{bpc * at:.3f}':>20}")
    for fam in families:
        f = stats[fam]
        if f["final_max"] < base["final_min"]:
            steps = f"ahead of the {baseline} in every seed"
        elif f["final_min"] > base["final_max"]:
            steps = f"behind the {baseline} in every seed"
        else:
            steps = f"level with the {baseline} (the seeds overlap)"
        at = at_base[fam]
        if at is None:
            time_ = (f"it finished its whole run in {f['train_s']:.0f} s, sooner than the {baseline}'s "
                     f"{t_base:.0f} s")
        else:                          # both read from the curves (the same evaluation batches)
            word = "ahead of" if at < base_at else "behind"
            time_ = (f"after the {baseline}'s {t_base:.0f} s it was at {bpc * at:.3f} bits/char, {word} the "
                     f"{baseline}'s {bpc * base_at:.3f} at that time")
        lines.append(f"{fam}: at matched steps {bpc * f['final_mean']:.3f} against {bpc * base['final_mean']:.3f} "
                     f"bits/char, {steps}; at matched time {time_}")
    return "\n".join(lines)


def _range(f: dict, scale: float) -> str:
    return f"{scale * f['final_min']:.3f} to {scale * f['final_max']:.3f}"


def plot(results: dict, ax_tokens=None, ax_seconds=None, families: list[str] | None = None, bits: bool = True):
    """Val loss against training tokens (left) and training seconds (right): each family's mean over
    seeds (estimates on ``eval_batches`` random windows) with the band from its best to its worst
    seed, a dot at the end for the whole validation split, and the n-gram line. Returns the figure."""
    import matplotlib.pyplot as plt

    scale = 1 / math.log(2) if bits else 1.0
    if ax_tokens is None:
        fig, (ax_tokens, ax_seconds) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    fig = ax_tokens.figure
    s = summary(results)
    for i, (family, f) in enumerate((k, v) for k, v in s.items() if families is None or k in families):
        color = f"C{i}"
        label = f"{family} ({f['params'] / 1e6:.2f}M, {f['seeds']} seed{'s' if f['seeds'] > 1 else ''})"
        for ax, x in ((ax_tokens, f["eval_tokens"]), (ax_seconds, f["eval_seconds"])):
            if ax is None:
                continue
            ax.plot(x, [v * scale for v in f["curve_mean"]], color=color, label=label if ax is ax_tokens else None)
            ax.fill_between(x, [v * scale for v in f["curve_min"]], [v * scale for v in f["curve_max"]],
                            color=color, alpha=0.2, linewidth=0)
            ax.plot(x[-1], f["final_mean"] * scale, "o", color=color, markersize=4)   # the whole split, at the end
    ng = results["ngram"]
    ng_label = f"n-gram (Kneser-Ney, order {ng['order']})"
    ax_tokens.plot(ng["tokens"], [v * scale for v in ng["val_loss"]], "k--", label=ng_label + ", fitted on the first N")
    full = ng["val_loss"][-1] * scale
    for ax in (ax_tokens, ax_seconds):
        if ax is None:
            continue
        ax.axhline(full, color="k", linestyle=":", linewidth=1,
                   label=f"{ng_label}, whole split" if ax is ax_tokens else None)
        ax.grid(alpha=0.3)
    ax_tokens.set_xscale("log")
    if s:                                       # from a decade before the first evaluation
        ax_tokens.set_xlim(left=min(f["eval_tokens"][0] for f in s.values()) / 10)
    ax_tokens.set_xlabel("training characters seen")
    ax_tokens.set_ylabel(f"validation loss ({'bits' if bits else 'nats'} per character)")
    if ax_seconds is not None:
        ax_seconds.set_xscale("log")
        ax_seconds.set_xlabel(f"training seconds, evaluations left out ({results['device']})")
        ax_seconds.plot([], [], "o", color="gray", markersize=4, label="end of training: whole validation split")
    handles, labels = [], []
    for ax in (ax_tokens, ax_seconds):
        if ax is not None:
            h, lab = ax.get_legend_handles_labels()
            handles, labels = handles + h, labels + lab
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8, frameon=False)
    top = max(max(f["curve_mean"][1:] or f["curve_mean"]) for f in s.values()) * scale if s else None
    if top:
        ax_tokens.set_ylim(top=min(top * 1.05, ax_tokens.get_ylim()[1]))
    return fig


def merge(parts: list[dict]) -> dict:
    """One results dict from several made with the same budget and protocol (e.g. families measured in
    separate processes or separate GPU calls); a (family, seed) run may appear in one part only."""
    first = parts[0]
    for other in parts[1:]:
        for key in ("budget", "protocol", "vocab_size", "tokens_per_run"):
            if other[key] != first[key]:
                raise ValueError(f"cannot merge results with different {key}: {first[key]!r} and {other[key]!r}")
    runs, seen = [], set()
    for part in parts:
        for r in part["runs"]:
            if (r["family"], r["seed"]) in seen:
                raise ValueError(f"{r['family']} seed {r['seed']} appears in more than one file")
            seen.add((r["family"], r["seed"]))
            runs.append(r)
    commands = [c for part in parts for c in (part.get("commands") or [part.get("command", "?")])]
    return {**first, "runs": runs, "date_last": max(p.get("date_last", p["date"]) for p in parts),
            "commands": commands, "command": " && ".join(commands)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqlab curves",
                                     description="learning curves of the language-model families, several seeds")
    parser.add_argument("--budget", choices=list(BUDGETS), default=None,
                        help="smoke | cpu | gpu (default: gpu when CUDA is present, else cpu)")
    parser.add_argument("--families", default=None, help=f"comma-separated subset of: {', '.join(ORDER)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per family (default 3)")
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: fastest present)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU (default: torch's)")
    parser.add_argument("--out", default=None, help="results file (default: results/curves-BUDGET.json)")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --out and add the rest")
    parser.add_argument("--progress", action="store_true", help="a progress bar per run")
    parser.add_argument("--merge", nargs="+", metavar="FILE", default=None,
                        help="instead of measuring, merge these results files (same budget and protocol) into --out")
    args = parser.parse_args(argv)
    if args.merge:
        if not args.out:
            parser.error("--merge needs --out")
        merged = merge([json.loads(Path(f).read_text()) for f in args.merge])
        Path(args.out).write_text(json.dumps(merged, indent=1))
        print(f"merged {len(merged['runs'])} runs from {len(args.merge)} files into {args.out}")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    budget = args.budget or ("gpu" if torch.cuda.is_available() else "cpu")
    families = [f.strip() for f in args.families.split(",")] if args.families else None
    out = Path(args.out or f"results/curves-{budget}.json")
    previous = json.loads(out.read_text()) if args.resume and out.exists() else None
    command = "python -m seqlab curves " + " ".join(sys.argv[1:] if argv is None else argv)

    def save(results):
        results["command"] = command.strip()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(out)

    t0 = time.perf_counter()
    results = run_curves(budget, families, args.seeds, args.device, args.progress, previous, save)
    save(results)
    for family, f in summary(results).items():
        print(f"{family:<8} {f['seeds']} seeds: val {f['final_mean'] / math.log(2):.3f} bits/char "
              f"(min {f['final_min'] / math.log(2):.3f}, max {f['final_max'] / math.log(2):.3f}), {f['train_s']:.0f} s")
    print(f"\nwritten to {out} ({time.perf_counter() - t0:.0f} s)")
    return 0
