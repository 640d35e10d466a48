"""seqlab.bench: the timing helpers and the rnn benchmark run and report sensibly.

Nothing here asserts how fast anything is: speed claims live in the benchmark's output.
"""
import torch

from seqlab import bench
from seqlab.booktools import main


def test_timeit_counts_calls_and_orders_statistics():
    calls = []
    t = bench.timeit(lambda: calls.append(1), warmup=3, repeats=4)
    assert len(calls) == 7 and len(t["times"]) == 4
    assert 0 <= t["min"] <= t["median"] <= max(t["times"])


def test_peak_memory_is_only_claimed_where_measured():
    assert bench.peak_memory(lambda: torch.zeros(10), device="cpu") is None


def test_format_table_aligns_columns():
    text = bench.format_table([{"a": 1, "b": 2.5}, {"a": 100, "b": 12345.0}], ["a", "b"])
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(l) for l in lines}) == 1
    assert "12,345" in text


def test_bench_rnn_runs_and_prints_ratios(capsys):
    rows = bench.bench_rnn(hidden_sizes=(8,), batch_size=2, seq_len=5, device="cpu", repeats=1)
    row = rows[0]
    for key in ("seqlab train tok/s", "torch train tok/s", "seqlab infer tok/s", "torch infer tok/s"):
        assert row[key] > 0
    assert abs(row["train ratio"] - row["torch train tok/s"] / row["seqlab train tok/s"]) < 1e-9
    out = capsys.readouterr().out
    assert "ratio = torch / seqlab" in out and "train ratio" in out


def test_cli_bench_rnn(capsys):
    assert main(["bench", "rnn", "--sizes", "8", "--batch", "2", "--seq-len", "4", "--repeats", "1",
                 "--device", "cpu"]) == 0
    assert "infer ratio" in capsys.readouterr().out
