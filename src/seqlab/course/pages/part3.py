"""Numbers quoted by the pages of Part III, sequence to sequence (see seqlab.course.pages)."""
from __future__ import annotations

import re

from ..sources import Sources, fmt, lower_word, num, pct, sci, split

S2S = "04-seq2seq-attention"
SA = "05-self-attention"
TF = "06-transformer"

BUCKETS = ["1-8", "9-12", "13-16", "17-20", "21+"]          # Lab 4's source-length buckets, in tokens


def _sig(x: float) -> str:
    """A measured time or size with about two significant digits, as the chapters print them."""
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _bucket_words(bucket: str) -> str:
    """A bucket as the chapter's table writes it: ``"9-12"`` -> ``"9–12"``, ``"21+"`` -> ``"21 or more"``."""
    return bucket.replace("-", "–").replace("+", " or more")


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def _vs_seeds(better: str, worse: str, ranges: dict, score: str = "greedy BLEU", show: bool = False) -> str:
    """Whether every seed of ``better`` scored above every seed of ``worse`` (Lab 6's BLEU ranges over seeds).

    ``show``: also give both ranges when every seed of ``better`` is above (the table shows only greedy ones)."""
    nice = {"noatt": "the model without attention", "att": "the attention model", "tf": "the Transformer"}
    (lo_b, hi_b), (lo_w, hi_w) = ranges[better], ranges[worse]
    if lo_b > hi_w:
        if show:
            return (f"and every seed of {nice[better]} ({fmt(lo_b, 2)} to {fmt(hi_b, 2)}) scored above every seed "
                    f"of {nice[worse]} ({fmt(lo_w, 2)} to {fmt(hi_w, 2)})")
        return f"and every seed of {nice[better]} scored above every seed of {nice[worse]}"
    level = abs(lo_b - hi_w) < 0.005
    return (f"but the seeds' ranges {'meet' if level else 'overlap'}: {nice[better]}'s {score} ranged from "
            f"{fmt(lo_b, 2)} to {fmt(hi_b, 2)}, its worst seed {'level with' if level else 'below'} "
            f"{nice[worse]}'s best ({fmt(hi_w, 2)})")


def _lab6_encoder_heads(src: Sources) -> tuple[list[tuple[float, ...]], float, float]:
    """Lab 6's summary of its encoder heads: [(previous, itself, next, entropy)], even share, even entropy."""
    table, even_share, even_entropy = src.output(
        TF, r"layer head  previous word  itself  next word  entropy\n((?:.*\n)+?)\(spreading evenly over a "
            r"sentence of \d+ tokens would give each word about ([\d.]+) and an entropy of about ([\d.]+)\)")
    rows = [tuple(float(v) for v in m) for m in
            re.findall(r"(?m)^\s+\d+\s+\d+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", table)]
    if not rows:
        raise ValueError(f"{TF}: no rows in the encoder-head summary")
    return rows, float(even_share), float(even_entropy)


# ----------------------------------------------------------------------------- chapter 4

def seq2seq(src: Sources) -> dict[str, str]:
    card = src.card(S2S)
    v = {"s2s_seeds": card["seeds"]}
    bleu = {(m, s): num(card[f"test BLEU {m}, {s}"]) for m in ("no attention", "attention")
            for s in ("greedy", "beam 5")}
    for (m, s), x in bleu.items():
        v[f"s2s_bleu_{'att' if m == 'attention' else 'noatt'}_{'greedy' if s == 'greedy' else 'beam'}"] = fmt(x, 2)
    for m in ("no attention", "attention"):
        lo, hi = card[f"test BLEU {m}, greedy, worst..best seed"].split("..")
        v[f"s2s_range_{'att' if m == 'attention' else 'noatt'}"] = f"{lo}–{hi}"
    val_no, val_att = num(card["val loss no attention"]), num(card["val loss attention"])
    v["s2s_val_noatt"], v["s2s_val_att"] = fmt(val_no), fmt(val_att)
    v["s2s_val_verdict"] = lower_word(val_att, val_no, "a lower", "a higher", "the same")
    val_wins, n_seeds = src.output(S2S, r"attention has the lower validation loss in (\d+) of (\d+) seeds")
    bleu_wins, _ = src.output(S2S, r"attention scores the higher greedy BLEU in (\d+) of (\d+) seeds")
    v["s2s_val_wins"], v["s2s_bleu_wins"] = f"{val_wins} of {n_seeds}", f"{bleu_wins} of {n_seeds}"
    better = [s for s in ("greedy", "beam 5") if bleu["attention", s] > bleu["no attention", s]]
    v["s2s_bleu_verdict"] = ("higher than the model without attention's, with both searches" if len(better) == 2
                             else f"higher than the model without attention's only with {better[0]} search"
                             if better else "no higher than the model without attention's")
    every_seed = val_wins == n_seeds and bleu_wins == n_seeds
    v["s2s_first_half"] = ("The committed runs reproduce the first half of the story, in every seed:"
                           if val_att < val_no and len(better) == 2 and every_seed else
                           "The committed runs reproduce the first half of the story on average:"
                           if val_att < val_no and len(better) == 2 else
                           "The committed runs reproduce the first half of the story only in part:")
    v["s2s_time_noatt"] = card["train time no attention"].split(" (")[0]
    v["s2s_time_att"] = card["train time attention"].split(" (")[0]
    p_no, steps, batch, passes = src.output(S2S, r"(?m)^seed 0  no attention\s+([\d,]+) parameters, (\d+) steps of "
                                                 r"(\d+) pairs \(([\d.]+) passes")
    p_att, = src.output(S2S, r"(?m)^seed 0  attention\s+([\d,]+) parameters")
    v.update(s2s_params_noatt=p_no, s2s_params_att=p_att, s2s_steps=steps, s2s_batch=batch, s2s_passes=passes)

    # the bottleneck, checked; attention, checked
    moved_no, moved_att = src.output(S2S, r"after changing every h_j: no attention (\S+), attention (\S+)")
    v["s2s_moved_noatt"] = "exactly zero" if num(moved_no) == 0 else f"up to {sci(moved_no)}"
    v["s2s_moved_att"] = fmt(num(moved_att), 2)
    fwd, grad = src.output(S2S, r"largest difference: outputs (\S+), gradients \(s, h, W, U, b, v\) (\S+)")
    v["s2s_attn_gap"] = sci(max(num(fwd), num(grad)))

    # BLEU by source length: mean of the seeds, the seeds' range and a bootstrap interval of the gap
    train_mean, train_max = src.output(S2S, r"training sentences: German ([\d.]+) tokens on average \(longest (\d+)\)")
    v["s2s_train_len"], v["s2s_train_longest"] = train_mean, train_max
    sizes, no, att, gaps, excludes_zero = [], [], [], [], []
    for i, b in enumerate(BUCKETS, 1):
        n, x, y, gap, g_lo, g_hi, c_lo, c_hi = src.output(
            S2S, rf"(?m)^{re.escape(b)}\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([+-][\d.]+)\s+([+-][\d.]+) \.\. "
                 rf"([+-][\d.]+)\s+\[([+-][\d.]+), ([+-][\d.]+)\]$")
        sizes.append(int(n)), no.append(float(x)), att.append(float(y)), gaps.append(float(gap))
        excludes_zero.append(float(c_lo) > 0 or float(c_hi) < 0)
        v[f"s2s_b{i}_n"], v[f"s2s_b{i}_noatt"], v[f"s2s_b{i}_att"], v[f"s2s_b{i}_gap"] = n, x, y, _signed(float(gap))
        v[f"s2s_b{i}_seeds"] = f"{_signed(float(g_lo))} to {_signed(float(g_hi))}"
        v[f"s2s_b{i}_ci"] = f"[{_signed(float(c_lo))}, {_signed(float(c_hi))}]"
    v["s2s_long_n"] = str(sizes[-1])
    v["s2s_long2_n"] = str(sizes[-2])
    if all(g > 0 for g in gaps):
        wins = "Attention scores higher in every length bucket"
    else:
        losing = [b for b, g in zip(BUCKETS, gaps) if g <= 0]
        wins = ("Attention does not score higher in every length bucket (not for "
                f"{', '.join(_bucket_words(b) for b in losing)} tokens)")
    clear = [b for b, e in zip(BUCKETS, excludes_zero) if not e]
    v["s2s_bucket_ci"] = (f"{wins}, and every bucket's interval lies above zero." if not clear else
                          f"{wins}; the interval of the gap includes zero for "
                          f"{', '.join(_bucket_words(b) for b in clear)} tokens.")
    (n_short, gap_short, n_long, gap_long) = src.output(
        S2S, r"BLEU gap: short sentences \(<= 12 tokens, (\d+)\) ([+-][\d.]+); long sentences \(>= 17 tokens, "
             r"(\d+)\) ([+-][\d.]+)")
    change, c_lo, c_hi = src.output(S2S, r"change of the gap from short to long: ([+-][\d.]+) BLEU, 95% interval "
                                         r"\[([+-][\d.]+), ([+-][\d.]+)\]")
    growth, = src.output(S2S, r"verdict: at this budget, attention's BLEU advantage (.+)")
    v.update(s2s_short_n=n_short, s2s_long_all_n=n_long, s2s_gap_short=_signed(float(gap_short)),
             s2s_gap_long=_signed(float(gap_long)), s2s_gap_change=_signed(float(change)),
             s2s_gap_change_ci=f"[{_signed(float(c_lo))}, {_signed(float(c_hi))}]", s2s_growth=growth.strip())
    grows = growth.strip() == "grows with length"
    lp_short, lp_long, lp_change, lp_lo, lp_hi = src.output(
        S2S, r"log-probability gap: short sentences ([+-][\d.]+), long sentences ([+-][\d.]+) nats per word; "
             r"change ([+-][\d.]+), 95% interval \[([+-][\d.]+), ([+-][\d.]+)\]")
    lp_verdict, = src.output(S2S, r"verdict: at this budget, attention's advantage in log-probability of the "
                                  r"reference (.+)")
    nats = lambda x: f"{float(x):+.3f}".replace("-", "−")                 # as the lab prints them
    v.update(s2s_lp_short=nats(lp_short), s2s_lp_long=nats(lp_long), s2s_lp_change=nats(lp_change),
             s2s_lp_ci=f"[{nats(lp_lo)}, {nats(lp_hi)}]", s2s_lp_verdict=lp_verdict.strip())
    grows_lp = lp_verdict.strip() == "grows with length"
    just = grows_lp and float(lp_lo) < 0.25 * float(lp_change)
    v["s2s_lp_margin"] = (", if only just (the interval's lower end is close to zero)" if just else "")
    # the same measure per bucket: does the attention model lose probability on long sentences too?
    lp_no, lp_att, lp_gap = [], [], []
    for b in BUCKETS:
        _, x, y, gap = src.output(S2S, rf"(?m)^{re.escape(b)}\s+(\d+)\s+(-[\d.]+)\s+(-[\d.]+)\s+([+-][\d.]+)"
                                       rf"\s+[+-][\d.]+ \.\. [+-][\d.]+$")
        lp_no.append(float(x)), lp_att.append(float(y)), lp_gap.append(float(gap))
    peak = max(range(len(BUCKETS) - 1), key=lambda i: lp_gap[i])
    v["s2s_lp_longest"] = (
        f" The growth is not steady: the gap in the longest bucket, {nats(lp_gap[-1])}, is smaller than in the "
        f"{_bucket_words(BUCKETS[peak])} bucket ({nats(lp_gap[peak])})." if lp_gap[-1] < lp_gap[peak] else "")
    drop_no, drop_att = max(no) - no[-1], max(att) - att[-1]
    both = ("Both models lose quality on the longest sentences. " if drop_no > 0 and drop_att > 0 else "")
    v["s2s_length_drop"] = both + (
        f"From its best bucket to the longest, the model without attention loses {fmt(drop_no, 2)} BLEU and the "
        f"attention model {fmt(drop_att, 2)}" + (": the fixed-vector model degrades more, the direction of the "
                                                 "published result." if drop_no > drop_att else
                                                 ": it is the attention model that loses more."))
    att_degrades = drop_att > 0 and lp_att[-1] < lp_att[0]
    v["s2s_strong_form"] = (
        "is not what we see: the attention model, too, loses BLEU and log-probability on the longest sentences"
        if att_degrades else "is closer to what we see: the attention model does not lose both BLEU and "
        "log-probability on the longest sentences")
    if grows:
        v["s2s_length_shown"] = "shown at this budget"
        v["s2s_length_half"] = "They also reproduce the second half, the signature of the bottleneck."
    elif grows_lp:
        v["s2s_length_shown"] = ("shown at this budget only weakly, in the models' probabilities, and not in BLEU"
                                 if just else "shown at this budget in the models' probabilities, but not in BLEU")
        v["s2s_length_half"] = ("They reproduce the second half, the signature of the bottleneck, only in part: "
                                + ("weakly, " if just else "") + "in the models' probabilities, not in BLEU.")
    else:
        v["s2s_length_shown"] = "not shown at this budget"
        v["s2s_length_half"] = "They do not reproduce the second half, the signature of the bottleneck."

    # greedy or beam (means of the seeds)
    lp = {}
    for m in ("no attention", "attention"):
        g, = src.output(S2S, rf"(?m)^{m}\s+greedy\s+[\d.]+\s+(-[\d.]+)")
        b, = src.output(S2S, rf"(?m)^{m}\s+beam 5\s+[\d.]+\s+(-[\d.]+)")
        lp[m] = (g, b)
    v["s2s_lp_att_greedy"], v["s2s_lp_att_beam"] = (x.replace("-", "−") for x in lp["attention"])
    gains = {m: bleu[m, "beam 5"] - bleu[m, "greedy"] for m in ("no attention", "attention")}
    v["s2s_beam_gain_noatt"], v["s2s_beam_gain_att"] = _signed(gains["no attention"]), _signed(gains["attention"])
    v["s2s_beam_quality"] = ("only a small change in quality" if max(abs(g) for g in gains.values()) < 1
                             else "a change in quality of at most "
                                  f"{fmt(max(abs(g) for g in gains.values()), 2)} BLEU")
    changed, total = src.output(S2S, r"beam search changed (\d+) of (\d+) translations")
    v["s2s_beam_changed"] = f"{changed} of the first seed's {int(total):,}"
    return v


# ----------------------------------------------------------------------------- chapter 5

def self_attention(src: Sources) -> dict[str, str]:
    card = src.card(SA)
    v = {}
    v["sa_lookup_weight"], = src.output(SA, r"at beta = 64 the best key gets weight ([\d.]+);")
    fwd, grad = (num(x) for x in re.findall(r"\d\.\de-\d+", card["queries/keys/values: seqlab vs torch (float64)"]))
    v["sa_qkv_fwd"], v["sa_qkv_grad"] = sci(fwd), sci(grad)

    # the scale
    rows = {}
    for d in (1, 4, 16, 64, 256, 1024):
        rows[d] = [float(x) for x in src.output(SA, rf"(?m)^\s+{d}" + r"\s+([\d.]+)" * 6 + "$")]
    ds = sorted(rows)
    std = [f"{rows[d][0]:.2f}" for d in ds]
    v["sa_std_list"] = ", ".join(std[:-1]) + " and " + std[-1]
    v["sa_std_widest"] = std[-1]
    scaled = sorted({f"{rows[d][1]:.2f}" for d in ds})
    v["sa_std_scaled"] = f"{scaled[0]} at every width" if len(scaled) == 1 else f"between {scaled[0]} and {scaled[-1]}"
    v["sa_maxw_first"], v["sa_maxw_widest"] = fmt(rows[ds[0]][2], 2), fmt(rows[ds[-1]][2], 2)
    v["sa_jac_first"], v["sa_jac_widest"] = fmt(rows[ds[0]][4], 2), fmt(rows[ds[-1]][4], 2)
    v["sa_maxw_scaled"] = f"{min(rows[d][3] for d in ds):.2f} and {max(rows[d][3] for d in ds):.2f}"
    v["sa_jac_scaled"] = f"{min(rows[d][5] for d in ds):.2f} and {max(rows[d][5] for d in ds):.2f}"

    # masks, heads, order
    masks = [num(x) for x in src.output(SA, r"\(outputs (\S+), gradients (\S+)\)\npadding \+ causal mask: .*"
                                            r"\(outputs (\S+), gradients (\S+)\)")]
    v["sa_mask_gap"] = sci(max(masks))
    mha = [num(x) for x in src.output(SA, "\n".join(
        rf"{h} heads?\s*, {c}: outputs and weights (\S+), gradients (\S+)"
        for h in (1, 4) for c in ("padding", r"causal \+ padding")))]
    v["sa_mha_fwd"], v["sa_mha_grad"] = sci(max(mha[0::2])), sci(max(mha[1::2]))
    equi, pe_gap = split(card["permutation: output gap without / with positions"])
    v["sa_equi_gap"], v["sa_pe_gap"] = sci(equi), pe_gap
    v["sa_pe_size"], = src.output(SA, r"\(outputs have size about ([\d.]+)\)")
    diag, = src.output(SA, r"along any diagonal i - j = m \(\|m\| <= 20\): (\S+)")
    v["sa_pe_diag"] = sci(diag)

    # previous-token copying
    base = num(card["previous-token accuracy, order-blind baseline"])
    acc = {p: num(card[f"previous-token accuracy, positions {p}"]) for p in ("none", "sinusoidal", "learned")}
    v["sa_baseline"] = fmt(base)
    v["sa_acc_none"], v["sa_acc_sin"], v["sa_acc_learned"] = (fmt(acc[p]) for p in ("none", "sinusoidal", "learned"))
    if abs(acc["none"] - base) < 0.02:                                 # the lab's own tolerance
        v["sa_none_verdict"] = "Without positions the model does exactly as well as counting allows, and no better."
    else:
        v["sa_none_verdict"] = (f"Without positions the model is {fmt(abs(acc['none'] - base))} "
                                f"{lower_word(acc['none'], base)} the order-blind baseline.")
    if min(acc["sinusoidal"], acc["learned"]) > 0.99:
        v["sa_pos_verdict"] = "With either encoding it solves the task"
    else:
        v["sa_pos_verdict"] = "With positions it does better, but it does not solve the task"
    times = [float(x) for x in src.output(SA, "".join(
        rf"positions = {p}\s*: test accuracy [\d.]+ after \d+ steps of \d+ sequences \(([\d.]+) s\)\n"
        for p in ("none", "sinusoidal", "learned")))]
    v["sa_task_time"] = f"{min(times):.0f}" if round(min(times)) == round(max(times)) else \
        f"{min(times):.0f} to {max(times):.0f}"
    v["sa_prev_none"], v["sa_prev_sin"], v["sa_prev_learned"], v["sa_prev_even"] = src.output(
        SA, r"position i - 1: none ([\d.]+), sinusoidal ([\d.]+), learned ([\d.]+) \(even spread: ([\d.]+)\)")

    # what Lab 6 finds in its translation model's encoder
    heads, even_share, _ = _lab6_encoder_heads(src)
    prev = [h[0] for h in heads]
    if max(prev) >= 0.5:
        v["sa_lab6_prev"] = (f"Lab 6 looks for such heads in the encoder of its small translation Transformer, and "
                             f"its clearest one puts {fmt(max(prev), 2)} of its weight on the previous word.")
    else:
        v["sa_lab6_prev"] = (f"Lab 6 looks for such heads in the encoder of its small translation Transformer and, "
                             f"at its `cpu` budget, does not find one: its encoder heads put between "
                             f"{fmt(min(prev), 2)} and {fmt(max(prev), 2)} of their weight on the previous word, "
                             f"against about {fmt(even_share, 2)} for an even spread.")

    # the price: n^2
    table_n = (128, 256, 512, 1024, 2048, 4096)
    bench = {}
    for n in table_n:
        bench[n] = [num(x) for x in src.output(SA, rf"(?m)^\s*{n}" + r"\s+([\d,.]+)" * 7 + "$")]
        st, tt, ratio, sm, tm, _, mat = bench[n]
        v[f"sa_b{n}_st"], v[f"sa_b{n}_tt"], v[f"sa_b{n}_ratio"] = _sig(st), _sig(tt), _sig(ratio)
        v[f"sa_b{n}_sm"], v[f"sa_b{n}_tm"], v[f"sa_b{n}_mat"] = _sig(sm), _sig(tm), f"{mat:g}"
    ratios = [bench[n][2] for n in table_n]
    if all(b > a for a, b in zip(ratios, ratios[1:])):
        v["sa_ratio_trend"] = (f"grows with *n*, from {_sig(ratios[0])} at *n* = {table_n[0]:,} to "
                               f"{_sig(ratios[-1])} at *n* = {table_n[-1]:,}")
    else:
        v["sa_ratio_trend"] = (f"does not grow steadily with *n*: it ranges from {_sig(min(ratios))} to "
                               f"{_sig(max(ratios))}")
    growth = dict(re.findall(r"(seqlab ms|torch ms|seqlab MiB|torch MiB) ([\d.]+)",
                             card["growth exponents (n^p, last doubling)"]))
    v["sa_grow_sm"], v["sa_grow_st"] = growth["seqlab MiB"], growth["seqlab ms"]
    v["sa_grow_tt"], v["sa_grow_tm"] = growth["torch ms"], growth["torch MiB"]
    v["sa_tm_words"] = "no faster than" if float(growth["torch MiB"]) <= 1.2 else "faster than"
    v["sa_time_words"] = ("roughly like" if all(1.5 <= float(growth[k]) <= 2.5 for k in ("seqlab ms", "torch ms"))
                          else "not simply like")
    times_ = split(card["attention at n = 4096: seqlab / torch time"])
    mem = split(card["attention at n = 4096: seqlab / torch peak memory"])
    v["sa_long_st"], v["sa_long_tt"] = (f"{num(x):,.0f} ms" for x in times_)
    v["sa_long_sm"], v["sa_long_tm"] = f"{num(mem[0]):,.0f} MiB", mem[1]
    v["sa_long_matrices"], = src.output(SA, r"at n = 4096: seqlab needs \d+ MiB, ([\d.]+) times one n x n matrix")
    return v


# ----------------------------------------------------------------------------- chapter 6

MODELS = {"noatt": "seq2seq, no attention", "att": "seq2seq, attention", "tf": "Transformer"}


def transformer(src: Sources) -> dict[str, str]:
    card = src.card(TF)
    v = {}
    # the layers against PyTorch
    enc = [num(x) for x in src.output(TF, r"post-LN: largest difference from torch: outputs (\S+), gradients (\S+)\n"
                                          r"pre-LN : largest difference from torch: outputs (\S+), gradients (\S+)")]
    dec = [num(x) for x in src.output(TF, r"post-LN decoder layer vs torch: outputs (\S+), gradients (\S+)\n"
                                          r"pre-LN  decoder layer vs torch: outputs (\S+), gradients (\S+)")]
    v["tf_enc_fwd"], v["tf_enc_grad"] = sci(max(enc[0::2])), sci(max(enc[1::2]))
    v["tf_dec_fwd"], v["tf_dec_grad"] = sci(max(dec[0::2])), sci(max(dec[1::2]))
    before, after = src.output(TF, r"the logits before it move by (\S+), from it on by (\S+)")
    v["tf_mask_before"] = "exactly unchanged" if num(before) == 0 else f"changed by up to {sci(before)}"
    v["tf_mask_after"] = fmt(num(after), 1)

    # parameters
    parts = {}
    for key, label in (("src", "source embedding"), ("tgt", r"target embedding \(= output layer\)"),
                       ("enc", "encoder layers"), ("dec", "decoder layers"), ("total", "total")):
        parts[key] = int(src.output(TF, rf"(?m)^  {label}\s+([\d,]+)$")[0].replace(",", ""))
        v[f"tf_params_{key}"] = f"{parts[key]:,}"
    v["tf_params_layers"] = f"{parts['enc'] + parts['dec']:,}"
    v["tf_params_emb"] = f"{parts['src'] + parts['tgt']:,}"
    v["tf_emb_share"] = pct((parts["src"] + parts["tgt"]) / parts["total"], 0)
    v["tf_vocab_en"], v["tf_ls_floor"] = src.output(TF, r"smoothed loss with V = ([\d,]+): the entropy of q = "
                                                        r"([\d.]+) nats")

    # three translators
    v["tf_steps"], v["tf_batch"], v["tf_passes"] = re.match(r"(\d+) steps of (\d+) pairs \(([\d.]+) passes\)",
                                                            card["training budget (each model)"]).groups()
    bleu = {}
    v["tf_seeds"] = card["seeds"]
    for k, name in MODELS.items():
        params, val = src.output(TF, rf"(?m)^{re.escape(name)} +([\d,]+) +\d+ s +[\d.]+ +([\d.]+) +[\d.]+ \(")
        v[f"tf_{k}_params"], v[f"tf_{k}_val"] = params, val
        lo, hi = card[f"test BLEU {name}, greedy, min..max of seeds"].split("..")
        v[f"tf_{k}_range"] = f"{lo}–{hi}"
        v[f"tf_{k}_time"] = card[f"train time {name}"]
        for s, key in (("greedy", "greedy"), ("beam 5", "beam")):
            bleu[k, key] = num(card[f"test BLEU {name}, {s}"])
            v[f"tf_{k}_{key}"] = fmt(bleu[k, key], 2)
        v[f"tf_{k}_beam_gain"] = _signed(bleu[k, "beam"] - bleu[k, "greedy"])
    ordered = {s: bleu["noatt", s] < bleu["att", s] < bleu["tf", s] for s in ("greedy", "beam")}
    held = {}
    for search in ("greedy", "beam 5"):
        _, k, n = src.output(TF, rf"(?m)^{search} *: no attention < attention < Transformer holds on the means: "
                                 rf"(True|False) \([\d., ]+\); in (\d+) of (\d+) seeds$")
        held[search] = (int(k), int(n))
    v["tf_order_seeds"] = (f"in every one of the {held['greedy'][1]} seeds with both searches"
                           if all(k == n for k, n in held.values()) else
                           f"in {held['greedy'][0]} of {held['greedy'][1]} seeds with greedy decoding and "
                           f"{held['beam 5'][0]} of {held['beam 5'][1]} with beam search")
    v["tf_order_intro"] = ("At equal data, the committed runs agree with the history this chapter tells."
                           if all(ordered.values()) else
                           "At equal data, the committed runs do not fully agree with the history this chapter tells.")
    if all(ordered.values()):
        v["tf_order_verdict"] = ("On average over the seeds, the ordering no attention < attention < Transformer "
                                 "holds with both searches.")
    else:
        held = [s for s, ok in ordered.items() if ok]
        v["tf_order_verdict"] = ("On average over the seeds, the published ordering no attention < attention < "
                                 "Transformer holds "
                                 + (f"only with {held[0]} search." if held else "with neither search."))
    p_tf, p_s2s = num(v["tf_tf_params"]), min(num(v["tf_att_params"]), num(v["tf_noatt_params"]))
    v["tf_params_word"] = lower_word(p_tf, p_s2s, "fewer", "more", "as many")
    v["tf_beam_verdict"] = ("Beam search raised the mean BLEU of all three models"
                            if all(bleu[k, "beam"] > bleu[k, "greedy"] for k in MODELS)
                            else "Beam search did not raise the mean BLEU of every model")
    v["tf_att_gap_greedy"] = _signed(bleu["att", "greedy"] - bleu["noatt", "greedy"])
    v["tf_att_gap_beam"] = _signed(bleu["att", "beam"] - bleu["noatt", "beam"])
    v["tf_tf_gap_greedy"] = _signed(bleu["tf", "greedy"] - bleu["att", "greedy"])
    v["tf_tf_gap_beam"] = _signed(bleu["tf", "beam"] - bleu["att", "beam"])
    ranges = {k: tuple(num(x) for x in card[f"test BLEU {name}, greedy, min..max of seeds"].split(".."))
              for k, name in MODELS.items()}
    beam_ranges = {k: tuple(float(x) for x in src.output(
        TF, rf"(?m)^{re.escape(name)} +[\d,]+ +\d+ s +[\d.]+ +[\d.]+ +[\d.]+ \([\d.]+-[\d.]+\) +[\d.]+ "
            rf"\(([\d.]+)-([\d.]+)\)")) for k, name in MODELS.items()}
    v["tf_tf_gap_noise"] = _vs_seeds("tf", "att", ranges)
    v["tf_tf_beam_noise"] = _vs_seeds("tf", "att", beam_ranges, "beam-search BLEU", show=True)
    greedy_apart = ranges["att"][0] > ranges["noatt"][1]
    beam_apart = beam_ranges["att"][0] > beam_ranges["noatt"][1]
    if greedy_apart and beam_apart:
        v["tf_att_gap_noise"] = ("and with both searches every seed of the attention model scored above every "
                                 "seed of the model without attention")
    else:
        v["tf_att_gap_noise"] = (_vs_seeds("att", "noatt", ranges) + " with greedy decoding; with a beam, "
                                 + _vs_seeds("att", "noatt", beam_ranges, "beam-search BLEU").split(" ", 1)[1])
    step_s = {k: num(card[f"train time {name}"]) for k, name in MODELS.items()}
    v["tf_step_cost"] = lower_word(step_s["tf"], step_s["att"], "costs less than", "costs more than",
                                   "costs as much as")
    lab4 = src.card(S2S)
    v["tf_lab4_steps"] = lab4["train time attention"].split("(")[1].split(" steps")[0]
    v["tf_lab4_att_greedy"] = fmt(num(lab4["test BLEU attention, greedy"]), 2)
    t = {k: num(card[f"train time {name}"]) for k, name in MODELS.items()}
    v["tf_time_verdict"] = ("took the longest to train" if t["tf"] > max(t["att"], t["noatt"])
                            else "did not take the longest to train")

    # the key-value cache
    speed = dict((steps, x) for x, steps in re.findall(r"([\d.]+)x at (\d+) steps", card["KV-cache speed-up"]))
    v["tf_kv_10"], v["tf_kv_20"], v["tf_kv_40"] = speed["10"], speed["20"], speed["40"]
    v["tf_kv_gap"] = sci(src.output(TF, r"largest logit difference (\S+)")[0])

    # the heads
    heads, even_share, even_entropy = _lab6_encoder_heads(src)
    v["tf_head_ent_lo"] = fmt(min(h[3] for h in heads), 2)
    v["tf_head_ent_hi"] = fmt(max(h[3] for h in heads), 2)
    v["tf_head_ent_even"] = fmt(even_entropy, 2)
    v["tf_head_prev_lo"] = fmt(min(h[0] for h in heads), 2)
    v["tf_head_prev_hi"] = fmt(max(h[0] for h in heads), 2)
    v["tf_head_even"] = fmt(even_share, 2)
    v["tf_prev_head"] = ("has a clear previous-word head" if max(h[0] for h in heads) >= 0.5
                         else "has no clear previous-word head")
    v.update(translation_curves(src))
    return v


def _lab6_curves(src: Sources) -> dict[str, list[tuple[int, float, float]]]:
    """Lab 6's validation curves, means of its seeds: {model: [(step, seconds of training, val CE)]}."""
    header, table = src.output(TF, r"with the seconds of training so far \(evaluations left out\)\n( *step.*)\n"
                                   r"((?: *\d+(?: +[\d.]+ at +\d+ s){3}\n?)+)")
    names = re.split(r" {2,}", header.strip())[1:]
    if names != list(MODELS.values()):
        raise ValueError(f"{TF}: the curve table's columns are {names}, expected {list(MODELS.values())}")
    curves = {name: [] for name in names}
    for line in table.strip("\n").splitlines():
        step = int(line.split()[0])
        for name, (val, secs) in zip(names, re.findall(r"([\d.]+) at +(\d+) s", line)):
            curves[name].append((step, float(secs), float(val)))
    return curves


def draw_translation_curves(root):
    """Part III's learning curves: Lab 6's three translators against steps and against seconds."""
    import matplotlib.pyplot as plt

    src = Sources(root)
    curves = _lab6_curves(src)
    seeds = src.card(TF)["seeds"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for (name, points), marker in zip(curves.items(), "so^"):
        steps, secs, val = zip(*points)
        axes[0].plot(steps, val, marker=marker, label=name)
        axes[1].plot(secs, val, marker=marker, label=name)
    axes[0].set_xlabel("training step (the same batches for all three)")
    axes[1].set_xlabel("seconds of training, one CPU thread (evaluations left out)")
    axes[0].set_ylabel("validation cross-entropy (nats per word)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Multi30k German to English, Lab 6's committed cpu run: mean of {seeds} seeds", fontsize=10)
    fig.tight_layout()
    return fig


def translation_curves(src: Sources) -> dict[str, str]:
    """What the figure shows at matched steps and at matched wall-clock time."""
    curves = _lab6_curves(src)
    att, tf = curves[MODELS["att"]], curves[MODELS["tf"]]
    t_att = att[-1][1]
    before = [p for p in tf if p[1] <= t_att]
    v = {"tf_curve_att_s": f"{t_att:.0f}", "tf_curve_att_val": fmt(att[-1][2]),
         "tf_curve_tf_s": f"{tf[-1][1]:.0f}", "tf_curve_tf_val": fmt(tf[-1][2])}
    below = [p for p in before if p[2] < att[-1][2]]
    if below:
        step, secs, val = below[0]
        v["tf_curve_equal_time"] = (f"the Transformer was already below that after {secs:.0f} s of training "
                                    f"(step {step}, at {fmt(val)})")
    elif before:
        step, secs, val = before[-1]
        v["tf_curve_equal_time"] = (
            f"after {secs:.0f} s of training (step {step}), its last evaluation by then, the Transformer was at "
            f"{fmt(val)}, " + lower_word(val, att[-1][2], "already below", "still above", "level with")
            + " the attention model's final loss")
    else:
        v["tf_curve_equal_time"] = "the Transformer had not been evaluated yet by then"
    return v


FIGURES = {"book/figures/translation-curves-cpu.svg": (f"notebooks/{TF}.ipynb", draw_translation_curves)}

PAGES = {
    "book/04-seq2seq-attention.md": seq2seq,
    "book/05-self-attention.md": self_attention,
    "book/06-transformer.md": transformer,
}
NOT_MEASURED = {
    "book/04-seq2seq-attention.md": {
        "65.80": "an exercise's solution: sacrebleu's score of two made-up sentences, arithmetic",
        "54.78": "an exercise's solution: sacrebleu's score of two made-up sentences, arithmetic",
        "95%": "the confidence level of the lab's bootstrap intervals, a choice, not a measurement",
    },
    "book/06-transformer.md": {
        "70%": "an exercise's solution: the share of the published base Transformer's parameters in its layers",
    },
}
