"""Numbers quoted by the pages of Part VI, beyond attention (see seqlab.course.pages)."""
from __future__ import annotations

import re

from ..sources import Sources, bits, fmt, lower_word, num, pct, split

TIE = 0.02          # nats/char: the labs call a smaller difference of validation loss a tie at one seed


# ----------------------------------------------------------------------------- shared pieces

def _charlm(src: Sources, lab: str) -> dict[str, tuple[int, float, float]]:
    """{model: (parameters, val nats/char, seconds)} of the character-LM runs of Lab 11, 12 or 13."""
    out = {}
    for key, value in src.card(lab).items():
        m = re.match(r"char-LM (.+?)(?:: params / val nats per char / s)?$", key)
        if not m:
            continue
        if lab == "11-state-spaces":          # "795,904 params, val 2.125 nats/char, 116 s"
            p, v, s = re.match(r"([\d,]+) params, val ([\d.]+) nats/char, (\d+) s", value).groups()
        else:                                 # "795,904 / 2.125 / 94"
            p, v, s = split(value)
        out[m.group(1)] = (int(num(p)), num(v), num(s))
    if "GPT" not in out or len(out) < 2:
        raise ValueError(f"{lab}: no char-LM results in its run card")
    return out


def _steps(src: Sources) -> int:
    """The training steps of the shared character-LM protocol, as Labs 11 to 13 ran it (all the same)."""
    steps = {int(src.output("11-state-spaces", r"protocol \(\w+\): \{[^}]*'max_steps': (\d+)\}")[0]),
             int(src.output("12-rwkv", r"GPT: (\d+) steps in")[0]),
             int(src.output("13-hyena-and-linear-attention", r"GPT +[\d,]+ parameters: val [\d.]+ nats/char after (\d+) steps")[0])}
    if len(steps) != 1:
        raise ValueError(f"Labs 11 to 13 trained for different numbers of steps: {sorted(steps)}")
    return steps.pop()


def _lab8(src: Sources) -> tuple[int, float, int]:
    """Lab 8's GPT: steps, whole-split val loss (nats/char), training seconds."""
    card = src.card("08-gpt")
    steps = int(re.search(r"(\d+) steps", card["configuration"]).group(1))
    return steps, num(card["val loss, whole split (nats/char)"]), int(num(card["training time"]))


def _kn(src: Sources, order: int) -> float:
    return num(src.output("01-ngrams", rf"KN, n={order}: ([\d.]+) bpc")[0])


def _time_ratio(src: Sources, lab: str, name: str) -> float:
    """How many times the GPT's training time ``name`` took in ``lab``, as the lab printed it (from unrounded times)."""
    if lab == "11-state-spaces":
        speeds = dict((n, num(v)) for n, v in re.findall(r"(\S+) ([\d,]+)", src.output(
            lab, r"training speed here \(characters/s\): ([^\n]+)")[0]))
        return speeds["GPT"] / speeds[name]
    if lab == "12-rwkv":
        return num(src.output(lab, rf"{re.escape(name)} took ([\d.]+) x as long as the GPT")[0])
    return num(src.output(lab, rf"{re.escape(name)} \([\d,]+ parameters, [\d.]+x the GPT's\) [^\n]*; ([\d.]+)x the GPT's "
                               r"training time")[0])


def _times(x: float) -> str:
    return f"{x:.1f} times"


def _pct0(x: float) -> str:
    return f"{round(100 * x)}%"


def _vs_lab8(steps: int, steps8: int) -> str:
    """``half of Lab 8's 2,000`` (steps), from the two counts."""
    words = {0.25: "a quarter of", 0.5: "half of", 1.0: "as many as"}
    share = words.get(steps / steps8, f"{steps / steps8:.2f} times")
    return f"{share} Lab 8's {steps8:,}"


def _gpt_baseline(src: Sources, prefix: str) -> dict[str, str]:
    """The under-trained GPT of Labs 11 to 13 against Lab 8's run and Part I's Kneser-Ney models."""
    gpt_val = _charlm(src, "11-state-spaces")["GPT"][1]
    gpt_bpc, kn3 = bits(gpt_val), _kn(src, 3)
    steps8 = _lab8(src)[0]
    return {
        f"{prefix}_steps": f"{_steps(src):,}", f"{prefix}_vs_lab8": _vs_lab8(_steps(src), steps8),
        f"{prefix}_gpt_val": fmt(gpt_val), f"{prefix}_gpt_bpc": fmt(gpt_bpc),
        f"{prefix}_kn3_bpc": fmt(kn3),
        f"{prefix}_gpt_vs_kn3": lower_word(gpt_bpc, kn3, "better than", "worse than", "level with"),
    }


def _count(src: Sources, lab: str, pattern: str) -> int:
    """How many times ``pattern`` matches in the committed outputs of ``lab``."""
    from ..sources import _output_text

    return sum(len(re.findall(pattern, _output_text(cell))) for cell in src._notebook(lab).cells
               if cell.cell_type == "code")


def _why(src: Sources, lab: str, models: tuple[str, ...], text: str) -> str:
    """``text`` (why a model with a local bias learns faster per step) when one of ``models`` beat the GPT, else a
    sentence saying none did."""
    runs = _charlm(src, lab)
    if any(runs[m][1] < runs["GPT"][1] - TIE for m in models):
        return text
    return "None of them beat the GPT, so a head start from a local bias is not visible in this run."


def _beats(name: str, val: float, gpt: float) -> str:
    """``beats the GPT by 0.391 nats per character`` (or trails it, or ties), from the two losses."""
    if abs(val - gpt) < TIE:
        return f"ties with the GPT (a difference of {abs(val - gpt):.3f} nats per character)"
    if val < gpt:
        return f"beats the GPT by {gpt - val:.3f} nats per character"
    return f"trails the GPT by {val - gpt:.3f} nats per character"


# ----------------------------------------------------------------------------- beyond-attention.md

_LABS = (("11-state-spaces", "Mamba", "{doc}`11-state-spaces`"), ("11-state-spaces", "minGRU", "{doc}`11-state-spaces`"),
         ("12-rwkv", "RWKV-7", "{doc}`12-rwkv`"), ("13-hyena-and-linear-attention", "Hyena", "{doc}`13-hyena-and-linear-attention`"),
         ("13-hyena-and-linear-attention", "RetNet", "{doc}`13-hyena-and-linear-attention`"))


def _versus_gpt(src: Sources, lab: str, prefix: str, models, values: dict) -> tuple:
    """Each model's val loss, verdict against the lab's GPT and time ratio, written into ``values`` as
    PREFIX_KEY_val, PREFIX_KEY_vs_gpt and PREFIX_KEY_x; returns the GPT's (params, val, seconds)."""
    runs = _charlm(src, lab)
    gpt = runs["GPT"]
    for name, key in models:
        val = runs[name][1]
        values.update({f"{prefix}_{key}_val": fmt(val), f"{prefix}_{key}_vs_gpt": _beats(name, val, gpt[1]),
                       f"{prefix}_{key}_x": _times(_time_ratio(src, lab, name))})
    return gpt


def beyond(src: Sources) -> dict[str, str]:
    values = _gpt_baseline(src, "p6")
    steps8, val8, seconds8 = _lab8(src)
    gpt_val = num(values["p6_gpt_val"])
    winners, losers, slowest = [], [], []
    for i, (lab, name, _) in enumerate(_LABS, 1):
        runs = _charlm(src, lab)
        params, val, seconds = runs[name]
        ratio = _time_ratio(src, lab, name)
        values.update({f"p6_m{i}_params": f"{params:,}", f"p6_m{i}_val": fmt(val), f"p6_m{i}_s": f"{seconds:.0f} s",
                       f"p6_m{i}_x": fmt(ratio, 1)})
        (winners if val < gpt_val - TIE else losers).append(name)
        if ratio > 2:
            slowest.append((name, ratio))
        if lab == "11-state-spaces" and name == "Mamba":
            values["p6_gpt_params"] = f"{runs['GPT'][0]:,}"
    gpt_s = sorted(_charlm(src, lab)["GPT"][2] for lab in {lab for lab, _, _ in _LABS})
    values["p6_gpt_s"] = f"{gpt_s[0]:.0f} to {gpt_s[-1]:.0f} s"

    def names(xs):
        return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]
    verdict = (f"At the same number of steps, {names(winners)} {'beats' if len(winners) == 1 else 'beat'} this GPT"
               if winners else "At the same number of steps, none of the five beats this GPT by more than a tie")
    if losers:
        verdict += f"; {names(losers)} {'does' if len(losers) == 1 else 'do'} not"
    values["p6_verdict"] = verdict + "."
    if slowest:
        values["p6_slow"] = (names([f"{n} ({r:.1f} times)" for n, r in slowest]) + " took far longer than the GPT of "
                             "their lab, because `seqlab` runs their recurrences as plain PyTorch loops. Given the "
                             f"same training time, the GPT could have trained for about {min(r for _, r in slowest):.0f} "
                             "times as many steps against them")
    else:
        values["p6_slow"] = "No model took more than twice the GPT's time, so equal steps were close to equal time here"
    share = len(winners) / len(_LABS)
    values["p6_conclusion"] = (("most of the new mixers" if share > 0.5 else "some of the new mixers" if winners
                                else "none of the new mixers") + " learned faster per step than the GPT")
    beat8 = [name for lab, name, _ in _LABS if _charlm(src, lab)[name][1] < val8]
    values["p6_lab8"] = (f"Lab 8's own GPT, trained for {steps8:,} steps in {seconds8} s, reached {val8:.3f} nats per "
                         "character: " + (f"still behind {names(beat8)} here" if beat8 else "ahead of every model here"))
    return values


# ----------------------------------------------------------------------------- 11-state-spaces.md

def state_spaces(src: Sources) -> dict[str, str]:
    lab = "11-state-spaces"
    values = _gpt_baseline(src, "ssm")
    chance, sel, lti = src.output(lab, r"chance: ([\d.]+%); selective: ([\d.]+%); time-invariant: ([\d.]+%)")
    solved = num(sel) >= 90 and num(lti) < 90
    values.update({
        "ssm_copy_chance": chance, "ssm_copy_sel": sel, "ssm_copy_lti": lti,
        "ssm_copy_verdict": ("the selective model solved the task and the time-invariant one did not, as the paper's "
                             "table 1 reports" if solved else
                             "this run does not reproduce the paper's result (the selective model did not solve the "
                             "task, or the time-invariant one did)"),
    })
    gpt = _versus_gpt(src, lab, "ssm", (("Mamba", "mamba"), ("minGRU", "mingru")), values)
    values["ssm_gpt_s"] = f"{gpt[2]:.0f} s"
    values["ssm_lm_why"] = _why(src, lab, ("Mamba", "minGRU"),
                                "Mamba's short convolution and minGRU's recurrence see the neighbouring characters from "
                                "the first step, while the GPT must learn what \"nearby\" means from its position "
                                "embeddings, so a short budget favours them.")
    pos, gpt_x, mem_x = src.output(lab, r"at (\d+) tokens, here: one GPT token takes ([\d.]+)x the time of a Mamba "
                                         r"token, and its cache holds (\d+)x the bytes")
    values.update({"ssm_gen_pos": f"{int(pos):,}", "ssm_gen_time_x": gpt_x, "ssm_gen_mem_x": mem_x})
    rows = src.result("generation-h200")["rows"]
    first, mid, last = rows[0], next(r for r in rows if r["position"] == 4096), rows[-1]
    values.update({
        "ssm_h200_pos0": f"{first['position']:,}", "ssm_h200_pos1": f"{mid['position']:,}",
        "ssm_h200_pos2": f"{last['position']:,}",
        "ssm_h200_flat": ("barely moved" if abs(mid["GPT + KV cache ms"] / first["GPT + KV cache ms"] - 1) < 0.2
                          else "grew" if mid["GPT + KV cache ms"] > first["GPT + KV cache ms"] else "fell"),
        "ssm_h200_gpt0": fmt(first["GPT + KV cache ms"], 1), "ssm_h200_gpt1": fmt(mid["GPT + KV cache ms"], 1),
        "ssm_h200_gpt2": fmt(last["GPT + KV cache ms"], 1),
        "ssm_h200_mamba_lo": fmt(min(r["Mamba ms"] for r in rows), 1),
        "ssm_h200_mamba_hi": fmt(max(r["Mamba ms"] for r in rows), 1),
        "ssm_h200_cache2": f"{last['GPT + KV cache state MiB']:.0f} MiB",
        "ssm_h200_state": f"{last['Mamba state MiB']:.2f} MiB",
    })
    return values


# ----------------------------------------------------------------------------- 12-rwkv.md

def rwkv(src: Sources) -> dict[str, str]:
    lab = "12-rwkv"
    card = src.card(lab)
    values = _gpt_baseline(src, "rwkv")
    runs = _charlm(src, lab)
    gpt, rw = runs["GPT"], runs["RWKV-7"]
    values.update({"rwkv_val": fmt(rw[1]), "rwkv_vs_gpt": _beats("RWKV-7", rw[1], gpt[1]),
                   "rwkv_x": _times(_time_ratio(src, lab, "RWKV-7")),
                   "rwkv_lm_why": _why(src, lab, ("RWKV-7",),
                                       "RWKV-7's token shift shows every layer the previous character from the first "
                                       "step, while the GPT must learn what \"previous\" means from its position "
                                       "embeddings, so a short budget favours RWKV-7.")})

    def recall(model, layout):
        return [num(x) for x in split(card[f"recall {model}, question {layout} (4/8/16/32 pairs)"])]
    r_last, r_first = recall("RWKV-7", "last"), recall("RWKV-7", "first")
    s_last, s_first = recall("attention + token shift", "last"), recall("attention + token shift", "first")
    g_all = recall("GPT", "last") + recall("GPT", "first")
    g_long = [num(x) for x in split(card["plain GPT, 4 pairs, 1500 steps (lr 1e-3 / 3e-3)"])]
    steps_recall = src.output(lab, r"RWKV-7 +question last : (\d+) steps in")[0]
    long_steps = int(re.search(r"(\d+) steps", next(k for k in card if k.startswith("plain GPT, 4 pairs"))).group(1))
    signed_gain = max((f - l for f, l in zip(r_first, r_last)), key=abs)
    order_gain = abs(signed_gain)
    values.update({
        "rwkv_r4": _pct0(r_last[0]), "rwkv_r32": _pct0(r_last[-1]),
        "rwkv_shift_lo": _pct0(min(s_last + s_first)),
        "rwkv_gpt_best": _pct0(max(g_all)), "rwkv_gpt_long": _pct0(max(g_long)),
        "rwkv_fall": ("falls as the pairs grow, as the critique of fixed-size states predicts (whether the size of "
                      "the state or the short training sets the limit, this run cannot tell)"
                      if r_last[0] - r_last[-1] >= 0.05 else
                      "does not fall by more than the lab's 5-point tie as the pairs grow: the critique of fixed-size "
                      "states is not shown at these sizes"),
        "rwkv_recall_lead": ("This experiment separates the models clearly."
                             if max(r_last[0], s_last[0]) - min(g_all) >= 0.5 else
                             "This experiment does not separate the models clearly."),
        "rwkv_recall_story": (f"So the plain GPT did not learn the task in {steps_recall} steps, while the same attention "
                              "with the token shift doing the \"previous token\" step for it solved every size: what "
                              "separates them here is how fast they learn, not what attention can hold."
                              if max(g_all) < 0.5 and min(s_last + s_first) >= 0.9 else
                              "The plain GPT and the attention model with token shift did not split into one that "
                              "failed and one that solved the task, so the token shift's role is not shown here."),
        "rwkv_order_gain": f"{round(100 * order_gain)} point{'s' if round(100 * order_gain) != 1 else ''}",
        "rwkv_order_verdict": ("under the 5 points the lab calls a tie, so the effect of the order is not shown at "
                               "this size. Either the model did not learn to use the early questions within the "
                               "budget, or the gain is smaller than this experiment can see" if order_gain < 0.05 else
                               "more than the 5 points the lab calls a tie, " +
                               ("as the critique predicts" if signed_gain > 0 else "but against the critique's prediction")),
        "rwkv_r32_first": _pct0(r_first[-1]),
        "rwkv_gpt_order": f"{round(100 * max(abs(f - l) for f, l in zip(recall('GPT', 'first'), recall('GPT', 'last'))))} points",
        "rwkv_long_steps": f"{long_steps:,}",
    })
    return values


# ----------------------------------------------------------------------------- 13-hyena-and-linear-attention.md

def _recall13(card: dict) -> dict[str, str]:
    """Lab 13's associative recall: every model with the same local mixing, several seeds, one model per
    seed trained on a mix of pair counts (the run card's "recall NAME, d D: ..." rows)."""
    rows = {}
    for key, value in card.items():
        m = re.match(r"recall (.+), d (\d+): mean over (\d+) seeds \(([\d/]+) pairs\)$", key)
        if m:
            name, d = m.group(1), int(m.group(2))
            ranges = [x.split("-") for x in split(card[f"recall {name}, d {d}: worst to best seed"])]
            rows[name, d] = {"seeds": int(m.group(3)), "pairs": [int(x) for x in m.group(4).split("/")],
                             "mean": [num(x) for x in split(value)],
                             "lo": [float(r[0]) for r in ranges], "hi": [float(r[1]) for r in ranges]}
    if not rows:
        raise KeyError("Lab 13's run card has no recall rows")
    (attn_d,) = [d for (n, d) in rows if n == "attention + shift"]
    ret_ds = sorted(d for (n, d) in rows if n == "RetNet + shift")
    attn, ret, ret_large, hy = (rows["attention + shift", attn_d], rows["RetNet + shift", ret_ds[0]],
                                rows["RetNet + shift", ret_ds[-1]], rows["Hyena", attn_d])
    pairs = attn["pairs"]

    def row(r):
        return " / ".join(f"{v:.2f}" for v in r["mean"])

    learned = min(attn["lo"]) >= 0.9
    ret_fell = ret["hi"][-1] < ret["lo"][0] - 0.05              # best seed at the most pairs below the worst at the fewest
    larger_holds = ret_large["mean"][-1] > ret["hi"][-1]
    state = lambda d: 4 * (d // 4) ** 2                          # 4 heads of (d/4) x (d/4)
    return {
        "hy_recall_pairs": ", ".join(map(str, pairs[:-1])) + f" and {pairs[-1]}",
        "hy_recall_seeds": str(attn["seeds"]),
        "hy_recall_pairs_row": " / ".join(map(str, pairs)),
        "hy_attn_lo": f"{100 * min(attn['lo']):.0f}%",
        "hy_attn_learned": ("attention learned the task at every pair count" if learned else
                            "attention did not learn the task at every pair count, so the rows below measure how "
                            "fast each model learns as much as what it can hold"),
        "hy_ret_state": f"{state(ret_ds[0]):,}", "hy_ret_state_large": f"{state(ret_ds[-1]):,}",
        "hy_ret_row": row(ret), "hy_ret_large_row": row(ret_large),
        "hy_ret_verdict": ("fell as the pairs grew, in every seed (its best seed at "
                           f"{pairs[-1]} pairs, {ret['hi'][-1]:.2f}, is below its worst at {pairs[0]}, {ret['lo'][0]:.2f})"
                           if ret_fell else "did not fall by more than its seeds' spread as the pairs grew"),
        "hy_zoology": ("attention keeps every pair, a small fixed-size state loses them as the pairs grow, and a larger "
                       "state holds more: Zoology's finding, at toy scale" if learned and ret_fell and larger_holds else
                       "Zoology's pattern (attention keeps every pair, a small state loses them, a larger state holds "
                       "more) is not shown cleanly by this run"),
        "hy_hyena_row": row(hy),
        "hy_hyena_verdict": (f"did not learn the task, even at {pairs[0]} pairs: its scores stay near guessing one of "
                             f"the values of each example ({1 / pairs[0]:.2f} at {pairs[0]} pairs, {1 / pairs[-1]:.2f} at "
                             f"{pairs[-1]}), so its row says how slowly it learns the task here, not what it can hold "
                             "(Hyena also has no fixed-size state to fill)"
                             if hy["mean"][0] < 0.5 else
                             "learned the task at the smallest pair count; its row can be read like RetNet's"),
    }


def hyena(src: Sources) -> dict[str, str]:
    lab = "13-hyena-and-linear-attention"
    card = src.card(lab)
    values = _gpt_baseline(src, "hy")
    _versus_gpt(src, lab, "hy", (("Hyena", "hyena"), ("RetNet", "retnet")), values)
    values.update(_recall13(card))
    values["hy_lm_why"] = _why(src, lab, ("Hyena", "RetNet"),
                               "Hyena's short convolutions show it the neighbouring characters from the first step, "
                               "which a short budget favours. The RetNet built here has no short convolution and leaves "
                               "out RetNet's rotary position encoding (xPos), so its only sense of position is its decay.")
    ratio_recompute, ratio_step = num(src.output(lab, r"Hyena recompute ([\d.]+)x slower per token")[0]), \
        num(src.output(lab, r"RetNet step ([\d.]+)x")[0])
    values["hy_gen_verdict"] = ("Hyena's cost per token grew with the position and RetNet's did not, as the critique says"
                                if ratio_recompute > 2 and ratio_step < 1.5 else
                                "the growth the critique predicts for Hyena, against a constant cost for RetNet, is not "
                                "what this run measured")
    lab12 = src.card("12-rwkv")
    values["hy_lab12_shift"] = _pct0(num(split(lab12["recall attention + token shift, question last (4/8/16/32 pairs)"])[0]))
    values["hy_lab12_gpt"] = _pct0(num(split(lab12["recall GPT, question last (4/8/16/32 pairs)"])[0]))
    values["hy_ffthere"] = card["attention / hyena at 8,192 (here)"]
    values["hy_ffth200_8k"] = card["attention / hyena at 8,192 (H200)"]
    values["hy_ffth200_64k"] = card["attention / hyena at 65,536 (H200)"]
    # Mamba's scan claim on the H200, from the committed measurements
    rows = src.result("long-context-h200")["rows"]
    ratios = [(r["L"], r["attention (SDPA) ms"] / min(r["mamba scan, sequential ms"], r["mamba scan, parallel ms"]))
              for r in rows if r["L"] > 2048]
    faster_from = next((L for i, (L, _) in enumerate(ratios) if all(x > 1 for _, x in ratios[i:])), None)
    values["hy_scan_h200_4k"] = fmt(ratios[0][1], 2)
    values["hy_scan_h200_L0"] = f"{ratios[0][0]:,}"
    values["hy_scan_h200_from"] = (f"from {faster_from:,} tokens on" if faster_from else "at no length measured")
    values["hy_scan_h200_verdict"] = ("does not hold" if not all(x > 1 for _, x in ratios) else "holds too")
    claimed = _count(src, lab, r"as claimed or better")
    values["hy_ffthere_lab"] = (f"The lab's cells print \"as claimed or better\" for {'this ratio' if claimed == 1 else 'these ratios'}; "
                                "that verdict does not confirm the paper's claim." if claimed else "")
    values["hy_scan_here_verdict"] = "holds" if card["scan beats attention at every L > 2K (here)"] == "True" else "does not hold"
    p0, p1, recompute, cached, step = src.output(
        lab, r"from position ([\d,]+) to ([\d,]+) \(\d+x\): Hyena recompute ([\d.]+)x slower per token, "
             r"Hyena cached sum ([\d.]+)x, RetNet step ([\d.]+)x")
    values.update({"hy_gen_p0": p0, "hy_gen_p1": p1, "hy_gen_recompute": recompute, "hy_gen_cached": cached,
                   "hy_gen_step": step})
    c2, c16, c128 = src.output(lab, r" 2: ([\d.]+) +4: [\d.]+ +8: [\d.]+ +16: ([\d.]+) +32: [\d.]+ +64: [\d.]+ +128: ([\d.]+)")
    values.update({"hy_cos2": c2, "hy_cos16": c16, "hy_cos128": c128})
    return values


# ----------------------------------------------------------------------------- 14-moe.md

def moe(src: Sources) -> dict[str, str]:
    lab = "14-moe"
    card = src.card(lab)
    runs = {}
    for key, value in card.items():
        m = re.match(r"char-LM (.+): total / active params, val nats/char, s$", key)
        if m:
            _, val, seconds = [p.strip() for p in value.split(", ")]
            runs[m.group(1)] = (num(val), num(seconds))
    small, mixture, big = runs["dense, active size"][0], runs["MoE 16 routed (2 active) + 1 shared"][0], runs["dense, total size"][0]
    if min(small, big) < mixture < max(small, big):
        where = "between the two dense models"
    else:
        where = "outside the range of the two dense models"
    steps, device = src.output(lab, r"(\d+) steps each on ([^;\n]+); val")
    ratio, moe_cps, dense_cps = src.output(lab, r"MoE trains at ([\d.]+)x the characters per second of the dense model "
                                                r"of active size \(([\d,]+) vs ([\d,]+)\)")
    flops_x, = src.output(lab, r"Per token it costs ([\d.]+)x the FLOPs of the active-size dense model")
    balance = {}
    for key, value in card.items():
        m = re.match(r"balance (.+) \((\d+) steps\): global MaxVio, val nats/char$", key)
        if m:
            maxvio, val = [num(x) for x in value.split(", ")]
            balance[m.group(1)] = (maxvio, val)
            bal_steps = m.group(2)
    share, even = src.output(lab, r"its busiest expert takes (\d+%) of the routed tokens \(an even share is (\d+%)\)")
    vals = [v for _, v in balance.values()]
    mi = [num(x) for x in split(card["I(expert; current char) / H per layer"])]
    params = {}
    for key, value in card.items():
        m = re.match(r"char-LM (.+): total / active params", key)
        if m:
            params[m.group(1)] = [num(x) for x in split(value.split(", ")[0])]
    param_x = params["MoE 16 routed (2 active) + 1 shared"][0] / params["dense, active size"][0]
    none = balance["sigmoid, no balancing"][0]
    balanced = {k: v[0] for k, v in balance.items() if k != "sigmoid, no balancing"}
    most_even = min(balanced, key=balanced.get)
    most_even = ("the auxiliary loss" if "aux" in most_even else
                 re.sub(r".*bias, gamma ([\d.]+)", r"the bias with γ = \1", most_even))
    if none > 2 * max(balanced.values()):
        bal_verdict = (f"Without balancing the load drifted far from even, and every balancing method kept it much "
                       f"closer; the most even came from {most_even}.")
    else:
        bal_verdict = "Without balancing the load stayed about as even as with the balancing methods, at this length."
    slower = num(dense_cps) / num(moe_cps)
    spread = abs(small - big)
    return {
        "moe_spread_word": "small" if spread < 0.1 else "clear",
        "moe_big_gain": (f"Even the dense model with {param_x:.1f} times the parameters is only {small - big:.3f} nats "
                         "per character better than the small one at this budget, which leaves the MoE little room to "
                         "show what its extra parameters are worth." if 0 < small - big < 0.1 else
                         f"The dense model with {param_x:.1f} times the parameters is {abs(small - big):.3f} nats per "
                         f"character {'better' if big < small else 'worse'} than the small one."),
        "moe_bal_verdict": bal_verdict,
        "moe_speed_verdict": ("At this width the routing (sorting the tokens, gathering and scattering them, one call per "
                              "expert) costs more time than the skipped matrix products save, as the last critique above "
                              "says" if slower > 1.5 else
                              "At this width the routing did not cost much more than the dense model's matrix products"),
        "moe_mi_verdict": ("the character alone decides less than half of the choice" if max(mi) < 0.5 else
                           "in some layer the character alone decides more than half of the choice"),
        "moe_steps": f"{int(steps):,}", "moe_device": device.split("(")[-1].rstrip(")"),
        "moe_small": fmt(small), "moe_moe": fmt(mixture), "moe_big": fmt(big), "moe_where": where,
        "moe_spread": fmt(abs(small - big)),
        "moe_slower": fmt(num(dense_cps) / num(moe_cps), 1), "moe_flops_x": flops_x,
        "moe_bal_steps": bal_steps,
        "moe_none": fmt(balance["sigmoid, no balancing"][0], 2), "moe_share": share, "moe_even": even,
        "moe_aux": fmt(balance["softmax + aux loss"][0], 2),
        "moe_bias3": fmt(balance["sigmoid + bias, gamma 0.001"][0], 2),
        "moe_bias2": fmt(balance["sigmoid + bias, gamma 0.01"][0], 2),
        "moe_bal_range": fmt(max(vals) - min(vals)),
        "moe_mi_lo": fmt(min(mi), 2), "moe_mi_hi": fmt(max(mi), 2),
    }


# ----------------------------------------------------------------------------- 15-ctm.md

def ctm(src: Sources) -> dict[str, str]:
    lab = "15-ctm"
    card = src.card(lab)
    lengths = sorted(int(m.group(1)) for k in card for m in [re.match(r"parity (\d+): acc", k)] if m)
    acc = {L: [num(x) for x in split(card[f"parity {L}: acc CTM / LSTM / Transformer (mean)"])] for L in lengths}
    steps = {L: [int(num(x)) for x in split(card[f"parity {L}: steps CTM / LSTM / Transformer (mean)"])]
             for L in lengths}
    secs = {L: [num(x) for x in split(card[f"parity {L}: seconds CTM / LSTM / Transformer (mean)"])] for L in lengths}
    worst = [L for L in lengths if acc[L][0] < min(acc[L][1:]) - 0.005]
    level = [L for L in lengths if L not in worst and abs(acc[L][0] - min(acc[L][1:])) <= 0.005 + 1e-9]
    weaker = {("LSTM", "Transformer")[acc[L][2] < acc[L][1]] for L in level}
    lstm_best = all(acc[L][1] >= max(acc[L][0], acc[L][2]) - 0.01 for L in lengths)     # ties: within a point
    lstm_tied = [L for L in lengths if acc[L][1] < max(acc[L][0], acc[L][2])]

    def names(xs):
        xs = [str(x) for x in xs]
        return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]
    if worst:
        worst_text = f"The CTM is the worst of the three at length{'s' if len(worst) > 1 else ''} {names(worst)}"
        if level:
            worst_text += (f", and level with the {names(sorted(weaker))} (within half a point) at length"
                           f"{'s' if len(level) > 1 else ''} {names(level)}")
        worst_text += "."
    else:
        worst_text = "The CTM is not the worst of the three at any length."
    tick_key = next(k for k in card if k.startswith("ticks sweep at length") and k.endswith(", mean"))
    tick_len, tick_list = re.match(r"ticks sweep at length (\d+) \(([\d/]+) ticks\), mean", tick_key).groups()
    tick_mean = [num(x) for x in split(card[tick_key])]
    tick_range = [x.split("..") for x in split(card[f"ticks sweep at length {tick_len}, worst..best"])]
    ticks_verdict, tick_times = src.output(lab, r"verdict: (.+)\. Training time grows with the ticks: (.+)")
    eval_len, tick1, best_tick = src.output(lab, r"CTM trained on length (\d+): accuracy at tick 1 ([\d.]+%), "
                                                 r"best single tick ([\d.]+%)")
    saved_ticks, saved = src.output(lab, r"threshold [\d.]+: ([\d.]+) ticks on average, (\d+%) fewer ticks")
    ms = src.output(lab, r"CTM ([\d.]+) ms, LSTM ([\d.]+) ms, Transformer ([\d.]+) ms; the CTM costs (\d+) x")
    ticks, = src.output(lab, r"'ticks': (\d+)\}")
    cap = int(src.output(lab, r"at most (\d+) steps or \d+ s per model and length")[0])
    L_max = lengths[-1]
    t_eq, ctm_eq, lstm_eq, tr_eq = src.output(
        lab, rf"(?m)^  length +{L_max}, +([\d.]+) s: CTM ([\d.]+%), LSTM ([\d.]+%), Transformer ([\d.]+%)$")
    lo, hi = card[f"parity {L_max}: CTM acc worst..best"].split("..")
    v = {
        "ctm_seeds": card["seeds"],
        "ctm_pass": card["longest parity length passed (CTM, 95%, every seed)"],
        "ctm_lengths": names(lengths), "ctm_max_len": str(L_max), "ctm_ticks": ticks,
        "ctm_lstm_lo": ("scored 100.0% at every length" if min(acc[L][1] for L in lengths) >= 1 else
                        f"scored at least {pct(min(acc[L][1] for L in lengths))} at every length"),
        "ctm_cap": ", the cap" if steps[L_max][0] >= cap else "",
        "ctm_lstm_steps": str(max(steps[L][1] for L in lengths)),
        "ctm_tr_lo": pct(min(acc[L][2] for L in lengths)),
        "ctm_acc_long": pct(acc[L_max][0]), "ctm_steps_long": f"{steps[L_max][0]:,}",
        "ctm_acc_long_range": f"{pct(num(lo))}–{pct(num(hi))}",
        "ctm_worst": worst_text,
        "ctm_lstm_verdict": ("the LSTM is the best of the three at every length" if lstm_best and not lstm_tied else
                             "the LSTM is the best of the three, or within a point of the best, at every length "
                             f"(at length {names(lstm_tied)} the {'CTM' if acc[lstm_tied[0]][0] > acc[lstm_tied[0]][2] else 'Transformer'} "
                             "was ahead by less than a point)" if lstm_best else
                             "the LSTM is not the best at every length"),
        "ctm_secs_long": fmt(secs[L_max][0], 0), "ctm_lstm_secs_long": fmt(secs[L_max][1], 1),
        "ctm_tr_secs_long": fmt(secs[L_max][2], 1),
        "ctm_eq_t": t_eq, "ctm_eq_ctm": ctm_eq, "ctm_eq_lstm": lstm_eq, "ctm_eq_tr": tr_eq,
        "ctm_tick_len": tick_len,
        "ctm_tick_counts": names(tick_list.split("/")),
        "ctm_tick_results": names([f"{pct(m)} ({pct(num(a))}–{pct(num(b))})"
                                   for m, (a, b) in zip(tick_mean, tick_range)]),
        "ctm_ticks_verdict": ticks_verdict,
        "ctm_tick_times": tick_times,
        "ctm_tick1": tick1, "ctm_best_tick": best_tick, "ctm_eval_len": eval_len,
        "ctm_within": ("later ticks did answer better than the first" if num(best_tick) > num(tick1) + 5 else
                       "later ticks did not answer clearly better than the first"),
        "ctm_paper_lstm": ("The paper's finding that CTMs beat parameter-matched LSTMs is therefore not shown at this "
                           "budget." if lstm_best else
                           "The LSTM was not the best everywhere, but the run was not built to test the paper's "
                           "comparison either."),
        "ctm_adaptive_ticks": saved_ticks, "ctm_adaptive_saved": saved,
        "ctm_ms": ms[0], "ctm_lstm_ms": ms[1], "ctm_tr_ms": ms[2], "ctm_cost_x": ms[3],
    }
    # where every model passed 95%, accuracy above the mark mostly says where a run stopped: compare steps
    L_pass = int(v["ctm_pass"])
    if L_pass in steps:
        st = steps[L_pass]
        v["ctm_steps_note"] = (
            f" A model stops at its first evaluation at or above 95%, so above that mark the accuracies say little; "
            f"the steps needed say more: at length {L_pass} the CTM needed {st[0]:,} steps on average, the LSTM "
            f"{st[1]:,} and the Transformer {st[2]:,}.")
    else:
        v["ctm_steps_note"] = ""
    # equal time: how many steps the CTM had run by then, and whether its accuracy is still at chance
    ctm_steps_eq = num(t_eq) / (num(ms[0]) / 1000)
    v["ctm_eq_note"] = (f" In {t_eq} s the CTM ran only about {ctm_steps_eq:.0f} of its {ms[0]}-ms steps, and its "
                        "accuracy is still at chance (50%)." if abs(num(ctm_eq) - 50) < 3 else "")
    # where the attention looks (the paper: it moves along the sequence across ticks)
    n_pos, ent, moves = src.output(lab, r"attention entropy, as a fraction of uniform over (\d+) positions: ([\d.]+)"
                                        r" \(.*?\); the most attended position changes between consecutive ticks "
                                        r"in (\d+)% of cases")
    v["ctm_att_entropy"], v["ctm_att_positions"], v["ctm_att_moves"] = ent, n_pos, f"{moves}%"
    v["ctm_att_verdict"] = ("so this small model does not show the clear scan along the sequence that the paper "
                            "describes" if num(ent) > 0.5 and int(moves) < 50 else
                            "which may be a scan along the sequence, though the lab does not test it directly")
    pairs = re.findall(r"(?m)^  (\d+) ticks against (\d+): (better|worse|no clear difference)", src.output(
        lab, r"((?:  \d+ ticks against \d+: .*\n?)+)")[0])
    said = {"better": "were better than {a}, with no overlap between the seeds' ranges",
            "worse": "were worse than {a}, with no overlap between the seeds' ranges",
            "no clear difference": "made no clear difference against {a} (the seeds' ranges overlap)"}
    v["ctm_tick_pairs"] = "; ".join(f"{b} ticks {said[c].format(a=a)}" for b, a, c in pairs)
    helped = ticks_verdict.startswith("more ticks helped")
    counts = [int(t) for t in tick_list.split("/")]
    best_T = counts[max(range(len(counts)), key=tick_mean.__getitem__)]
    if helped:
        v["ctm_ticks_sentence"] = "That agrees with the paper's \"more ticks help\" at this small scale."
    else:
        v["ctm_ticks_sentence"] = (
            (f"The run shows \"more ticks help\" only up to {best_T} ticks. " if best_T != counts[0] else
             "So this run does not show the paper's \"more ticks help\". ")
            + "A longer chain of ticks is also a deeper computation to optimise, and every setting had the same "
              "number of steps, so the longest chains may need more training than this budget gives them.")
    return v


PAGES = {
    "book/beyond-attention.md": beyond,
    "book/11-state-spaces.md": state_spaces,
    "book/12-rwkv.md": rwkv,
    "book/13-hyena-and-linear-attention.md": hyena,
    "book/14-moe.md": moe,
    "book/15-ctm.md": ctm,
}
NOT_MEASURED = {
    "book/11-state-spaces.md": {
        "97%": "the Mamba paper's published accuracy threshold for S6 models on selective copying (its table 1)",
        "20%": "an exercise's solution: a relative error for a chosen step size, arithmetic",
    },
    "book/13-hyena-and-linear-attention.md": {
        "20%": "the Hyena paper's published saving in training compute at sequence length 2K",
    },
    "book/14-moe.md": {
        "2.788": "the DeepSeek-V3 report's published training cost, in millions of H800 GPU hours",
    },
    "book/15-ctm.md": {
        "95%": "the per-position accuracy the lab counts as solving a length: a chosen threshold",
    },
}
