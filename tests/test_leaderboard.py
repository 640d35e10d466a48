"""seqlab.leaderboard: the grand comparison runs end to end, chooses what it says it chooses,
and writes a results file the lab can read. No test asserts a time or a ranking."""
import json
import math

import pytest
import torch

from seqlab import leaderboard as lb
from seqlab.course.cli import main


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """One end-to-end run of ``python -m seqlab leaderboard --budget smoke`` (every family)."""
    out = tmp_path_factory.mktemp("lb") / "leaderboard-smoke.json"
    assert main(["leaderboard", "--budget", "smoke", "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_every_family_at_both_sizes_and_the_ngram(smoke_results):
    rows = smoke_results["rows"]
    got = {(r["family"], r["size"]) for r in rows}
    want = {(f, s) for f in lb.FAMILIES for s in ("small", "large")} | {(lb.NGRAM, "-")}
    assert got == want
    cfg = lb.BUDGETS["smoke"]
    assert smoke_results["tokens_per_run"] == cfg["steps"] * cfg["batch_size"] * cfg["block_size"]
    assert smoke_results["budget"] == "smoke" and smoke_results["device"].startswith("cpu")
    assert smoke_results["command"].startswith("python -m seqlab leaderboard")


def test_rows_hold_finite_measurements(smoke_results):
    for r in smoke_results["rows"]:
        assert math.isfinite(r["val_bpc"]) and 0 < r["val_bpc"] < math.log2(65) + 0.5, r
        assert abs(r["val_bpc"] - r["val_loss"] / math.log(2)) < 1e-12
        assert r["train_tokens_per_s"] > 0 and r["wall_s"] > 0 and r["gen_ms_per_token"] > 0
        assert r["params"] > 0 and 0 < r["active_params"] <= r["params"]
        if r["family"] != lb.NGRAM:
            assert r["peak_mib"] is None or r["peak_mib"] >= 0
    moe = [r for r in smoke_results["rows"] if r["family"] == "MoE-GPT"]
    assert all(r["active_params"] < r["params"] for r in moe)          # unchosen experts are not active


def test_the_sweep_is_recorded_and_its_best_rate_is_used(smoke_results):
    cfg = lb.BUDGETS["smoke"]
    for fam in lb.FAMILIES:
        tried = [s for s in smoke_results["sweep"] if s["family"] == fam]
        lrs = [s["lr"] for s in tried]
        assert lrs[:len(cfg["lrs"])] == list(cfg["lrs"]) and len(set(lrs)) == len(lrs)
        assert set(lrs) <= set(lb.LADDER) and len(lrs) <= len(cfg["lrs"]) + lb.MAX_EXTENSIONS
        best = min(tried, key=lambda s: s["dev_loss"])["lr"]
        on_edge = best in (min(lrs), max(lrs))
        assert not on_edge or len(lrs) == len(cfg["lrs"]) + lb.MAX_EXTENSIONS or best in (lb.LADDER[0], lb.LADDER[-1])
        assert {r["lr"] for r in smoke_results["rows"] if r["family"] == fam} == {best}
    orders = [s for s in smoke_results["sweep"] if s["family"] == lb.NGRAM]
    assert [s["order"] for s in orders] == list(cfg["ngram_orders"])
    ngram = next(r for r in smoke_results["rows"] if r["family"] == lb.NGRAM)
    assert ngram["order"] == min(orders, key=lambda s: s["dev_loss"])["order"]


def test_table_lists_every_row_best_first(smoke_results):
    text = lb.table(smoke_results)
    lines = text.splitlines()
    assert len(lines) == 3 + len(smoke_results["rows"])
    bpcs = [float(line.split()[-5]) for line in lines[3:]]
    assert bpcs == sorted(bpcs)
    for fam in list(lb.FAMILIES) + [lb.NGRAM]:
        assert fam in text


def test_fit_width_picks_the_nearest_count():
    from seqlab.charlm import count_params

    fam = lb.FAMILIES["LSTM"]
    width, params = lb.fit_width(fam, 65, 50_000, 32)
    counts = {w: count_params(fam.make(65, w, 32)) for w in range(8, 200, 4)}
    assert params == counts[width]
    assert abs(params - 50_000) == min(abs(c - 50_000) for c in counts.values())


def test_pareto_front():
    rows = [{"x": 1, "val_bpc": 3.0}, {"x": 2, "val_bpc": 2.0}, {"x": 3, "val_bpc": 2.5}, {"x": 4, "val_bpc": 1.0}]
    assert [r["x"] for r in lb.pareto_front(rows, "x")] == [1, 2, 4]


def test_generation_timing_works_for_models_with_and_without_step():
    torch.manual_seed(0)
    prompt = torch.randint(0, 65, (1, 16))
    for name in ("GPT", "Hyena", "LSTM"):
        model = lb.FAMILIES[name].make(65, 16, 16)
        assert lb.generation_ms_per_token(model, prompt, 3) > 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown families"):
        lb.run_leaderboard("smoke", families=["Transformer-XL"])
    with pytest.raises(ValueError, match="budget"):
        lb.run_leaderboard("huge")
