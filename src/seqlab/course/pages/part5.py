"""Numbers quoted by the pages of Part V, the hardware lottery (see seqlab.course.pages).

Everything comes from the committed run of Lab 16 (``notebooks/16-hardware-lottery.ipynb``): its run
card and the tables its cells print. The lab's decision guide (its section 7) is rendered as Markdown,
which :class:`~seqlab.course.numbers.Sources` does not read, so :func:`lottery` recomputes each verdict
from the printed tables with the lab's own rules (a 10% margin for "faster" and "larger", a factor of
1.5 for "grows") and checks its tally against the run card's, so that the two cannot drift apart.
"""
from __future__ import annotations

from ..sources import Sources, lower_word, num, pct, split

LAB = "16-hardware-lottery"
MARGIN = 1.1          # the lab's MARGIN: "faster", "larger" by more than 10%
GROWS = 1.5           # the lab's "flat": within a factor of 1.5 from the shortest to the longest prefix


def _rows(block: str) -> list[list[str]]:
    """The data rows of a table printed by ``seqlab.bench.format_table`` (header and rule left out)."""
    lines = [line.split() for line in block.strip("\n").splitlines()]
    return [cells for cells in lines if cells and cells[0].replace(",", "").isdigit()]


def _verdict(flags: list[bool], labels: list[str]) -> str:
    """The lab's verdict words for a claim checked at several settings."""
    if all(flags):
        return "held"
    if not any(flags):
        return "did not hold"
    return "held only at " + ", ".join(label for flag, label in zip(flags, labels) if flag)


def _ms(x: float) -> str:
    return f"{x:,.0f} ms" if x >= 100 else f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def lottery(src: Sources) -> dict[str, str]:
    card = src.card(LAB)
    n_lstm, n_gpt = split(card["parameters LSTM / GPT"])
    used, offered = src.output(LAB, r"CPU threads used (\d+) of (\d+)")
    gpu_keys = [k for k in card if k.startswith("GPT/LSTM tok/s vs T") and "CPU" not in k]

    # ---- training: the two sweeps the lab printed (cell 14)
    by_len, by_batch = src.output(
        LAB, r"(?s)against the sequence length T:\n(.*?)\n\nagainst the batch size B:\n(.*?)(?:\n\n|\Z)")

    def train_row(cells):
        T, B, l_tok, g_tok, ratio, l_util, g_util, _, _, l_mib, g_mib = cells
        return {"T": int(T), "B": int(B), "LSTM tok/s": num(l_tok), "GPT tok/s": num(g_tok), "ratio": num(ratio),
                "LSTM util": num(l_util) / 100, "GPT util": num(g_util) / 100, "LSTM MiB": num(l_mib),
                "GPT MiB": num(g_mib)}

    rl, rb = [train_row(c) for c in _rows(by_len)], [train_row(c) for c in _rows(by_batch)]
    rr = rl + [r for r in rb if (r["T"], r["B"]) not in {(x["T"], x["B"]) for x in rl}]
    lbl = [f"T={r['T']}, B={r['B']}" for r in rr]
    ratios = [r["ratio"] for r in rr]

    # ---- the two halves of an LSTM layer, the CPU's roof, and the data sheets' (cells 9, 12, 25)
    one, T_chain, many = src.output(LAB, r"one product ([\d,.]+) GFLOP/s; (\d+) chained products ([\d,.]+) GFLOP/s")
    rel = num(many) / num(one)
    chain_vs_one = ("as fast as" if 1 / MARGIN <= rel <= MARGIN else
                    f"{1 / rel:.1f} times slower than" if rel < 1 else f"{rel:.1f} times faster than")
    bw, ridge = src.output(LAB, r"copy bandwidth ([\d.]+) GB/s; ridge point ([\d.]+) FLOP/byte")
    _, _, bfix, cpu_full = src.output(
        LAB, r"this CPU, 1 thread \(measured\): the LSTM's recurrent product can reach ([\d.]+%) of peak at B = 1, "
             r"([\d.]+%) at B = (\d+); the full peak from B = (\d+)")
    _, h200_bfix, h200_blast, blast = src.output(
        LAB, r"NVIDIA H200 \(data sheet, bf16\): the LSTM's recurrent product can reach ([\d.]+%) of peak at B = 1, "
             r"([\d.]+%) at B = \d+; still (\d+%) at B = (\d+)")
    flops_T, flops_lstm, flops_gpt, flops_att = src.output(
        LAB, r"per token at T = (\d+): LSTM ([\d,]+) FLOPs, GPT ([\d,]+) FLOPs \(of which attention ([\d,]+)\)")
    gain_lstm, gain_gpt = (num(x) for x in split(card[f"speed-up 1 -> {offered} threads LSTM / GPT"]))

    # ---- streaming (cell 27) and the bytes held (cell 28)
    stream, = src.output(LAB, r"(?s)GPT prefill ms\n-[- ]+\n(.*?)\n\n")
    st = [dict(zip(("P", "LSTM", "cached", "nocache", "LSTM prefill", "GPT prefill"), map(num, c))) for c in _rows(stream)]
    held, = src.output(LAB, r"(?s)no cache KiB\n-[- ]+\n(.*?)\n\n")
    kib = {int(c[0]): (num(c[1]), num(c[2])) for c in _rows(held)}
    P_last, state_bytes, kv_bytes, kv_ratio, _, _, crossing = src.output(
        LAB, r"held at P = ([\d,]+): LSTM state ([\d,]+) bytes, KV cache ([\d,]+) bytes \(([\d,]+)x\); the cache grows "
             r"by ([\d,]+) bytes per token and passes the GPT's own weights \(([\d,]+) bytes without the position "
             r"table\) at P = ([\d,]+)")
    first, last = st[0], st[-1]
    Ps = [f"P={int(r['P'])}" for r in st]
    growth = {k: last[k] / first[k] for k in ("LSTM", "cached", "nocache")}

    # ---- the decision guide, recomputed with the lab's rules
    best = max(rl, key=lambda r: r["ratio"])
    fastest = max(rl, key=lambda r: r["GPT tok/s"])
    eroded, slowed = rl[-1]["ratio"] * MARGIN < best["ratio"], rl[-1]["GPT tok/s"] * MARGIN < fastest["GPT tok/s"]
    b_gain = {m: rb[-1][f"{m} tok/s"] / rb[0][f"{m} tok/s"] for m in ("LSTM", "GPT")}
    flat, grows = growth["LSTM"] < GROWS, growth["cached"] >= GROWS
    v = {
        "H1": _verdict([x > MARGIN for x in ratios], lbl),
        "H2gpu": "not measured",                          # a run with GPU rows stops below
        "H2cpu": "held" if gain_gpt > MARGIN * gain_lstm else "did not hold",
        "H3": _verdict([r["GPT util"] > MARGIN * r["LSTM util"] for r in rr], lbl),
        "H4": "held" if b_gain["LSTM"] > MARGIN * b_gain["GPT"] else "did not hold",
        "H5": ("held" if eroded and slowed else
               "held only in the ratio: the LSTM sped up, the GPT did not slow down" if eroded else "did not hold"),
        "H6": _verdict([r["LSTM MiB"] * MARGIN < r["GPT MiB"] for r in rl], [f"T={r['T']}" for r in rl]),
        "H7": ("held" if flat and grows else "did not hold" if not flat and not grows else
               "held only for the LSTM (flat); the cached GPT did not grow" if flat else
               "held only for the GPT (grows); the LSTM did not stay flat"),
        "H8": _verdict([r["LSTM"] * MARGIN < r["cached"] for r in st], Ps),
        "H9": _verdict([kib[int(r["P"])][0] < kib[int(r["P"])][1] for r in st], Ps),
        "H10": "held" if growth["nocache"] >= GROWS else "did not hold",
        "H11": _verdict([r["GPT prefill"] * MARGIN < r["LSTM prefill"] for r in st], Ps),
    }
    if gpu_keys:
        raise ValueError(f"{LAB} now has GPU rows ({gpu_keys}): quote them in seqlab.course.pages.part5 and "
                         "book/hardware-lottery.md, which describe a CPU-only run")
    tally = [sum(x == "held" for x in v.values()), sum(x == "did not hold" for x in v.values()),
             sum(x.startswith("held only") for x in v.values()), sum(x.startswith("not measured") for x in v.values())]
    printed = [int(x) for x in split(card["verdicts held / did not / held only / not measured"])]
    if tally != printed:
        raise ValueError(f"{LAB}: the verdicts recomputed from its tables ({tally}) differ from its run card's "
                         f"({printed}); update seqlab.course.pages.part5 to the lab's rules")

    # ---- sentences
    lo, hi = min(ratios), max(ratios)
    all_slower = hi < 1
    level = [label for label, x in zip(lbl, ratios) if x >= 1 / MARGIN]     # within the margin: level
    if all_slower and not level:
        cpu_train = (f"On the book's CPU run the gap was reversed at every length and batch: the GPT trained at "
                     f"{lo:.2f} to {hi:.2f} times the LSTM's tokens per second.")
    elif all_slower:
        cpu_train = (f"On the book's CPU run the GPT was never faster than the LSTM: it trained at {lo:.2f} to "
                     f"{hi:.2f} times the LSTM's tokens per second, level with it (within the 10% margin) only at "
                     f"{', '.join(level)}.")
    else:
        cpu_train = (f"On the book's CPU run the GPT trained at {lo:.2f} to {hi:.2f} times the LSTM's tokens per "
                     f"second, depending on the length and the batch.")
    long_t = (f"On the book's CPU run, the GPT's speed relative to the LSTM went from {rl[0]['ratio']:.2f} at "
              f"T = {rl[0]['T']} to {rl[-1]['ratio']:.2f} at T = {rl[-1]['T']}, and the GPT's own tokens per second at "
              f"T = {rl[-1]['T']} were {rl[-1]['GPT tok/s'] / fastest['GPT tok/s']:.2f} of its best.")
    faster_at = ("at every prefix measured" if v["H8"] == "held" else "at no prefix measured"
                 if v["H8"] == "did not hold" else v["H8"].replace("held only at", "only at"))
    stream_s = (f"On the book's CPU run the LSTM's state stayed at {_int(state_bytes):,} bytes while the cache grew to "
                f"{_int(kv_bytes):,} bytes at {_int(P_last):,} tokens, and the LSTM's next token was faster than the "
                f"cached GPT's {faster_at}.")
    prefill_s = (f"On one CPU thread the GPT read a prompt faster than the LSTM {v['H11'].replace('held only at ', 'only at ')}"
                 if v["H11"].startswith("held only") else
                 "On one CPU thread the GPT read every prompt faster than the LSTM" if v["H11"] == "held" else
                 "On one CPU thread the GPT read no prompt faster than the LSTM")
    prefill_s += (f"; at {int(last['P']):,} tokens it took {_ms(last['GPT prefill'])} against the LSTM's "
                  f"{_ms(last['LSTM prefill'])}.")

    chain_free = rel >= 1 / MARGIN
    chain_s = (f"at a batch of {bfix}, {T_chain} chained recurrent products ran at {many} GFLOP/s, {chain_vs_one} one "
               f"product of the same FLOPs ({one} GFLOP/s): "
               + ("on this CPU the chain cost nothing extra per FLOP." if chain_free else
                  "on this CPU the chain did cost extra per FLOP."))
    if v["H1"] == "did not hold":
        summary = ("What the CPU run shows is the other side of the same argument: without parallel hardware to fill, "
                   f"the Transformer had no advantage. The GPT trained at only {lo:.2f} to {hi:.2f} times the LSTM's "
                   "speed")
        why = "Why the LSTM was faster here."
    elif v["H1"] == "held":
        summary = f"Even on the CPU the GPT trained faster, at {lo:.2f} to {hi:.2f} times the LSTM's speed"
        why = "What set the speeds here."
    else:
        summary = f"On the CPU the GPT trained faster only at {v['H1'][len('held only at '):]}"
        why = "What set the speeds here."
    thread_rel = gain_gpt / gain_lstm
    summary += (", and a second CPU thread sped the two up "
                + ("about equally" if 1 / MARGIN <= thread_rel <= MARGIN else
                   "the GPT more" if thread_rel > 1 else "the LSTM more")
                + f" (LSTM ×{gain_lstm:.2f}, GPT ×{gain_gpt:.2f}).")
    less_util = sum(r["GPT util"] < r["LSTM util"] for r in rr)
    work = (f"The GPT also does {lower_word(num(flops_gpt), num(flops_lstm), 'less', 'more', 'the same')} work per "
            f"token than the LSTM at the same parameter count ({flops_gpt} against {flops_lstm} FLOPs at "
            f"T = {flops_T}, of which {flops_att} are attention's), and that extra work grows with the length (H5). "
            f"It used a smaller share of the CPU's peak than the LSTM at {less_util} of the {len(rr)} settings "
            "measured (H3).")
    streaming = ["H7", "H8", "H9", "H10"]
    n_held = sum(v[h] == "held" for h in streaming)
    stream_sum = ("The streaming claims held on the CPU (H7 to H10)" if n_held == len(streaming) else
                  f"Of the streaming claims (H7 to H10), {n_held} of {len(streaming)} held on the CPU")
    stream_sum += (f": the LSTM's state has a fixed size ({_int(state_bytes):,} bytes), the cache grows with every "
                   f"token, and the LSTM's next token was faster than the cached GPT's "
                   + faster_at + ". Prefill (H11) "
                   + (v["H11"].replace("held only at", "held only at one length,") if v["H11"].count("P=") == 1
                      else v["H11"]) + ".")

    evidence = {                      # what the run measured, per claim of the lab's decision guide
        "H1": f"GPT tokens/s ÷ LSTM tokens/s: {lo:.2f} to {hi:.2f}",
        "H2gpu": "no GPU in the run, none committed",
        "H2cpu": f"speed-up from 1 to {offered} threads: LSTM ×{gain_lstm:.2f}, GPT ×{gain_gpt:.2f}",
        "H3": f"share of the CPU's practical peak: LSTM {pct(min(r['LSTM util'] for r in rr))} to "
               f"{pct(max(r['LSTM util'] for r in rr))}, GPT {pct(min(r['GPT util'] for r in rr))} to "
               f"{pct(max(r['GPT util'] for r in rr))}",
        "H4": f"tokens/s from B = {rb[0]['B']} to {rb[-1]['B']}: LSTM ×{b_gain['LSTM']:.1f}, GPT ×{b_gain['GPT']:.1f}",
        "H5": f"GPT tokens/s ÷ LSTM tokens/s: {rl[0]['ratio']:.2f} at T = {rl[0]['T']}, {rl[-1]['ratio']:.2f} at "
               f"T = {rl[-1]['T']}; the GPT's own tokens/s at T = {rl[-1]['T']}: "
               f"{rl[-1]['GPT tok/s'] / fastest['GPT tok/s']:.2f} of its best",
        "H6": f"peak MiB of a step at T = {rl[-1]['T']}: LSTM {rl[-1]['LSTM MiB']:,.0f}, GPT {rl[-1]['GPT MiB']:,.0f}",
        "H7": f"from P = {int(first['P'])} to {int(last['P']):,}: LSTM {_ms(first['LSTM'])} → {_ms(last['LSTM'])}, "
               f"cached GPT {_ms(first['cached'])} → {_ms(last['cached'])}",
        "H8": f"at P = {int(first['P'])}: {_ms(first['LSTM'])} against {_ms(first['cached'])}; at P = {int(last['P']):,}: "
               f"{_ms(last['LSTM'])} against {_ms(last['cached'])}",
        "H9": f"at P = {int(last['P']):,}: {_int(state_bytes):,} bytes against {_int(kv_bytes):,} (×{kv_ratio})",
        "H10": f"from P = {int(first['P'])} to {int(last['P']):,}: {_ms(first['nocache'])} → {_ms(last['nocache'])} per token",
        "H11": f"at P = {int(last['P']):,}: GPT {_ms(last['GPT prefill'])}, LSTM {_ms(last['LSTM prefill'])}",
    }
    cells = {f"hw_ev_{k.lower()}": e for k, e in evidence.items()}
    cells.update({f"hw_v_{k.lower()}": f"**{x}**" for k, x in v.items()})

    return {
        "hw_params_lstm": n_lstm, "hw_params_gpt": n_gpt,
        "hw_threads": f"{'one thread' if used == '1' else used + ' threads'} of a CPU that offers {offered}",
        "hw_cpu_peak": card["CPU practical peak (1 thread)"], "hw_cpu_bw": f"{bw} GB/s", "hw_ridge": ridge,
        "hw_cpu_full_b": cpu_full,
        "hw_chain_T": T_chain, "hw_chain_vs_one": chain_vs_one,
        "hw_h200_bfix": h200_bfix, "hw_bfix": bfix, "hw_h200_blast": h200_blast, "hw_blast": blast,
        "hw_flops_T": flops_T, "hw_flops_lstm": flops_lstm, "hw_flops_gpt": flops_gpt, "hw_flops_att": flops_att,
        "hw_gpu_note": "Not measured here: the book's run of the lab has no GPU rows yet.",
        "hw_cpu_train": cpu_train, "hw_long": long_t, "hw_stream": stream_s, "hw_prefill": prefill_s,
        "hw_latency": (f"On the book's CPU run the LSTM's next token took {_ms(first['LSTM'])} against the cached GPT's "
                       f"{_ms(first['cached'])} after {int(first['P'])} tokens; the lab does not count kernels, so the "
                       "reason given here is not measured."),
        **cells,
        "hw_chain_s": chain_s, "hw_cpu_summary": summary, "hw_why": why, "hw_work": work,
        "hw_stream_summary": stream_sum,
        "hw_crossing": crossing,
    }


PAGES = {"book/hardware-lottery.md": lottery}
NOT_MEASURED = {
    "book/hardware-lottery.md": {
        "46%": "the MFU that the PaLM authors published for their 540-billion-parameter model on TPU v4",
        "18%": "an exercise's solution: attention's share of GPT-2 small's FLOPs per token, arithmetic",
        "25%": "an exercise's solution: an MFU computed from made-up throughput, arithmetic",
        "10%": "the margin the lab chose for 'faster' and 'larger' (its MARGIN = 1.1), a setting",
    },
}
