"""The learning curves of ``results/curves-cpu.json`` (``python -m seqlab curves``): the figure, and
the numbers that the chapters comparing architectures quote from it."""
from __future__ import annotations

from ..sources import Sources, bits, fmt

RESULTS = "curves-cpu"
FIGURE = "book/figures/curves-cpu.svg"


FIGURE_RECURRENT = "book/figures/curves-cpu-recurrent.svg"
RECURRENT = ("RNN", "LSTM", "GRU")          # Part II's cells, drawn on their own figure


def _draw(root, keep):
    import json

    from ...curves import plot

    results = json.loads((root / "results" / f"{RESULTS}.json").read_text())
    present = list(dict.fromkeys(r["family"] for r in results["runs"]))
    fig = plot(results, families=[f for f in present if keep(f)])
    fig.suptitle(f"Tiny Shakespeare characters: {results['tokens_per_run']:,} training characters per run, "
                 f"mean of the seeds (band: best to worst seed)", fontsize=10)
    return fig


def draw(root):
    """Every family but Part II's plain RNN and GRU (the LSTM stands for them)."""
    return _draw(root, lambda f: f not in ("RNN", "GRU"))


def draw_recurrent(root):
    return _draw(root, lambda f: f in RECURRENT + ("GPT",))


def _stats(src: Sources) -> tuple[dict, dict]:
    from ...curves import summary

    results = src.result(RESULTS)
    return results, summary(results)


def spread(f: dict) -> str:
    """``2.306 bits/char (2.301 to 2.312 over 3 seeds)``, or ``2.306 bits/char (one seed)``."""
    if f["seeds"] == 1:
        return f"{fmt(bits(f['final_mean']))} bits/char (one seed)"
    return (f"{fmt(bits(f['final_mean']))} bits/char ({fmt(bits(f['final_min']))} to "
            f"{fmt(bits(f['final_max']))} over {f['seeds']} seeds)")


def _every_seed(a: dict, b: dict, name_a: str, name_b: str) -> str:
    """"in every seed", saying how many seeds each family has."""
    if a["seeds"] == b["seeds"]:
        return "in the one seed of each" if a["seeds"] == 1 else f"in all {a['seeds']} seeds of each"
    return f"in every seed ({a['seeds']} of the {name_a}, {b['seeds']} of the {name_b})"


def shared(src: Sources) -> dict[str, str]:
    """The numbers every page that shows the curves quotes."""
    from ...curves import loss_at_seconds

    results, s = _stats(src)
    kn = bits(results["ngram"]["val_loss"][-1])
    nets = sorted(s, key=lambda k: s[k]["final_mean"])
    beat_kn = [k for k in nets if bits(s[k]["final_max"]) < kn]
    out = {
        "curves_steps": f"{results['protocol']['steps']:,}",
        "curves_chars": f"{results['tokens_per_run']:,}",
        "curves_passes": f"{results['tokens_per_run'] / results['train_tokens']:.1f}",
        "curves_device": results["device"],
        "curves_kn_bpc": fmt(kn),
        "curves_kn_order": str(results["ngram"]["order"]),
        "curves_families": ", ".join(nets),
        "curves_beat_kn": (f"{len(beat_kn)} of {len(nets)} families ({', '.join(beat_kn)}) "
                           f"end{'s' if len(beat_kn) == 1 else ''} below the n-gram line in every seed" if beat_kn else
                           f"none of the {len(nets)} families ends below the n-gram line in any seed"),
        "curves_best": f"{nets[0]} at {spread(s[nets[0]])}",
    }
    if "GPT" in s and "LSTM" in s:
        g, l = s["GPT"], s["LSTM"]
        gap = bits(g["final_mean"] - l["final_mean"])
        out["curves_gpt"] = spread(g)
        out["curves_lstm"] = spread(l)
        every = _every_seed(l, g, "LSTM", "GPT")
        out["curves_gpt_vs_lstm"] = (
            f"the LSTM is ahead of the GPT by {abs(gap):.2f} bits/char after {out['curves_steps']} steps, "
            f"{every}" if bits(g["final_min"]) > bits(l["final_max"]) else
            f"the GPT is ahead of the LSTM by {abs(gap):.2f} bits/char after {out['curves_steps']} steps, {every}"
            if bits(g["final_max"]) < bits(l["final_min"]) else
            "the GPT and the LSTM end within each other's seed-to-seed spread")
        out["curves_claim1"] = ("Claim 1 does not hold at this budget either" if bits(g["final_min"]) > bits(l["final_max"])
                                else "Claim 1 holds over the seeds" if bits(g["final_max"]) < bits(l["final_min"])
                                else "Claim 1 is undecided over the seeds")
        # how fast each is still improving: the drop over the last quarter of the steps
        q = len(g["curve_mean"]) * 3 // 4

        def drop(f):
            return bits(f["curve_mean"][q - 1] - f["curve_mean"][-1])

        behind = g["final_mean"] > l["final_mean"]
        out["curves_gpt_trend"] = (
            ("the GPT was still closing the gap to the LSTM when training stopped" if behind else
             "the GPT was still pulling away from the LSTM when training stopped") if drop(g) > drop(l) else
            ("the GPT was not closing the gap to the LSTM" if behind else
             "the LSTM was closing the gap to the GPT"))
        out["curves_gpt_last_drop"] = fmt(drop(g), 2)
        out["curves_lstm_last_drop"] = fmt(drop(l), 2)
        t = min(g["train_s"], l["train_s"])                                # both clocks reach it
        at = {k: loss_at_seconds(results, k, t) for k in ("GPT", "LSTM")}
        out["curves_matched_s"] = f"{t:.0f} s"
        out["curves_gpt_at_s"] = fmt(bits(at["GPT"])) if at["GPT"] is not None else "not reached"
        out["curves_lstm_at_s"] = fmt(bits(at["LSTM"])) if at["LSTM"] is not None else "not reached"
    return out


def _vs(f: dict, ref: dict) -> str:
    """Where family ``f`` ends against ``ref`` (another family), judged over the seeds."""
    if f["final_max"] < ref["final_min"]:
        return "ahead in every seed"
    if f["final_min"] > ref["final_max"]:
        return "behind in every seed"
    return "within the seeds' spread"


def table(src: Sources) -> dict[str, str]:
    """The curves as a table: matched steps (the end of training) and matched wall-clock."""
    from ...curves import loss_at_seconds

    results, s = _stats(src)
    t = min(f["train_s"] for f in s.values())                   # every family's clock reaches it
    fastest = min(s, key=lambda k: s[k]["train_s"])
    rows = ["| model | parameters | learning rate | val bits/char after "
            f"{results['protocol']['steps']:,} steps, mean (best to worst seed) | training time (fastest seed) | "
            f"val bits/char at {t:.0f} s (estimate) | against the GPT, matched steps |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for k in sorted(s, key=lambda k: s[k]["final_mean"]):
        f = s[k]
        at = loss_at_seconds(results, k, t)
        spread_ = ("one seed" if f["seeds"] == 1 else
                   f"{fmt(bits(f['final_min']))} to {fmt(bits(f['final_max']))}, {f['seeds']} seeds")
        rows.append(f"| {k} | {f['params']:,} | {f['lr']:g} | {fmt(bits(f['final_mean']))} ({spread_}) | "
                    f"{f['train_s']:.0f} s | "
                    f"{fmt(bits(at)) if at is not None else '-'} | "
                    f"{'-' if k == 'GPT' or 'GPT' not in s else _vs(f, s['GPT'])} |")
    seeds = sorted({f["seeds"] for f in s.values()})
    ahead = [k for k in s if k != "GPT" and "GPT" in s and _vs(s[k], s["GPT"]) == "ahead in every seed"]
    at_t = {k: loss_at_seconds(results, k, t) for k in s}
    best_t = min((k for k in at_t if at_t[k] is not None), key=lambda k: at_t[k])
    order = sorted(s, key=lambda k: s[k]["final_mean"])
    if "GPT" in s:
        behind = order[:order.index("GPT")]
        place = (f"the GPT ends last of the {len(s)} families in the mean" if len(behind) == len(s) - 1 else
                 f"the GPT ends behind {', '.join(behind)} and ahead of {', '.join(order[order.index('GPT') + 1:])}"
                 if behind else f"the GPT ends first of the {len(s)} families in the mean")
    else:
        place = "the GPT is not in this record"
    loads = [r["load_avg_1min"] for r in results["runs"] if r.get("load_avg_1min") is not None]
    return {
        "curves_table": "\n".join(rows),
        "curves_seeds": " or ".join(map(str, seeds)),
        "curves_matched_t": f"{t:.0f} s",
        "curves_fastest": fastest,
        "curves_best_at_t": best_t,
        "curves_ahead_of_gpt": (f"{len(ahead)} of the {len(s) - 1} other families ({', '.join(ahead)}) end ahead of "
                                "the GPT in every seed" if ahead else
                                "no family ends ahead of the GPT in every seed"),
        "curves_gpt_place": place,
        "curves_load": (f"{min(loads):.1f} to {max(loads):.1f}" if loads else "not recorded"),
        "curves_cores": str(results.get("cpu_count", "?")),
    }


def recurrent(src: Sources) -> dict[str, str]:
    """Part II: the RNN, LSTM and GRU curves (the same protocol as every family)."""
    from ...curves import loss_at_seconds

    results, s = _stats(src)
    kn = bits(results["ngram"]["val_loss"][-1])
    cells = [k for k in RECURRENT if k in s]
    order = sorted(cells, key=lambda k: s[k]["final_mean"])
    best, worst = s[order[0]], s[order[-1]]
    apart = bits(best["final_max"]) < bits(s[order[1]]["final_min"])
    t = min(s[k]["train_s"] for k in cells)
    at = {k: loss_at_seconds(results, k, t) for k in cells}
    return {
        "rec_steps": f"{results['protocol']['steps']:,}",
        "rec_rows": "; ".join(f"{k} {spread(s[k])}, lr {s[k]['lr']:g}" for k in order),
        "rec_order": (f"{order[0]} ends ahead of the other two in every seed" if apart else
                      f"{order[0]} has the lowest mean, but its seeds overlap those of {order[1]}"),
        "rec_gap": fmt(bits(worst["final_mean"] - best["final_mean"]), 2),
        "rec_kn": fmt(kn),
        "rec_vs_kn": ("none of the three reaches the n-gram line in any seed" if all(bits(s[k]["final_min"]) > kn
                                                                                 for k in cells)
                      else "at least one cell goes below the n-gram line"),
        "rec_gated": ("Both gated cells end ahead of the plain RNN in every seed: with three seeds, a tuned rate "
                      "per cell and 0.8 million parameters, the second claim's direction shows, against the RNN if "
                      "not against counting"
                      if all(bits(s[g]["final_max"]) < bits(s["RNN"]["final_min"]) for g in ("LSTM", "GRU")) else
                      "The gated cells do not end ahead of the plain RNN in every seed, so the second claim is not "
                      "shown by these runs either"),
        "rec_matched_t": f"{t:.0f} s",
        "rec_at_t": "; ".join(f"{k} {fmt(bits(at[k]))}" for k in cells if at[k] is not None),
    }


def only(*names):
    """A page's numbers: the given names of :func:`shared` and :func:`table`."""
    def make(src: Sources) -> dict[str, str]:
        values = {**shared(src), **table(src)}
        return {k: values[k] for k in names}
    return make


PAGES = {
    "book/03-lstm-gru.md": recurrent,
    "book/08-gpt.md": only("curves_steps", "curves_chars", "curves_passes", "curves_gpt_vs_lstm", "curves_gpt",
                           "curves_lstm", "curves_beat_kn", "curves_matched_s", "curves_device", "curves_gpt_at_s",
                           "curves_lstm_at_s", "curves_gpt_last_drop", "curves_lstm_last_drop",
                           "curves_gpt_trend"),
    "book/beyond-attention.md": only("curves_steps", "curves_chars", "curves_seeds", "curves_table",
                                     "curves_ahead_of_gpt", "curves_matched_t", "curves_fastest", "curves_best_at_t",
                                     "curves_load", "curves_cores", "curves_beat_kn",
                                     "curves_gpt_place"),
    "book/grand-comparison.md": only("curves_steps", "curves_seeds", "curves_table", "curves_gpt_vs_lstm",
                                     "curves_matched_s", "curves_gpt_at_s", "curves_lstm_at_s", "curves_gpt_last_drop",
                                     "curves_lstm_last_drop", "curves_gpt_trend", "curves_beat_kn",
                                     "curves_claim1"),
}
FIGURES = {FIGURE: (f"results/{RESULTS}.json", draw),
           FIGURE_RECURRENT: (f"results/{RESULTS}.json", draw_recurrent)}
NOT_MEASURED = {}
