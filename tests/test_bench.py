"""seqlab.bench: the timing helpers and the rnn benchmark run and report sensibly.

Nothing here asserts how fast anything is: speed claims live in the benchmark's output.
"""
import pytest
import torch

from seqlab import bench
from seqlab.course.cli import main


def test_timeit_counts_calls_and_orders_statistics():
    calls = []
    t = bench.timeit(lambda: calls.append(1), warmup=3, repeats=4)
    assert len(calls) == 7 and len(t["times"]) == 4
    assert 0 <= t["min"] <= t["median"] <= max(t["times"])


def test_peak_memory_is_only_claimed_where_measured():
    assert bench.peak_memory(lambda: torch.zeros(10), device="meta") is None
    if not bench._cpu_peak_supported():
        assert bench.peak_memory(lambda: torch.zeros(10), device="cpu") is None


@pytest.mark.skipif(not bench._cpu_peak_supported(), reason="CPU peak memory is measured on Linux only")
def test_cpu_peak_memory_sees_a_known_allocation():
    """64 MiB written and freed inside fn: the peak sees them; an idle fn needs almost nothing."""
    def allocate():
        x = torch.ones(16 * 2**20)                     # 16 Mi float32 = 64 MiB, every page touched
        del x

    big = bench.peak_memory(allocate, device="cpu") / 2**20
    idle = bench.peak_memory(lambda: None, device="cpu") / 2**20
    assert 60 < big < 100, big
    assert idle < 4, idle
    assert bench.peak_memory(allocate, device="cpu") / 2**20 > 60     # freed pages are not reused unseen


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


def test_bench_attention_runs_and_reports_quadratic_memory(capsys):
    rows = bench.bench_attention(lengths=(64, 256), batch_size=2, n_heads=2, d_head=8, device="cpu", repeats=1)
    assert [r["n"] for r in rows] == [64, 256]
    for r in rows:
        assert r["seqlab ms"] > 0 and r["torch ms"] > 0
        assert abs(r["time ratio"] - r["seqlab ms"] / r["torch ms"]) < 1e-9
        assert r["n x n matrix MiB"] == 2 * 2 * r["n"] ** 2 * 4 / 2**20
    if bench._cpu_peak_supported():
        # seqlab stores the (B, h, n, n) weights: at n = 256 that is 1 MiB, and it needs at least that
        assert rows[1]["seqlab MiB"] >= rows[1]["n x n matrix MiB"]
    out = capsys.readouterr().out
    assert "ratio = seqlab / torch" in out and "memory ratio" in out


def test_bench_attention_backward(capsys):
    rows = bench.bench_attention(lengths=(32,), batch_size=1, n_heads=1, d_head=4, backward=True,
                                 device="cpu", repeats=1, print_table=False)
    assert rows[0]["seqlab ms"] > 0 and capsys.readouterr().out == ""


def test_cli_bench_attention(capsys):
    assert main(["bench", "attention", "--sizes", "16,32", "--batch", "1", "--heads", "2", "--d-head", "4",
                 "--repeats", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "attention forward" in out and "n x n matrix MiB" in out


def test_bench_gpt_runs_on_cpu_and_claims_no_mfu(capsys):
    rows = bench.bench_gpt(size=dict(n_layer=1, n_head=2, d_model=16, block_size=8, batch_size=2), steps=2,
                           device="cpu", compile="off")
    assert [r["variant"] for r in rows] == ["fp32 eager"]
    assert rows[0]["tokens/s"] > 0 and rows[0]["MFU"] is None
    assert abs(rows[0]["tokens/s"] - 2 * 8 / (rows[0]["ms/step"] / 1e3)) < 1e-6 * rows[0]["tokens/s"]
    assert "MFU: n/a" in capsys.readouterr().out


def test_peak_flops_lookup_by_gpu_name():
    assert bench.peak_flops("cpu") is None
    assert bench.peak_flops_for_name("NVIDIA A100-SXM4-80GB") == 312e12
    assert bench.peak_flops_for_name("NVIDIA A10G") == 125e12
    assert bench.peak_flops_for_name("NVIDIA L40S") == 362e12 and bench.peak_flops_for_name("NVIDIA L4") == 121e12
    assert bench.peak_flops_for_name("Tesla T4") == 65e12
    assert bench.peak_flops_for_name("Some Future GPU") is None


def test_gpt_flops_per_token_counts_six_n_plus_attention():
    from seqlab.models.gpt import GPT, GPTConfig
    m = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, d_model=16, bias=False))
    N = sum(p.numel() for p in m.parameters()) - m.wpe.weight.numel() - m.wte.weight.numel()
    assert m.flops_per_token() == 6 * N + 12 * 2 * 16 * 8


def test_cli_bench_gpt_rejects_unknown_config():
    with pytest.raises(ValueError, match="config must be"):
        bench.bench_gpt(config="tpu", device="cpu")


def test_bench_long_context_runs_and_reads_crossovers(capsys):
    from seqlab.bench import LONG_CONTEXT_OPS, bench_long_context, crossovers

    rows = bench_long_context(lengths=(32, 64), max_sequential=32, repeats=1)
    assert [r["L"] for r in rows] == [32, 64]
    assert rows[1]["mamba scan, sequential ms"] is None                  # skipped above max_sequential
    assert all(rows[0][f"{n} ms"] > 0 for n in LONG_CONTEXT_OPS)
    out = capsys.readouterr().out
    assert "forward + backward" in out and "attention" in out
    fake = [{"L": L, **{f"{n} ms": t for n, t in zip(LONG_CONTEXT_OPS, times)}}
            for L, times in ((1, (1, 5, 5, 5, 5, 5)), (2, (4, 5, 3, 5, 5, 5)), (4, (16, 5, 20, 5, 5, 5)))]
    lines = crossovers(fake)
    assert "mamba scan, sequential: faster than attention (SDPA) from L = 4 on" in lines[0]
    assert "mamba scan, parallel: slower" in lines[1]                  # faster at 2, slower again at 4


def test_cli_bench_long_context(capsys):
    from seqlab.__main__ import main

    assert main(["bench", "long-context", "--sizes", "16", "--repeats", "1"]) == 0
    assert "sequence mixers, forward + backward" in capsys.readouterr().out


def test_bench_generation_state_grows_only_for_the_kv_cache(capsys):
    from seqlab.bench import bench_generation

    rows = bench_generation(positions=(8, 32), d_model=32, n_layer=1, repeats=1)
    gpt = [r["GPT + KV cache state MiB"] for r in rows]
    assert gpt[1] == 4 * gpt[0]                                          # the cache is linear in the position
    for name in ("Mamba", "RWKV-7"):
        assert rows[0][f"{name} state MiB"] == rows[1][f"{name} state MiB"] > 0   # a fixed-size state
        assert rows[1][f"{name} ms"] > 0
    assert "one generated token" in capsys.readouterr().out


# ----------------------------------------------------------------------------- Lab 16: the hardware lottery

TINY = dict(n_layer=1, n_head=2, d_model=16)


def test_lottery_models_have_equal_parameter_counts():
    from seqlab.charlm import count_params

    for layers in (1, 2):
        models = bench.lottery_models(vocab=65, block_size=64, lstm_layers=layers)         # Lab 8's GPT
        n_lstm, n_gpt = count_params(models["LSTM"]), count_params(models["GPT"])
        assert abs(n_lstm - n_gpt) / n_gpt < 0.02, (layers, n_lstm, n_gpt)
        assert isinstance(models["LSTM"].rnn, torch.nn.LSTM)                                 # the fused kernel
        assert models["LSTM"].config["num_layers"] == layers


def test_lstm_flops_per_token_is_six_per_recurrent_weight():
    from seqlab.models.rnn import RecurrentLM

    H, I, V = 12, 8, 20
    for impl in ("torch", "seqlab"):
        model = RecurrentLM(V, "lstm", hidden_size=H, num_layers=2, emb_size=I, impl=impl)
        weights = 4 * H * I + 4 * H * H + 4 * H * H + 4 * H * H          # layer 1: ih, hh; layer 2: ih, hh
        assert bench.lstm_flops_per_token(model) == 6 * weights


def test_lstm_flops_per_token_matches_torch_flop_counter():
    """The 6 N rule against torch's own FLOP counter, on the from-scratch LSTM (whose matmuls it sees)."""
    from torch.utils.flop_counter import FlopCounterMode

    from seqlab.models.rnn import RecurrentLM

    B, T, V, H = 2, 5, 11, 16
    model = RecurrentLM(V, "lstm", hidden_size=H, impl="seqlab")
    idx = torch.randint(V, (B, T))
    with FlopCounterMode(display=False) as counter:
        model(idx).sum().backward()
    head = 6 * V * H * B * T                                             # the output head, left out by the rule
    h0 = 2 * B * H * 4 * H                     # the gradient of the initial state h_0 = 0: not computed, not needed
    assert counter.get_total_flops() - head + h0 == bench.lstm_flops_per_token(model) * B * T


def test_bench_lottery_train_rows_and_no_mfu_on_cpu(capsys):
    rows = bench.bench_lottery_train(lengths=(8, 16), batch_sizes=(1, 2), batch_size=2, seq_len=8, **TINY,
                                     device="cpu", repeats=1, warmup=0)
    assert [(r["sweep"], r["T"], r["B"]) for r in rows] == [("length", 8, 2), ("length", 16, 2),
                                                            ("batch", 8, 1), ("batch", 8, 2)]
    assert rows[3]["LSTM ms"] == rows[0]["LSTM ms"]                      # (8, 2) is in both sweeps: measured once
    for r in rows:
        for m in ("LSTM", "GPT"):
            for key in ("ms", "ms min", "tok/s", "FLOP/s", "util"):
                assert r[f"{m} {key}"] > 0
            assert r[f"{m} MFU"] is None                                 # no listed peak for a CPU
            assert r[f"{m} ms min"] <= r[f"{m} ms"]
            assert abs(r[f"{m} tok/s"] - r["B"] * r["T"] / (r[f"{m} ms min"] / 1e3)) < 1e-6 * r[f"{m} tok/s"]
        assert abs(r["GPT/LSTM"] - r["GPT tok/s"] / r["LSTM tok/s"]) < 1e-9
        assert abs(r["LSTM params"] - r["GPT params"]) / r["GPT params"] < 0.05
    out = capsys.readouterr().out
    assert "MFU = / listed peak: n/a" in out and "against the batch size B" in out


def test_bench_lottery_train_uses_the_practical_peak_given():
    rows = bench.bench_lottery_train(lengths=(8,), batch_sizes=(), batch_size=1, seq_len=8, **TINY, device="cpu",
                                     repeats=1, warmup=0, memory=False, practical_peak=1e9, print_table=False)
    r = rows[0]
    assert r["LSTM MiB"] is None and r["GPT MiB"] is None
    assert abs(r["GPT util"] - r["GPT FLOP/s"] / 1e9) < 1e-12


def test_timeit_interleaved_takes_turns():
    calls = []
    t = bench.timeit_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                 warmup=1, repeats=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3                     # warm-up of each, then rounds in turn
    assert set(t) == {"a", "b"} and all(len(v["times"]) == 3 and v["min"] <= v["median"] for v in t.values())


def test_matmul_peak_and_copy_bandwidth_are_positive():
    peak = bench.matmul_peak("cpu", sizes=(32, 64), repeats=1)
    assert peak["flops"] > 0 and peak["n"] in (32, 64) and peak["dtype"] == "float32"
    assert bench.copy_bandwidth("cpu", mib=1, repeats=1) > 0


def test_bench_streaming_kv_cache_grows_linearly_lstm_state_does_not(capsys):
    prefixes = (4, 8, 32)
    rows = bench.bench_streaming(prefixes, **TINY, batch_size=2, device="cpu", repeats=1)
    H = bench.lottery_models(vocab=65, block_size=33, **TINY)["LSTM"].config["hidden_size"]
    for r in rows:
        P = r["P"]
        assert r["LSTM state bytes"] == 2 * 1 * 2 * H * 4                # h and c: layers x B x H float32
        assert r["KV cache bytes"] == 2 * 1 * 2 * P * 16 * 4             # k and v: n_layer x B x P x d float32
        assert r["no cache bytes"] == 2 * P * 8                          # the token ids, int64
        for name in ("LSTM", "GPT + KV cache", "GPT no cache", "LSTM prefill", "GPT prefill"):
            assert r[f"{name} ms"] > 0
    assert rows[2]["KV cache bytes"] == 8 * rows[0]["KV cache bytes"]
    from seqlab.charlm import count_params
    models = bench.lottery_models(vocab=65, block_size=33, **TINY)
    assert [rows[0][f"{m} weights bytes"] for m in ("LSTM", "GPT")] == [4 * count_params(models[m]) for m in ("LSTM", "GPT")]
    assert "held between tokens (exact)" in capsys.readouterr().out


def test_cli_bench_lottery_and_streaming(capsys, tmp_path):
    import json

    out = tmp_path / "lottery.json"
    assert main(["bench", "lottery", "--sizes", "8", "--batches", "1", "--batch", "1", "--seq-len", "8",
                 "--repeats", "1", "--device", "cpu", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["benchmark"] == "lottery" and record["rows"][0]["T"] == 8
    assert main(["bench", "streaming", "--sizes", "4,8", "--repeats", "1", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "GPT/LSTM" in text and "KV cache KiB" in text
