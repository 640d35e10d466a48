"""Numbers quoted by the pages of Part I, counting (see seqlab.course.pages)."""
from __future__ import annotations

import re

from ..sources import Sources, bits, fmt, num, split


def cpu_networks(src: Sources) -> dict[str, float]:
    """{label: validation bits per character} of every network the book trained at the ``cpu`` budget
    on the character split of Tiny Shakespeare, from the labs that report one and the grand comparison."""
    rnn, = src.output("02-rnn", r"char-RNN: ([\d.]+) bits per character on")
    found = {"Part II's char-RNN": num(rnn),
             "Part IV's GPT": bits(num(src.card("08-gpt")["val loss, whole split (nats/char)"]))}
    lab3 = src.card("03-lstm-gru")
    for cell in ("RNN", "LSTM", "GRU"):
        key = next(k for k in lab3 if k.startswith(f"val bpc {cell} ("))
        found[f"Part II's {cell} of about 100,000 parameters"] = num(lab3[key])
    for row in src.result("leaderboard-cpu")["rows"]:
        if not row["family"].startswith("n-gram"):
            found[f"the {row['target_params'] / 1e6:.1f} M {row['family']} of the grand comparison"] = row["val_bpc"]
    # the character models of the later labs, where their committed run is a `cpu` one
    if src.budget("10-scaling") == "cpu":
        losses = {k: num(v) for k, v in src.card("10-scaling").items() if k.startswith("val loss, N = ")}
        found["the best model of Part IV's scaling lab"] = bits(min(losses.values()))
    for lab in ("11-state-spaces", "12-rwkv", "13-hyena-and-linear-attention"):
        if src.budget(lab) != "cpu":
            continue
        for key, value in src.card(lab).items():
            m = re.match(r"char-LM (.+?)(?::|$)", key)
            if m and "GPT" not in m.group(1):          # the GPT baselines of those labs are Part IV's model
                printed = re.search(r"val ([\d.]+) nats/char", value)      # "params, val x nats/char, s"
                nats = num(printed.group(1)) if printed else num(split(value)[1])   # "params / val / s"
                found[f"Part VI's {m.group(1)}"] = bits(nats)
    return found


def ngrams(src: Sources) -> dict[str, str]:
    card = src.card("01-ngrams")
    kn_key = next(k for k in card if k.startswith("char bpc KN"))
    kn_order, kn_bpc = kn_key.split("n=")[1].rstrip(")"), num(card[kn_key])
    kn_ppl, = src.output("01-ngrams", r"best KN +n=\d+: [\d.]+ bpc \(perplexity ([\d.]+)\)")
    uniform, = src.output("01-ngrams", r"uniform model: ([\d.]+) bits per character")
    mle, = src.output("01-ngrams", r"uniform model: [\d.]+ bits per character\n(MLE, n=1: .*(?:\nMLE, n=\d+: .*)*)")
    first_inf = min(int(n) for n in re.findall(r"MLE, n=(\d+): inf bpc", mle))
    addk = {k: num(v) for k, v in card.items() if k.startswith("char bpc add-")}
    addk_key = min(addk, key=addk.get)
    addk_name, addk_n = re.match(r"char bpc (add-[\d.]+) \(n=(\d+)\)", addk_key).groups()
    kn_seconds, = src.output("01-ngrams", r"fitting and scoring 10 KN models took ([\d.]+) s")

    nets = cpu_networks(src)
    best_label = min(nets, key=nets.get)
    board = {k: v for k, v in nets.items() if "grand comparison" in k}
    board_label = min(board, key=board.get)
    board_name = board_label.removeprefix("the ").removesuffix(" of the grand comparison")
    n_board = len(board)
    gpt = nets["Part IV's GPT"]
    if nets[best_label] > kn_bpc:
        vs_networks = (
            "This Kneser–Ney model is the strongest character model of the whole book at the `cpu` budget: "
            f"no network the book trains at that budget beats it. The closest is {best_label}, "
            f"at {fmt(nets[best_label])} bits per character; the best of the {n_board} networks of the "
            f"grand comparison, a {board_name}, reached {fmt(board[board_label])}, and Part IV's GPT "
            f"{fmt(gpt)}.")
    else:
        vs_networks = (f"This Kneser–Ney model is not the strongest model of the `cpu`-budget book: {best_label} reached "
                       f"{fmt(nets[best_label])} bits per character, {fmt(kn_bpc - nets[best_label])} "
                       "below it.")
    kn_wins = nets[best_label] > kn_bpc
    train_chars, = src.output("01-ngrams", r"train ([\d,]+) / validation [\d,]+ characters")
    board_passes = src.result("leaderboard-cpu")["tokens_per_run"] / num(train_chars)
    return {
        "ng_intro": ("The lab's committed run agrees with the history above." if kn_bpc < addk[addk_key] else
                     "The lab's committed run agrees with the history above only in part."),
        "ng_overtaken": ("That is not shown at this budget" if kn_wins else
                         "At this budget it happens only narrowly"),
        "ng_board_passes": f"{board_passes:.2f}",
        "ng_uniform_bpc": uniform, "ng_mle_inf_from": str(first_inf),
        "ng_addk_name": addk_name, "ng_addk_n": addk_n, "ng_addk_bpc": fmt(addk[addk_key]),
        "ng_kn_order": kn_order, "ng_kn_bpc": fmt(kn_bpc), "ng_kn_ppl": kn_ppl,
        "ng_kn_vs_addk": (f"is {fmt(addk[addk_key] - kn_bpc, 2)} bits per character better than the best "
                          "add-*k* model, in line with" if kn_bpc < addk[addk_key] else
                          "is not better than the best add-*k* model, unlike"),
        "ng_kn_seconds": f"{kn_seconds} s",
        "ng_rnn_passes": src.output("02-rnn", r"characters = ([\d.]+) passes over the training text")[0],
        "ng_vs_networks": vs_networks,
    }


PAGES = {"book/01-ngrams.md": ngrams}
NOT_MEASURED = {
    "book/01-ngrams.md": {"0.001": "a value of k for the reader to try in an exercise, a hyper-parameter"},
}
