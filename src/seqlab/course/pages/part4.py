"""Numbers quoted by the pages of Part IV, pre-training (see seqlab.course.pages)."""
from __future__ import annotations

import math
import re

from ..sources import Sources, bits, fmt, lower_word, num, sci, split
from ..sources import pct


GPU_PUBLISHED = 1.4697      # nanoGPT's published val loss of its gpu configuration (nats/char)
NANOGPT_LR = 1e-3           # the learning rate of Lab 8's recipe (nanoGPT's), a setting of the lab


def _curves_gpt(src: Sources, card: dict, lab_bpc: float) -> str:
    """How the GPT of the learning curves (results/curves-cpu.json) differs from the lab's run."""
    from ...curves import summary

    results = src.result("curves-cpu")
    runs = [r for r in results["runs"] if r["family"] == "GPT"]
    if not runs:
        return "The curves' record has no GPT run yet."
    s = summary(results)["GPT"]
    proto = results["protocol"]
    lab_steps, lab_batch, lab_ctx = (int(x) for x in re.search(
        r"context (\d+), batch (\d+), (\d+) steps", card["configuration"]).group(3, 2, 1))
    same_model = s["params"] == int(num(card["parameters"]))
    same_length = (proto["steps"], proto["batch_size"], proto["block_size"]) == (lab_steps, lab_batch, lab_ctx)
    curves_bpc = bits(s["final_mean"])
    what = ("the lab's model (the same parameters, steps, batch and context)" if same_model and same_length else
            "a model of the lab's size" if same_model else "a GPT of about the lab's size")
    lr = s["lr"]
    mean = ", the mean of its seeds" if s["seeds"] > 1 else ""
    if lr == NANOGPT_LR:
        return (f"The curves' GPT is {what}, at the lab's learning rate; it ends at {curves_bpc:.3f} bits per "
                f"character{mean}, against the lab's {lab_bpc:.3f}.")
    head = (f"The curves' GPT is {what}; the main difference is its learning rate, {lr:g} (its sweep's choice) "
            f"instead of nanoGPT's {NANOGPT_LR:g}. ")
    if curves_bpc < lab_bpc:
        return head + (f"With it the GPT ends lower than the lab's run above ({curves_bpc:.3f} against "
                       f"{lab_bpc:.3f} bits per character{mean}): for a run this short, the larger rate learns faster.")
    return head + f"It ends at {curves_bpc:.3f} bits per character{mean}, against the lab's {lab_bpc:.3f}."


def gpt(src: Sources) -> dict[str, str]:
    card = src.card("08-gpt")
    val, train = num(card["val loss, whole split (nats/char)"]), num(card["train loss, whole split (nats/char)"])
    published = num(card["published (nanoGPT, 20-batch estimate)"])
    std = num(card["20-batch estimate: std"])
    lo, hi = src.output("08-gpt", r"95% of them fall in \[([\d.]+), ([\d.]+)\]")
    seconds, = src.output("08-gpt", r"characters in (\d+) s on ")
    f32, f64 = split(card["vs transformers GPT-2 (float32 / float64)"])
    kn = src.card("01-ngrams")
    kn_key = next(k for k in kn if k.startswith("char bpc KN"))
    kn_bpc, gpt_bpc = num(kn[kn_key]), bits(val)
    # how often a 20-batch estimate of our model is as low as the published figure (normal approximation)
    p_low = 0.5 * math.erfc((val - published) / (std * math.sqrt(2)))
    if gpt_bpc > kn_bpc:
        verdict = (f"The n-gram model is still ahead, by {gpt_bpc - kn_bpc:.2f} bits per character: a "
                   "0.8-million-parameter Transformer trained for a few minutes on a CPU does not yet beat "
                   "counting. Why, and how much longer it would have to train, is the subject of "
                   "[what our runs show](gpt-runs-show) below.")
    else:
        verdict = (f"The Transformer is ahead of the n-gram model by {kn_bpc - gpt_bpc:.2f} bits per character.")
    return {
        "gpt_hf_f32": sci(f32), "gpt_hf_f64": sci(f64),
        "gpt_val": fmt(val), "gpt_train": fmt(train), "gpt_val_bpc": fmt(gpt_bpc),
        "gpt_published": fmt(published, 2), "gpt_train_s": f"{int(seconds)} s",
        "gpt_est_std": fmt(std), "gpt_est_lo": lo, "gpt_est_hi": hi,
        "gpt_est_as_low": f"about one time in {round(1 / p_low)}" if p_low > 0 else "never",
        "gpt_gap_published": fmt(val - published, 2), "gpt_gap_train": fmt(val - train, 2),
        "gpt_kv_speedup": card["KV cache vs recompute"].split("x")[0],
        "kn_order": kn_key.split("n=")[1].rstrip(")"), "kn_bpc": fmt(kn_bpc),
        "gpt_vs_kn": verdict,
        "gpt_vs_kn_word": lower_word(gpt_bpc, kn_bpc, "below", "above"),
        "kn_context": str(int(kn_key.split("n=")[1].rstrip(")")) - 1),
        "gpt_gpu_published_bpc": fmt(bits(GPU_PUBLISHED)),
        "gpt_gpu_vs_kn": lower_word(bits(GPU_PUBLISHED), kn_bpc, "below", "above"),
        "gpt_curves_vs_lab": _curves_gpt(src, card, gpt_bpc),
    }


# ----------------------------------------------------------------------------- book/07-bpe.md

def _rows(block: str, pattern: str) -> list[tuple[str, ...]]:
    """Every match of ``pattern`` in a block of printed table lines."""
    return re.findall(pattern, block)


def _n(x: float) -> str:
    """An integer with thousands separators: 43559 -> "43,559"."""
    return f"{round(x):,}"


def bpe(src: Sources) -> dict[str, str]:
    lab = "07-bpe"
    card = src.card(lab)
    ch_v, ch_u, ch_unk, w_v, w_u, w_unk, b_v, b_u = src.output(
        lab, r"characters\s+(\d+)\s+([\d.]+)\s+([\d.]+)%\nwords\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)%\n"
             r"bytes\s+(\d+)\s+([\d.]+)")
    # the compression table: vocabulary, tokens, characters per token
    block, = src.output(lab, r"embedding at d = 384\n((?:\s+\d+\s+[\d,]+\s+[\d.]+\s+[\d,]+\n)+)")
    table = {int(v): (num(n), c) for v, n, c in _rows(block, r"(\d+)\s+([\d,]+)\s+([\d.]+)\s+[\d,]+")}
    sizes = sorted(table)
    val_chars, = src.output(lab, r"validation text: ([\d,]+) characters, [\d,]+ bytes")
    first_cut = 1 - table[sizes[1]][0] / table[sizes[0]][0]
    last_cut = 1 - table[sizes[-1]][0] / table[sizes[-2]][0]
    # the outside check
    same, total = (int(x) for x in src.output(lab, r"identical and in the same place: (\d+) of (\d+)"))
    ours_ids, hf_ids, ids_same = src.output(lab, r"validation text: ([\d,]+) ids \(seqlab\), ([\d,]+) \(tokenizers\); "
                                                 r"identical: (\w+)")
    check_v = int(next(k for k in card if k.startswith("merges identical")).split("V = ")[1].rstrip(")"))
    merges_text = (f"All {total:,} merges are identical and in the same order" if same == total
                   else f"Only {same:,} of the {total:,} merges are identical and in the same place")
    ids_text = (f"gives the same {ours_ids} ids" if ids_same == "True" and ours_ids == hf_ids
                else f"gives {ours_ids} ids against {hf_ids}, not all of them the same")
    first, = src.output(lab, r"first 20 merges: (.*)")
    first10 = split(first, ",")[:10]
    spaced = sum(m.startswith("Ġ+") for m in first10)
    # whose language
    langs = {}
    for name in ("Shakespeare", "captions: English", "captions: German", "captions: English \\+ German"):
        langs[name.replace("\\", "")] = src.output(lab, rf"\n{name}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\n")
    en_chars, de_chars = src.output(lab, r"characters per caption: English ([\d.]+), German ([\d.]+)")
    char_ratio = num(de_chars) / num(en_chars)
    shakes_ratio = num(langs["Shakespeare"][2])
    ok, n_strings = (int(x) for x in split(card["round trips on random strings"], " of "))
    roundtrip = (f"for all {n_strings} random strings" if ok == n_strings
                 else f"for only {ok} of {n_strings} random strings")
    gpt2 = card["GPT-2 tokenizer loaded"] == "True"
    values = {
        "bpe_char_vocab": ch_v, "bpe_char_units": fmt(num(ch_u), 2), "bpe_char_unk": f"{ch_unk}%",
        "bpe_word_vocab": w_v, "bpe_word_units": fmt(num(w_u), 2), "bpe_word_unk": f"{w_unk}%",
        "bpe_byte_vocab": b_v, "bpe_byte_units": fmt(num(b_u), 2),
        "bpe_word_shorter": f"{math.floor(1 / num(w_u))}",
        "bpe_word_vocab_ratio": f"{num(w_v) / num(ch_v):.0f}",
        "bpe_word_unk_one_in": f"{1 / (num(w_unk) / 100):.0f}",
        "bpe_train_time": card[f"training time, V = {sizes[-1]}"],
        "bpe_first_merges": ", ".join(f"`{m}`" for m in first10),
        "bpe_first_spaced": f"{spaced}",
        "bpe_val_chars": val_chars, "bpe_check_merges": merges_text, "bpe_check_ids": ids_text,
        "bpe_check_short": ("agrees with the reference one merge for merge" if same == total
                            else f"differs from the reference in {total - same:,} of {total:,} merges"),
        "bpe_first_cut": pct(first_cut, 0), "bpe_last_cut": pct(last_cut, 0),
        "bpe_first_merges_n": f"{sizes[1] - sizes[0]:,}", "bpe_last_merges_n": f"{sizes[-1] - sizes[-2]:,}",
        "bpe_en_chars": en_chars, "bpe_de_chars": de_chars, "bpe_char_ratio": fmt(char_ratio, 2),
        "bpe_char_part": ("explains only part of the gap" if char_ratio < shakes_ratio
                          else "explains all of the gap"),
        "bpe_roundtrip": roundtrip,
        "bpe_gpt2_run": ("The committed run loaded GPT-2's own tokenizer" if gpt2 else
                         "The committed run had no network, so its comparison with GPT-2's own tokenizer did "
                         "not run"),
        "bpe_ctx_big": _n(256 * num(table[sizes[-1]][1])), "bpe_ctx_check": _n(256 * num(table[check_v][1])),
    }
    for v, (_, cpt) in table.items():
        values[f"bpe_cpt_{v}"] = cpt
    for key, name in (("shakes", "Shakespeare"), ("en", "captions: English"), ("de", "captions: German"),
                      ("both", "captions: English + German")):
        for col, x in zip(("en", "de", "ratio"), langs[name]):
            values[f"bpe_lang_{key}_{col}"] = x
    return values


# ----------------------------------------------------------------------------- book/09-bert.md

_FILL = [  # (the prompt as the lab prints it, before the hole; after it; the hidden word)
    ("ROMEO: / But soft! what light through yonder ", " breaks?", "window"),
    ("JULIET: / O Romeo, Romeo! wherefore art thou ", "?", "Romeo"),
    ("KING RICHARD III: / Now is the winter of our ", " made glorious summer.", "discontent"),
    ("First Citizen: / We are accounted poor ", ", the patricians good.", "citizens"),
]
_LETTERS = ("GLOUCESTER: / My l_rd, I th_nk y_u f_r y_ur g_od c_unsel.",
            "GLOUCESTER: / My lord, I thank you for your good counsel.")


def _pts(x: float) -> str:
    """A difference of two accuracies in percentage points: 0.051 -> "5.1"."""
    return f"{100 * x:.1f}"


def bert(src: Sources) -> dict[str, str]:
    lab = "09-bert"
    card = src.card(lab)
    f32, f64 = split(card["vs transformers BertForMaskedLM (float32 / float64)"])
    params, = src.output(lab, r"d = \d+: ([\d,]+) parameters")
    steps, batch, seq, seconds, loss0, loss1, uniform = src.output(
        lab, r"pre-training: (\d+) steps of (\d+) x (\d+) tokens in (\d+) s; masked-token loss ([\d.]+) -> ([\d.]+) "
             r"nats \(uniform guessing: ([\d.]+)\)")
    mlm_acc = num(card["masked-token accuracy"])
    task, = src.output(lab, r"the task: (.*)\n")
    speakers = [re.sub(r" \(\d+\)$", "", s).title() for s in split(task, ",")]
    n_pool, n_test, majority = src.output(lab, r"labelled: (\d+) for training, (\d+) for testing "
                                               r"\(most frequent class: ([\d.]+)% of the test set\)")
    majority = num(majority) / 100
    # the table: labels, then mean (min-max) for fine-tuned / scratch / bag of words, then training fit
    block, = src.output(lab, r"training labels fitted: ft / scratch\n((?:\s+\d+\s+[\d.]+%.*\n)+)")
    rows = _rows(block, r"(\d+)\s+([\d.]+)% \((\d+)%-(\d+)%\)\s+([\d.]+)% \((\d+)%-(\d+)%\)\s+"
                        r"([\d.]+)% \((\d+)%-(\d+)%\)\s+(\d+)% / (\d+)%")
    table = {int(r[0]): r[1:] for r in rows}
    labels = sorted(table)
    acc = {n: {arm: num(table[n][3 * k]) / 100 for k, arm in enumerate(("ft", "sc", "bow"))} for n in labels}
    # the lab's own verdicts: gain of fine-tuning over scratch against the scatter between seeds
    vblock, = src.output(lab, r"((?:\s*\d+ labels: fine-tuned - scratch = .*\n)+)")
    verdicts = {int(n): (num(g) / 100, num(s) / 100, v) for n, g, s, v in re.findall(
        r"(\d+) labels: fine-tuned - scratch = ([+-][\d.]+)% \(seeds disagree by up to ([\d.]+)%\): (.*)", vblock)}
    fit_gap, = src.output(lab, r"fits ([+-]\d+)% more of them")
    n_seeds = card["fine-tuning"].split(" seeds")[0].split(", ")[-1]
    ft_steps = card["fine-tuning"].split(" steps")[0]

    values = {
        "bert_hf_f32": sci(f32),
        "bert_hf_f64": ("with no difference at all in float64" if num(f64) == 0
                        else f"and to {sci(f64)} in float64"),
        "bert_params": f"{num(params) / 1e6:.1f} million", "bert_vocab": card["BERT"].split("(")[1].split()[0],
        "bert_pre_steps": f"{int(steps):,}", "bert_pre_batch": batch, "bert_pre_seq": seq,
        "bert_pre_s": f"{seconds} s", "bert_loss0": loss0, "bert_loss1": loss1, "bert_uniform": uniform,
        "bert_mlm_acc": pct(mlm_acc), "bert_pre_chars": f"{num(steps) * num(batch) * num(seq) / 1e6:.1f} million",
        "bert_speakers": ", ".join(speakers), "bert_n_test": n_test, "bert_n_pool": n_pool,
        "bert_majority": pct(majority), "bert_ft_steps": ft_steps, "bert_seeds": n_seeds,
    }
    for n in labels:
        cells = table[n]
        for k, arm in enumerate(("ft", "sc", "bow")):
            mean, lo, hi = cells[3 * k: 3 * k + 3]
            values[f"bert_{n}_{arm}"] = f"{mean}% ({lo}–{hi}%)"
        values[f"bert_{n}_fit"] = f"{cells[9]}% / {cells[10]}%"
    lo_n, hi_n = labels[:2], labels[-2:]
    values["bert_labels_all"] = f"{labels[-1]}"

    # the fill-in-the-blank lines
    def filled(prefix: str, how: str) -> str:
        line, = src.output(lab, rf"{how}:\s+{re.escape(prefix)}(.*)")
        return line
    romeo_once = filled(_FILL[0][0], "all at once")[:-len(_FILL[0][1])]
    romeo_one = filled(_FILL[0][0], "one at a time")[:-len(_FILL[0][1])]
    words_back = sum(filled(p, how)[:-len(after)] == word for p, after, word in _FILL
                     for how in ("all at once", "one at a time"))
    prompt, truth = _LETTERS
    once, = src.output(lab, r"all at once:\s+(GLOUCESTER: / .*)")
    one, = src.output(lab, r"one at a time:\s+(GLOUCESTER: / .*)")
    holes = [i for i, c in enumerate(prompt) if c == "_"]
    right_once = sum(once[i] == truth[i] for i in holes) if len(once) == len(prompt) else 0
    right_one = sum(one[i] == truth[i] for i in holes) if len(one) == len(prompt) else 0
    values.update({
        "bert_fill_once": f"`{romeo_once}`", "bert_fill_one": f"`{romeo_one}`",
        "bert_letters_once": f"\"{once.split(' / ')[1]}\"", "bert_letters_one": f"\"{one.split(' / ')[1]}\"",
        "bert_letters_right": (f"{right_one} of the {len(holes)} hidden letters right one hole at a time "
                               f"({right_once} in one pass)"),
        "bert_words_back": ("none of the" if words_back == 0 else f"{words_back} answers to the")
        + f" {len(_FILL)} hidden words",
    })

    # the reading of the table
    below = [n for n in labels if acc[n]["ft"] < majority]
    below_acc = [pct(acc[n]["ft"]) for n in below]
    values["bert_ft_below"] = (
        f"With {' and '.join(map(str, below))} labels the fine-tuned BERT scores "
        + (f"{below_acc[0]} at both" if len(below) == 2 and below_acc[0] == below_acc[1] else " and ".join(below_acc))
        + f", below the {pct(majority)} of always guessing the "
        "most frequent speaker" if below else
        f"The fine-tuned BERT is above the {pct(majority)} of always guessing the most frequent speaker "
        "at every number of labels")
    sc_max = max(acc[n]["sc"] for n in labels)
    values["bert_sc_below"] = (
        f"the model trained from scratch stays below that rate at every number of labels "
        f"(at most {pct(sc_max)})" if sc_max < majority else
        f"the model trained from scratch reaches {pct(sc_max)} at best")
    bow_ahead = all(acc[n]["bow"] > max(acc[n]["ft"], acc[n]["sc"]) for n in labels)
    margins = [acc[n]["bow"] - max(acc[n]["ft"], acc[n]["sc"]) for n in labels]
    values["bert_bow_verdict"] = (
        f"The bag of words is ahead of both BERTs in the mean at every number of labels, by {_pts(min(margins))} to "
        f"{_pts(max(margins))} percentage points" if bow_ahead else
        "The bag of words is not ahead of both BERTs in the mean at every number of labels")
    values["bert_bow_all"] = pct(acc[labels[-1]]["bow"])
    # the lab's rule, gain against the seeds' scatter, label by label
    said = []
    for n in labels:
        gain, spread, verdict = verdicts[n]
        said.append(f"{n} labels, {'+' if gain >= 0 else '−'}{_pts(abs(gain))} points against a scatter of "
                    f"{_pts(spread)} (\"{verdict}\")")
    values["bert_lab_verdicts"] = "; ".join(said)
    helps = [n for n in labels if verdicts[n][2] == "pre-training helps"]
    # the published claim: pre-training helps most when labels are few
    shown = all(verdicts[n][2] == "pre-training helps" and acc[n]["ft"] > majority for n in lo_n)
    few = []
    for n in lo_n:
        gain = verdicts[n][0]
        where = 'ahead of' if gain > 0 else 'behind' if gain < 0 else 'level with'
        few.append(f"with {n} labels the fine-tuned model is {_pts(abs(gain))} points {where} the model trained "
                   "from scratch" if not few else f"with {n} labels, {_pts(abs(gain))} points {where} it")
    both_below = all(max(acc[n]["ft"], acc[n]["sc"]) < majority for n in lo_n)
    values["bert_value_shown"] = (
        "On the speaker task our run shows a gain beyond the seeds' scatter there: " + "; ".join(few) + "."
        if shown else
        "On the speaker task our run does not show it: " + "; ".join(few)
        + ("; and at both, both models score below always guessing the most frequent speaker" if both_below else "")
        + ". **On this task, the value of pre-training is not shown at this budget.**")
    se = math.sqrt(acc[helps[0]]["ft"] * (1 - acc[helps[0]]["ft"]) / int(n_test)) if helps else None
    values["bert_helps_where"] = (
        f"Where the lab's rule does find a gain, at {' and '.join(map(str, helps))} labels, the fine-tuned model "
        f"scores {' and '.join(pct(acc[n]['ft']) for n in helps)}, only "
        f"{' and '.join(_pts(acc[n]['ft'] - majority) for n in helps)} points above the majority-class rate, and all "
        f"{n_seeds} seeds are scored on the same {n_test} speeches, on which one accuracy has a standard error "
        f"of about {_pts(se)} points: a small gain, at the edge of what this test set can resolve."
        if helps else "The lab's rule finds no gain beyond the seeds' scatter at any number of labels.")
    pre_text, = src.output(lab, r"pre-training text: ([\d,]+) characters")
    values["bert_pre_passes"] = f"{num(steps) * num(batch) * num(seq) / num(pre_text):.1f}"
    gap = num(fit_gap)
    values["bert_fit_gap"] = f"{abs(gap):.0f} percentage points {'more' if gap > 0 else 'fewer'} of them"
    values["bert_fit_hi"] = " and ".join(f"{table[n][9]}%" for n in hi_n)
    values["bert_hi_labels"] = " and ".join(map(str, hi_n))
    # passes over the labels in one fine-tuning run (batches of 16, the lab's LabelledBatches)
    values["bert_ft_passes_lo"] = f"{num(ft_steps) * 16 / labels[0]:.0f}"
    values["bert_ft_passes_all"] = f"{num(ft_steps) * 16 / labels[-1]:.1f}"
    values.update(_bert_words(src, lab))
    return values


_WORD_ARMS = {"ft": "fine-tuned", "sc": "from scratch", "probe": "probe, pre-trained",
              "rprobe": "probe, random weights", "pairs": "letter pairs"}


def _bert_words(src: Sources, lab: str) -> dict[str, str]:
    """Lab 9, section 5: word or scrambled letters, fine-tuned and probed, against a bag of letter pairs."""
    n_words, n_test = src.output(lab, r"([\d,]+) words of 5 to 9 letters seen at least twice, each with a scramble; "
                                      r"([\d,]+) held-out strings")
    block, = src.output(lab, r"word or scrambled: test accuracy on [\d,]+ strings.*\n.*letter pairs\n"
                             r"((?:\s+\d+(?:\s+[\d.]+% \(\d+%-\d+%\)){5}\n?)+)")
    table = {}
    for line in block.strip("\n").splitlines():
        n = int(line.split()[0])
        cells = re.findall(r"([\d.]+)% \((\d+)%-(\d+)%\)", line)
        table[n] = dict(zip(_WORD_ARMS, cells))
    labels = sorted(table)
    v = {"bert_w_words": n_words, "bert_w_test": n_test}
    for n in labels:
        for arm, (mean, lo, hi) in table[n].items():
            v[f"bert_w_{n}_{arm}"] = f"{mean}% ({lo}–{hi}%)"
    found = re.findall(r"(\d+) labels, (fine-tuned - scratch|probe: pre-trained - random) += ([+-][\d.]+)% "
                       r"\(seeds disagree by up to ([\d.]+)%\): (.*)",
                       src.output(lab, r"((?:\s*\d+ labels, (?:fine-tuned|probe).*\n?)+)")[0])
    verdict = {(int(n), kind): (float(g), float(sp), what) for n, kind, g, sp, what in found}

    def said(kind: str, who: str) -> str:
        helps = [n for n in labels if verdict[n, kind][2] == "pre-training helps"]
        rest = [n for n in labels if n not in helps]
        if not helps:
            return f"{who} shows no gain beyond the seeds' scatter at any number of labels"
        text = (f"{who} gains {' and '.join(_pts(verdict[n, kind][0] / 100) for n in helps)} points at "
                f"{' and '.join(map(str, helps))} labels, more than the seeds' scatter")
        return text + (f", but not at {' and '.join(map(str, rest))}" if rest else ", at every number of labels")
    v["bert_w_ft_verdict"] = said("fine-tuned - scratch", "Fine-tuning the pre-trained encoder, against the same "
                                                          "network trained from scratch,")
    v["bert_w_probe_verdict"] = said("probe: pre-trained - random", "The probe of the pre-trained encoder, against "
                                                                    "the same probe of a random one,")
    mean = {n: {arm: num(table[n][arm][0]) for arm in _WORD_ARMS} for n in labels}
    pairs_first = all(mean[n]["pairs"] > max(mean[n][a] for a in ("ft", "sc", "probe", "rprobe")) for n in labels)
    v["bert_w_pairs"] = (
        "The bag of letter pairs, learned from the labels alone, is ahead of every BERT arm at every number of "
        "labels" if pairs_first else
        "The bag of letter pairs, learned from the labels alone, is not ahead of the best BERT arm at every "
        "number of labels")
    transfer = any(verdict[n, k][2] == "pre-training helps" for n in labels
                   for k in ("fine-tuned - scratch", "probe: pre-trained - random"))
    grows = lambda kind: all(verdict[a, kind][0] < verdict[b, kind][0] for a, b in zip(labels, labels[1:]))
    ft_grows, probe_grows = grows("fine-tuned - scratch"), grows("probe: pre-trained - random")
    few_best = max(mean[labels[0]]["ft"], mean[labels[0]]["probe"])
    v["bert_w_trend"] = (
        (" Both gains grow" if probe_grows else " The gain of fine-tuning grows")
        + " with the number of labels, the opposite of the published pattern"
        + (f": with {labels[0]} labels even the pre-trained encoder stays close to guessing (at most "
           f"{few_best:.1f}%, fine-tuned or probed)" if few_best < 60 else "") + "."
        if ft_grows else
        " The gain of fine-tuning is largest with the fewest labels, as in the published pattern."
        if verdict[labels[0], "fine-tuned - scratch"][0] >= max(verdict[n, "fine-tuned - scratch"][0] for n in labels)
        else " The gain of fine-tuning does not grow steadily with the number of labels.")
    v["bert_w_shown"] = ("So pre-training does transfer at this scale, to a task that what it learned serves"
                         if transfer else "So even here pre-training does not transfer at this scale")
    return v


# ----------------------------------------------------------------------------- book/10-scaling.md

KAPLAN_ALPHA_N, KAPLAN_ALPHA_D = 0.076, 0.095        # Kaplan et al. (2020), equations 1.1 and 1.2


def _slope(xs, ys) -> float:
    """The least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def scaling(src: Sources) -> dict[str, str]:
    lab = "10-scaling"
    card = src.card(lab)
    block, = src.output(lab, r"val loss  train loss    time\n((?:\s*\d+\s+\d+\s+\d+\s+[\d,]+\s+.*s\n)+)")
    rows = _rows(block, r"(\d+)\s+(\d+)\s+(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d.e+-]+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)s")
    Ns = [num(r[3]) for r in rows]
    vals, trains = [num(r[7]) for r in rows], [num(r[8]) for r in rows]
    tokens = num(rows[0][4])
    span, = src.output(lab, r"parameters span (\d+)x")
    train_chars, = src.output(lab, r"passes over the ([\d,]+) training characters")
    a, alpha = src.output(lab, r"L\(N\) = ([\d.]+) \* N\^\(-([\d.]+)\)")
    alpha_d = num(card["alpha_D (largest model, after warm-up)"])
    n_eval, d_from, d_to = src.output(lab, r"from (\d+) evaluations, ([\d,]+) to ([\d,]+) tokens")
    sblock, = src.output(lab, r"((?:L=\d h=\d d=\s*\d+ on .*\n)+)")
    small = [tuple(num(x) for x in r) for r in re.findall(
        r"on ([\d,]+) characters \((\d+) passes\): val ([\d.]+), train ([\d.]+) \(gap ([\d.]+)\); full data: val ([\d.]+)",
        sblock)]
    n_small = len(small)
    values = {
        "scale_span": span, "scale_tokens": rows[0][4], "scale_passes": fmt(tokens / num(train_chars), 2),
        "scale_a": fmt(num(a), 2), "scale_alpha_n": fmt(num(alpha), 3), "scale_dev": card["largest deviation from the fit"],
        "scale_alpha_d": fmt(alpha_d, 3), "scale_d_evals": n_eval, "scale_d_from": d_from, "scale_d_to": d_to,
        "scale_d_ratio": f"{num(d_to) / num(d_from):.0f}",
    }
    for k, r in enumerate(rows, 1):
        values[f"scale_n{k}"] = r[3]
        values[f"scale_c{k}"] = sci(r[5])
        values[f"scale_v{k}"] = r[7]
        values[f"scale_t{k}"] = f"{r[9]} s"
    ratio = num(alpha) / KAPLAN_ALPHA_N
    values["scale_vs_kaplan"] = ("less than half of" if ratio < 0.5 else "smaller than" if ratio < 1
                                 else "larger than")
    values["scale_d_vs_kaplan"] = lower_word(alpha_d, KAPLAN_ALPHA_D, "smaller than", "larger than", "equal to")
    # how much the one fitted exponent depends on which points are used (one seed per size)
    half = len(Ns) // 2
    values["scale_alpha_small"] = fmt(-_slope(Ns[:half], vals[:half]), 3)
    values["scale_alpha_large"] = fmt(-_slope(Ns[-half:], vals[-half:]), 3)
    loo = [-_slope(Ns[:k] + Ns[k + 1:], vals[:k] + vals[k + 1:]) for k in range(len(Ns))]
    values["scale_loo_lo"], values["scale_loo_hi"] = fmt(min(loo), 3), fmt(max(loo), 3)
    steps = [vals[k] - vals[k + 1] for k in range(len(vals) - 1)]
    values["scale_monotone"] = ("falls with every step up in size" if all(d > 0 for d in steps)
                                else "does not fall with every step up in size")
    values["scale_step_min"], values["scale_step_max"] = fmt(min(steps), 3), fmt(max(steps), 3)
    values["scale_decades"] = f"{math.log10(Ns[-1] / Ns[0]):.1f}"
    # two points only (exercise)
    two = -math.log(vals[-1] / vals[0]) / math.log(Ns[-1] / Ns[0])
    values["scale_two_point"] = (f"ln({rows[0][7]} / {rows[-1][7]}) / ln({rows[-1][3]} / {rows[0][3]}) = "
                                 f"{math.log(vals[0] / vals[-1]):.3f} / {math.log(Ns[-1] / Ns[0]):.2f} ≈ {two:.3f}")
    values["scale_two_vs_fit"] = ("close to" if abs(two - num(alpha)) < 0.005 else
                                  lower_word(two, num(alpha), "below", "above"))
    # the small-data slice
    values["scale_slice_chars"] = _n(small[0][0]) if small else "?"
    values["scale_slice_passes"] = f"{small[0][1]:.0f}"
    values["scale_slice_n"] = f"{n_small}"
    full_by_val = {v: n for n, v in zip(Ns, vals)}
    for k, (_, _, v, t, g, full) in enumerate(small, 1):
        values[f"scale_s{k}_n"] = _n(full_by_val[full])
        values[f"scale_s{k}_full"], values[f"scale_s{k}_val"] = fmt(full, 4), fmt(v, 4)
        values[f"scale_s{k}_train"], values[f"scale_s{k}_gap"] = fmt(t, 4), fmt(g, 3)
    slice_gain, full_gain = small[0][2] - small[-1][2], small[0][5] - small[-1][5]
    slice_train_drop = small[0][3] - small[-1][3]
    full_train_drop = trains[-1 - (n_small - 1)] - trains[-1]
    values["scale_slice_gain"], values["scale_full_gain"] = fmt(slice_gain, 3), fmt(full_gain, 3)
    values["scale_slice_train_drop"], values["scale_full_train_drop"] = fmt(slice_train_drop, 3), fmt(full_train_drop, 3)
    values["scale_slice_train_verdict"] = lower_word(full_train_drop, slice_train_drop, "faster than", "more slowly than",
                                                     "as fast as")
    values["scale_slice_val_verdict"] = lower_word(slice_gain, full_gain, "less than", "more than", "as much as")
    gaps = [s[4] for s in small]
    values["scale_gap_verdict"] = ("the gap grows with the model" if all(x < y for x, y in zip(gaps, gaps[1:]))
                                   else "the gap does not grow steadily with the model")
    # Chinchilla at home (exercise): 20 tokens per parameter for the largest model
    n_max, t_max = Ns[-1], num(rows[-1][9])
    d_opt = 20 * n_max
    rate = tokens / t_max
    values.update({
        "scale_nmax": rows[-1][3], "scale_chin_tokens": sci(d_opt), "scale_chin_passes": f"{d_opt / num(train_chars):.0f}",
        "scale_chin_flops": sci(6 * n_max * d_opt), "scale_tmax": f"{rows[-1][9]} s",
        "scale_rate": f"{round(rate, -2):,.0f}", "scale_chin_time": f"{round(d_opt / rate, -2):,.0f} s",
        "scale_chin_hours": f"{d_opt / rate / 3600:.1f}", "scale_train_chars": train_chars,
    })
    return values


PAGES = {"book/08-gpt.md": gpt, "book/07-bpe.md": bpe, "book/09-bert.md": bert, "book/10-scaling.md": scaling}
NOT_MEASURED = {
    "book/08-gpt.md": {
        "1.4697": "nanoGPT's published validation loss of its GPU configuration",
        "95%": "the width of an interval, not a measurement",
        "31%": "an exercise's solution: GPT-2 small's embedding share, arithmetic on its published shapes",
        "1%": "an exercise's solution: the embedding share of a V = 65, d = 128 model, arithmetic",
    },
    "book/07-bpe.md": {
        "90%": "the share of the text used for training: the course's fixed split",
        "10%": "the share of the text held out for validation: the course's fixed split",
    },
    "book/09-bert.md": {
        "15%": "BERT's masking rate, a hyper-parameter of Devlin et al.'s recipe",
        "50%": "guessing on a task with two balanced classes, arithmetic",
        "20%": "the share of the speeches set aside as the test set, a choice of the lab",
        "100%": "an exercise's hypothetical masking rate",
    },
    "book/10-scaling.md": {
        "0.076": "Kaplan et al.'s published exponent alpha_N",
        "0.095": "Kaplan et al.'s published exponent alpha_D",
        "1.69": "Hoffmann et al.'s published irreducible loss E of the Chinchilla fit",
    },
}
