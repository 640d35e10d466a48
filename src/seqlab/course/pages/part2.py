"""Numbers quoted by the pages of Part II, recurrence (see seqlab.course.pages)."""
from __future__ import annotations

import re

from ..sources import Sources, bits, fmt, num, sci

CELLS = ("RNN", "LSTM", "GRU")


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip("\n").splitlines()]


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ----------------------------------------------------------------------------- Lab 3, shared by both pages

def adding(src: Sources) -> dict[int, dict[str, tuple[float, int]]]:
    """{T: {cell: (held-out accuracy, steps trained)}} of Lab 3's adding problem."""
    table, = src.output("03-lstm-gru", r"\n    T             RNN            LSTM             GRU\n"
                                       r"((?: *\d+(?: +[\d.]+ \( *\d+\)){3}\n)+)")
    out = {}
    for line in table.strip("\n").splitlines():
        t, *cells = re.match(r" *(\d+)" + r" +([\d.]+ \( *\d+\))" * 3, line).groups()
        out[int(t)] = {c: (num(v.split("(")[0]), int(v.split("(")[1].rstrip(")"))) for c, v in zip(CELLS, cells)}
    return out


def char_lms(src: Sources) -> dict[str, dict]:
    """Lab 3's character language models, means over its seeds:
    {cell: {hidden, params, bpc, lo, hi (the seeds' range), seconds, ahead (seeds ahead of the RNN), seeds}}."""
    ahead = src.output("03-lstm-gru", r"ahead of the RNN of the same seed: LSTM in (\d+) of (\d+) seeds, "
                                      r"GRU in (\d+) of (\d+)")
    out = {}
    for cell in CELLS:
        h, params, bpc, lo, hi, secs = src.output(
            "03-lstm-gru", rf"(?m)^{cell} +(\d+) +([\d,]+) +([\d.]+) +([\d.]+)\.\.([\d.]+) +([\d.]+) s +[\d,]+$")
        out[cell] = {"hidden": h, "params": params, "bpc": num(bpc), "lo": num(lo), "hi": num(hi),
                     "seconds": f"{num(secs):.0f}", "seeds": int(ahead[1]),
                     "ahead": {"LSTM": int(ahead[0]), "GRU": int(ahead[2])}.get(cell)}
    return out


def _gated_win_clearly(lms: dict) -> bool:
    """Both gated cells ahead of the RNN by at least 0.1 bits per character on average and in every seed."""
    return all(lms["RNN"]["bpc"] - lms[g]["bpc"] >= 0.1 and lms[g]["ahead"] == lms[g]["seeds"]
               for g in ("LSTM", "GRU"))


def lab3_kn(src: Sources) -> tuple[str, float]:
    card = src.card("03-lstm-gru")
    key = next(k for k in card if k.startswith("val bpc KN"))
    return key.split("n=")[1], num(card[key])


def leaderboard_recurrent(src: Sources) -> tuple[dict[tuple[str, float], dict], dict]:
    board = src.result("leaderboard-cpu")
    rows = {(r["family"], r["target_params"] / 1e6): r for r in board["rows"] if r["family"] in CELLS}
    return rows, board


# ----------------------------------------------------------------------------- book/02-rnn.md

def rnn(src: Sources) -> dict[str, str]:
    v = {}
    # the neural bigram
    gap, = src.output("02-rnn", r"neural minus counted MLE on the training text: ([+-][\d.]+) bits")
    neural_val, = src.output("02-rnn", r"neural \(gradient descent\) +[\d.]+ +([\d.]+)")
    kn2, = src.output("02-rnn", r"counted, Kneser-Ney +([\d.]+)")
    addk2, = src.output("02-rnn", r"counted, add-0\.01 +([\d.]+)")
    nv, kv, av = (round(num(x), 3) for x in (neural_val, kn2, addk2))
    v["rnn_bigram_train_gap"] = gap.lstrip("+")
    v["rnn_bigram_val"] = fmt(nv)
    v["rnn_bigram_kn"] = fmt(kv)
    v["rnn_bigram_addk"] = fmt(av)
    v["rnn_bigram_between"] = ("fell between those of" if min(kv, av) <= nv <= max(kv, av)
                               else "did not fall between those of")

    # gradients through time: per-step rate of the tanh cell for each spectral radius
    table, = src.output("02-rnn", r" rho  linear rate  tanh rate  mean tanh-slope\n((?: *[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+\n?)+)")
    rates = {float(r[0]): (float(r[1]), float(r[2]), float(r[3])) for r in _rows(table)}
    rate1 = rates[1.0][1]
    v["rnn_tanh_below"] = ("every tanh curve lies below its linear twin" if all(t < lin for lin, t, _ in rates.values())
                           else "the tanh curves do not all lie below their linear twins")
    edge = min(rates, key=lambda rho: abs(rates[rho][1] - 1))     # where the tanh cell is closest to level
    v["rnn_tanh_rate_rho1"] = fmt(rate1)
    v["rnn_tanh_rate_rho1_100"] = sci(rate1 ** 100)
    v["rnn_edge_rho"] = f"{edge:g}"
    v["rnn_edge_rate"] = fmt(rates[edge][1])
    v["rnn_edge_slope"] = fmt(rates[edge][2])

    # gradient clipping
    table, = src.output("02-rnn", r"mean loss, last 50 steps\n((?: *\d+ +(?:none|at 1) +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+\n)+)")
    runs = {}
    for r in _rows(table):
        seed, clip = int(r[0]), "none" if r[1] == "none" else "clip"
        vals = r[2:] if clip == "none" else r[3:]
        runs[(seed, clip)] = dict(zip(("median", "largest", "largest_loss", "final"), vals))
    s0, s0c = runs[(0, "none")], runs[(0, "clip")]
    v["rnn_clip_median"] = s0["median"]
    v["rnn_clip_largest"] = s0["largest"]
    v["rnn_clip_peak_loss"] = f"{num(s0['largest_loss']):.0f}"
    v["rnn_clip_final_none"] = s0["final"]
    v["rnn_clip_final_clip"] = s0c["final"]
    uniform, = src.output("02-rnn", r"a uniform guess costs ln V = ([\d.]+) nats per character")
    v["rnn_uniform_nats"] = uniform
    seeds = sorted({s for s, _ in runs})
    worse = [s for s in seeds if num(runs[(s, "none")]["final"]) > num(runs[(s, "clip")]["final"])]
    v["rnn_clip_verdict"] = (f"and every one of the {len(seeds)} unclipped runs ends with a higher loss than "
                             "its clipped twin" if len(worse) == len(seeds) else
                             f"and {len(worse)} of the {len(seeds)} unclipped runs end with a higher loss than "
                             "their clipped twins")

    # the char-RNN against Kneser-Ney
    card = src.card("02-rnn")
    rnn_bpc, = src.output("02-rnn", r"char-RNN: ([\d.]+) bits per character on")
    kn_n, kn_bpc = src.output("02-rnn", r"best Kneser-Ney: n=(\d+), ([\d.]+) bpc;")
    passes, = src.output("02-rnn", r"characters = ([\d.]+) passes over the training text")
    last = re.findall(r"step (\d+): train [\d.]+, val ([\d.]+)",
                      src.output("02-rnn", r"((?:step \d+: train [\d.]+, val [\d.]+\n)+)")[0])
    (s_prev, v_prev), (s_last, v_last) = last[-2], last[-1]
    r, k = num(rnn_bpc), num(kn_bpc)
    v["rnn_hidden"] = card["char-RNN hidden size"]
    v["rnn_params"] = card["char-RNN parameters"]
    v["rnn_train_s"] = card["char-RNN train time"]
    v["rnn_passes"] = passes
    v["rnn_val_bpc"] = fmt(r)
    v["rnn_kn_order"] = kn_n
    v["rnn_kn_bpc"] = fmt(k)
    v["rnn_vs_kn"] = (f"**counting still wins**, by {fmt(r - k)} bits per character" if r > k else
                      f"**the RNN wins**, by {fmt(k - r)} bits per character")
    v["rnn_val_falling"] = (f"its validation loss on the evaluation windows still fell from {v_prev} to "
                            f"{v_last} nats per character between steps {s_prev} and {s_last}"
                            if num(v_last) < num(v_prev) else
                            f"its validation loss on the evaluation windows had stopped falling "
                            f"({v_prev} at step {s_prev}, {v_last} at step {s_last})")

    # what Lab 3 shows about the gated cells
    add = adding(src)
    t_max = max(add)
    lms = char_lms(src)
    kn3_n, kn3 = lab3_kn(src)
    bpc = {c: lms[c]["bpc"] for c in CELLS}
    v["rnn_lab3_T"] = str(t_max)
    v["rnn_lab3_add"] = _and([f"{c} {fmt(add[t_max][c][0])}" for c in CELLS])
    gated_win = all(add[t_max][g][0] > add[t_max]["RNN"][0] for g in ("LSTM", "GRU"))
    v["rnn_lab3_add_verdict"] = ("the gated cells win clearly" if gated_win and
                                 min(add[t_max][g][0] for g in ("LSTM", "GRU")) - add[t_max]["RNN"][0] > 0.5
                                 else "the gated cells win" if gated_win else "the gated cells do not win")
    v["rnn_lab3_params"] = f"{round(num(lms['RNN']['params']), -3):,.0f}"
    v["rnn_lab3_lm"] = _and([f"{c} {fmt(bpc[c])}" for c in CELLS])
    v["rnn_lab3_kn"] = f"{fmt(kn3)} for the {kn3_n}-gram"
    parts = []
    for g in ("LSTM", "GRU"):
        d = bpc[g] - bpc["RNN"]
        parts.append(f"the {g} finished {fmt(abs(d))} bits per character "
                     + ("behind" if d > 0 else "ahead of" if d < 0 else "level with")
                     + (" the plain RNN" if g == "LSTM" else " it"))
    n_seeds = lms["RNN"]["seeds"]
    v["rnn_lab3_seeds"] = str(n_seeds)
    v["rnn_lab3_lm_verdict"] = (" and ".join(parts) + " on average; "
                                + _and([f"the {g} was ahead of the RNN in {lms[g]['ahead']} of {n_seeds} seeds"
                                        for g in ("LSTM", "GRU")]))
    v["rnn_lab3_lm_win"] = ("both beat the plain RNN clearly" if _gated_win_clearly(lms) else
                            "did not both beat the plain RNN clearly")
    v["rnn_lab3_behind_kn"] = ("every network is behind the Kneser–Ney model" if min(bpc.values()) > kn3
                               else "not every network is behind the Kneser–Ney model")
    return v


# ----------------------------------------------------------------------------- book/03-lstm-gru.md

def _jacobian_row(src: Sources, label: str) -> list[str]:
    """The row ``label`` of a gradient-versus-distance table of Lab 3 (k = 1, 5, 10, 25, 50)."""
    row, = src.output("03-lstm-gru", rf"(?m)^ +{re.escape(label)}((?: +\d\.\de[-+]\d\d){{5}})$")
    return row.split()


def lstm_gru(src: Sources) -> dict[str, str]:
    v = {}
    # gradient versus distance, 50 steps back
    for key, label in (("rnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU"), ("lstm_bias", "LSTM, forget bias +1")):
        v[f"gates_jac50_init_{key}"] = sci(_jacobian_row(src, label)[-1])
    for key, label in (("rnn", "RNN, trained"), ("lstm", "LSTM, trained"), ("gru", "GRU, trained")):
        v[f"gates_jac50_trained_{key}"] = sci(_jacobian_row(src, label)[-1])

    # the adding problem
    add = adding(src)
    lengths = sorted(add)
    t_max = lengths[-1]
    _, const_acc = src.output("03-lstm-gru", r"always answering 1 on the held-out set \(T = \d+\): "
                                               r"MSE ([\d.]+), accuracy ([\d.]+)")
    stop, = src.output("03-lstm-gru", r"\(\|error\| < [\d.]+\); in brackets, the steps trained "
                                      r"\(early stop at (\d+)%\)")
    v["gates_add_rnn"] = _and([f"{fmt(add[t]['RNN'][0])} at *T* = {t}" for t in lengths])
    v["gates_add_const"] = const_acc
    v["gates_add_T"] = str(t_max)
    passed = [g for g in ("LSTM", "GRU") if all(add[t][g][0] >= int(stop) / 100 for t in lengths)]
    v["gates_add_passed"] = (f"The LSTM and the GRU passed {stop}% at every length"
                             if len(passed) == 2 else
                             f"Only the {passed[0]} passed {stop}% at every length" if passed else
                             f"Neither gated cell passed {stop}% at every length")
    v["gates_add_lstm"] = fmt(add[t_max]["LSTM"][0])
    v["gates_add_gru"] = fmt(add[t_max]["GRU"][0])
    v["gates_add_lstm_steps"] = f"{add[t_max]['LSTM'][1]:,}"
    v["gates_add_gru_steps"] = f"{add[t_max]['GRU'][1]:,}"
    v["gates_add_rnn_T"] = fmt(add[t_max]["RNN"][0])

    # the character language models
    lms = char_lms(src)
    steps, batch, block, lr = src.output("03-lstm-gru", r"(\d+) steps of (\d+) x (\d+) characters each "
                                                        r"\(truncated BPTT\), lr ([\d.]+)")
    kn_n, kn = lab3_kn(src)
    bpc = {c: lms[c]["bpc"] for c in CELLS}
    for c in CELLS:
        v[f"gates_lm_{c.lower()}"] = fmt(bpc[c])
        v[f"gates_lm_h_{c.lower()}"] = lms[c]["hidden"]
    v["gates_lm_steps"] = f"{int(steps):,}"
    v["gates_lm_block"] = block
    v["gates_lm_kn"] = fmt(kn)
    v["gates_lm_kn_order"] = kn_n
    ranked = sorted(CELLS, key=bpc.get)
    spread = bpc[ranked[-1]] - bpc[ranked[0]]
    behind = min(bpc.values()) - kn
    v["gates_lm_order"] = f"{ranked[0]}, {ranked[1]}, {ranked[2]}"
    v["gates_lm_spread"] = fmt(spread)
    v["gates_lm_behind"] = (f"every cell is at least {fmt(behind)} bits per character behind the Kneser–Ney model"
                            if behind > 0 else "a cell beats the Kneser–Ney model")
    # characters seen: steps x batch x window, against the training split
    train_chars, = src.output("03-lstm-gru", r"train ([\d,]+) / validation [\d,]+")
    v["gates_lm_passes"] = f"{int(steps) * int(batch) * int(block) / num(train_chars):.1f}"
    v["gates_lm_lr"] = lr
    lstm_last = "LSTM" == ranked[-1]
    v["gates_lm_lstm_last"] = ("On average the LSTM even finished last" if lstm_last else
                               f"On average the {ranked[-1]} finished last")
    n_seeds = lms["RNN"]["seeds"]
    v["gates_lm_seeds"] = str(n_seeds)
    scatter = max(lms[c]["hi"] - lms[c]["lo"] for c in CELLS)
    v["gates_lm_scatter"] = fmt(scatter)
    for c in CELLS:
        v[f"gates_lm_range_{c.lower()}"] = f"{fmt(lms[c]['lo'])}–{fmt(lms[c]['hi'])}"
    v["gates_lm_ahead"] = _and([f"the {g} was ahead of the RNN in {lms[g]['ahead']} of {n_seeds} seeds"
                                for g in ("LSTM", "GRU")])
    v["gates_lm_vs_seeds"] = ("but larger than" if spread > scatter else "no larger than")
    orders = re.findall(r"seed \d+, best to worst: (.+)", src.output(
        "03-lstm-gru", r"((?:seed \d+, best to worst: .+\n?)+)")[0])
    v["gates_lm_stable"] = (
        "The order was the same in every seed, so at this size and this learning rate it is unlikely to be the "
        "luck of one run; it is still not a ranking of the cells in general" if len(set(orders)) == 1 else
        "The order changed from seed to seed, so it is not a ranking of the cells")

    # verdicts on the two claims of the chapter's history
    rnn_at_chance = abs(add[t_max]["RNN"][0] - num(const_acc)) < 0.05
    gated_solve = all(add[t_max][g][0] >= int(stop) / 100 for g in ("LSTM", "GRU"))
    v["gates_add_verdict"] = (
        "the plain RNN stays at the level of the constant answer while both gated cells solve the task"
        if rnn_at_chance and gated_solve else
        "the gated cells solve the task and the plain RNN does better than the constant answer"
        if gated_solve else "not both gated cells solve the task")
    gated_win_text = _gated_win_clearly(lms)
    v["gates_claims"] = ("supports the first claim clearly and does not show the second on text"
                         if gated_solve and not gated_win_text else
                         "supports both claims" if gated_solve else "does not clearly support either claim")
    v["gates_lm_win"] = ("The gated cells do not both win clearly here" if not gated_win_text
                         else "Both gated cells win clearly here")
    v["gates_lm_catch"] = ("none of the three catches the n-gram" if min(bpc.values()) > kn
                           else "a cell beats the n-gram")
    # how much the learning rate alone moved the LSTM in the grand comparison's sweep (bits per character)
    sweep = {r["lr"]: r["dev_loss"] for r in src.result("leaderboard-cpu")["sweep"] if r["family"] == "LSTM"}
    lr_effect = bits(sweep[num(lr)] - min(sweep.values())) if num(lr) in sweep else None
    v["gates_lm_noise"] = (
        f"the spread is smaller than what the learning rate alone changed for the LSTM in the grand "
        f"comparison's short sweep ({fmt(lr_effect, 2)} bits per character between {lr} and its best rate)"
        if lr_effect is not None and spread < lr_effect else
        "we have not measured how much a different learning rate would change it")

    # the grand comparison, with a learning rate chosen per family
    rows, board = leaderboard_recurrent(src)
    sizes = sorted({s for _, s in rows})
    for s in sizes:
        tag = "small" if s == sizes[0] else "large"
        v[f"gates_lb_size_{tag}"] = f"{s:.1f} M"
        for c in CELLS:
            v[f"gates_lb_{c.lower()}_{tag}"] = f"{fmt(rows[(c, s)]['val_bpc'])} ({rows[(c, s)]['lr']:g})"
    kn_row = next(r for r in board["rows"] if r["family"].startswith("n-gram"))
    v["gates_lb_kn"] = fmt(kn_row["val_bpc"])
    large = {c: rows[(c, sizes[-1])]["val_bpc"] for c in CELLS}
    small = {c: rows[(c, sizes[0])]["val_bpc"] for c in CELLS}
    gated_ahead_large = all(large[g] < large["RNN"] for g in ("LSTM", "GRU"))
    v["gates_lb_verdict_large"] = (
        f"at {sizes[-1]:.1f} M parameters both gated cells are ahead of the plain RNN, by "
        f"{fmt(large['RNN'] - max(large['LSTM'], large['GRU']), 2)} to "
        f"{fmt(large['RNN'] - min(large['LSTM'], large['GRU']), 2)} bits per character"
        if gated_ahead_large else
        f"even at {sizes[-1]:.1f} M parameters the gated cells are not both ahead of the plain RNN")
    order_small = sorted(CELLS, key=small.get)
    v["gates_lb_verdict_small"] = (f"at {sizes[0]:.1f} M the order is {', '.join(order_small)} (best first), "
                                   f"with the {order_small[1]} and the {order_small[2]} "
                                   f"{fmt(small[order_small[2]] - small[order_small[1]])} apart")
    best_lr = {c: rows[(c, sizes[0])]["lr"] for c in CELLS}
    v["gates_lb_lr_lstm"] = f"{best_lr['LSTM']:g}"
    others = sorted({f"{best_lr[c]:g}" for c in ("RNN", "GRU")})
    v["gates_lb_lr_others"] = " and ".join(others)
    lstm_lr, lab_lr = best_lr["LSTM"], num(lr)
    v["gates_lr_verdict"] = (f"{lstm_lr / lab_lr:g} times lower than the one the sweep chose for it" if lab_lr < lstm_lr
                             else f"{lab_lr / lstm_lr:g} times higher than the one the sweep chose for it"
                             if lab_lr > lstm_lr else "equal to the one the sweep chose for it")
    v["gates_lb_kn_order"] = str(kn_row["order"])
    beats_kn = min(list(large.values()) + list(small.values())) < kn_row["val_bpc"]
    v["gates_lb_summary"] = (
        ("So with tuned rates and more parameters the gated cells move ahead of the plain RNN, as the history "
         "says" if gated_ahead_large else
         "So even with tuned rates and more parameters the gated cells do not both move ahead of the plain RNN")
        + (", but at the `cpu` budget no recurrent network beats counting on this corpus" if not beats_kn else
           ", and a recurrent network beats counting on this corpus"))
    v["gates_lb_behind_kn"] = (f"none of the {len(rows)} recurrent runs reaches the n-gram" if not beats_kn
                               else "a recurrent run beats the n-gram")

    # the speed of a fused kernel
    bench, = src.output("03-lstm-gru", r"---  -+  -+  -+  -+  -+  -+\n((?: *\d+(?: +[\d,.]+){6}\n?)+)")
    ratio = {int(r[0]): r[3] for r in _rows(bench)}
    hs = sorted(ratio)
    v["gates_bench_h_small"] = str(hs[0])
    v["gates_bench_h_large"] = str(hs[-1])
    v["gates_bench_ratio_small"] = ratio[hs[0]]
    v["gates_bench_ratio_large"] = ratio[hs[-1]]
    v["gates_bench_trend"] = ("broadly shrank" if num(ratio[hs[-1]]) < num(ratio[hs[0]]) else "did not shrink")
    return v


PAGES = {"book/02-rnn.md": rnn, "book/03-lstm-gru.md": lstm_gru}
NOT_MEASURED = {
    "book/02-rnn.md": {
        "90%": "the share of the text the course uses for training, a choice of the split",
        "10%": "the share of the text the course holds out for validation, a choice of the split",
        "0.01": "the pseudo-count k of the add-k bigram, a hyper-parameter",
        "1.09": "arithmetic in an exercise's solution (an off-diagonal entry of a matrix power)",
    },
    "book/03-lstm-gru.md": {
        "95%": "the held-out accuracy at which the lab stops training, a chosen threshold",
    },
}
