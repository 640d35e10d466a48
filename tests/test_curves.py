"""python -m seqlab curves: learning curves with several seeds, at the smoke budget."""
import json
import math

import pytest

from seqlab import curves
from seqlab.course.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def smoke_results():
    return curves.run_curves("smoke", ["GPT", "LSTM"], seeds=2, log=lambda s: None)


def test_every_family_and_seed_has_a_curve(smoke_results):
    runs = smoke_results["runs"]
    assert sorted((r["family"], r["seed"]) for r in runs) == [("GPT", 0), ("GPT", 1), ("LSTM", 0), ("LSTM", 1)]
    cfg = curves.BUDGETS["smoke"]
    for r in runs:
        assert r["eval_step"] == list(range(cfg["eval_every"], cfg["steps"] + 1, cfg["eval_every"]))
        assert r["eval_tokens"] == [s * cfg["batch_size"] * cfg["block_size"] for s in r["eval_step"]]
        assert all(b > a for a, b in zip(r["eval_seconds"], r["eval_seconds"][1:]))
        assert all(math.isfinite(v) for v in r["val_loss"]) and math.isfinite(r["final_val_loss"])
    gpt = [r for r in runs if r["family"] == "GPT"]
    assert gpt[0]["val_loss"] != gpt[1]["val_loss"]                     # the seeds differ
    ng = smoke_results["ngram"]
    assert ng["tokens"] == sorted(ng["tokens"]) and ng["tokens"][-1] == smoke_results["train_tokens"]
    assert ng["val_loss"][0] > ng["val_loss"][-1]                       # more text, better counts


def test_summary_and_matched_time(smoke_results):
    s = curves.summary(smoke_results)
    assert set(s) == {"GPT", "LSTM"}
    for f in s.values():
        assert f["seeds"] == 2 and f["final_min"] <= f["final_mean"] <= f["final_max"]
        assert len(f["curve_mean"]) == len(f["eval_tokens"])
    t = min(f["train_s"] for f in s.values())
    for fam in s:
        assert curves.loss_at_seconds(smoke_results, fam, t) is not None
        assert s[fam]["train_s"] == min(s[fam]["train_s_seeds"])          # the clock: the fastest seed
    end = curves.loss_at_seconds(smoke_results, "GPT", s["GPT"]["train_s"])
    assert end == pytest.approx(s["GPT"]["curve_mean"][-1])               # its last step, mean over the seeds
    assert curves.loss_at_seconds(smoke_results, "GPT", 1e9) is None      # past the end of the curves


def test_plot(smoke_results):
    import matplotlib
    matplotlib.use("Agg")
    fig = curves.plot(smoke_results)
    assert len(fig.axes) == 2


def test_cli_writes_and_resumes(tmp_path, capsys):
    out = tmp_path / "curves.json"
    args = ["curves", "--budget", "smoke", "--families", "LSTM", "--seeds", "1", "--out", str(out)]
    assert main(args) == 0
    first = json.loads(out.read_text())
    assert len(first["runs"]) == 1 and first["command"].startswith("python -m seqlab curves")
    assert main(args[:-3] + ["2", "--out", str(out), "--resume"]) == 0   # adds seed 1 only
    second = json.loads(out.read_text())
    assert [r["seed"] for r in second["runs"]] == [0, 1]
    assert second["runs"][0] == first["runs"][0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown families"):
        curves.run_curves("smoke", ["Nope"])
    with pytest.raises(ValueError, match="budget"):
        curves.run_curves("huge")


def test_merge_joins_families_measured_apart(tmp_path, capsys):
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "all.json"
    assert main(["curves", "--budget", "smoke", "--families", "LSTM", "--seeds", "1", "--out", str(a)]) == 0
    assert main(["curves", "--budget", "smoke", "--families", "GPT", "--seeds", "1", "--out", str(b)]) == 0
    assert main(["curves", "--merge", str(a), str(b), "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert [(r["family"], r["seed"]) for r in merged["runs"]] == [("LSTM", 0), ("GPT", 0)]
    assert len(merged["commands"]) == 2
    with pytest.raises(ValueError, match="more than one file"):
        curves.merge([json.loads(a.read_text()), json.loads(a.read_text())])


def test_compare_reads_matched_steps_and_time(smoke_results):
    text = curves.compare(smoke_results, ["LSTM"])
    assert "GPT" in text and "LSTM: at matched steps" in text and "at matched time" in text
    with pytest.raises(ValueError, match="no runs of"):
        curves.compare(smoke_results, ["Mamba"])
