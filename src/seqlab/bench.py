"""Honest timing: warm-up, device synchronisation, repeats, min and median; peak memory.

    t = timeit(lambda: model(x), device=device)       # {"min": s, "median": s, "times": [...]}

Rules every benchmark of the course follows:

- warm up first (the first calls pay for allocation, kernel selection, lazy init);
- on CUDA, synchronise before reading the clock: kernels run asynchronously, so a
  clock read right after a launch measures the launch, not the work;
- repeat, and report the minimum (the least disturbed run) and the median;
- compare implementations side by side in one run, as ratios: absolute numbers
  depend on the machine, ratios far less. Tests never assert times.

``python -m seqlab bench rnn`` runs :func:`bench_rnn`; ``python -m seqlab bench attention``
runs :func:`bench_attention`; ``python -m seqlab bench gpt`` runs :func:`bench_gpt`;
``python -m seqlab bench long-context`` runs :func:`bench_long_context`;
``python -m seqlab bench generation`` runs :func:`bench_generation`;
``python -m seqlab bench lottery`` runs :func:`bench_lottery_train` and ``python -m seqlab bench streaming``
runs :func:`bench_streaming` (Lab 16: an LSTM against a Transformer of the same size).
"""
from __future__ import annotations

import argparse
import ctypes
import re
import statistics
import sys
import time

import torch


def _device(device=None) -> torch.device:
    """The device asked for, or CUDA when present, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def synchronize(device) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timeit(fn, *, device="cpu", warmup: int = 2, repeats: int = 5) -> dict:
    """Seconds per call of fn(): {"min", "median", "times"} over ``repeats`` timed calls."""
    return timeit_interleaved({"fn": fn}, device=device, warmup=warmup, repeats=repeats)["fn"]


def timeit_interleaved(fns: dict, *, device="cpu", warmup: int = 2, repeats: int = 5) -> dict:
    """:func:`timeit` for several functions side by side: {name: {"min", "median", "times"}}.

    Each fn is warmed up, then every round times each fn once, in turn: a slow spell of the
    machine (another program, a change of clock) falls on all of them alike, which keeps
    their ratios honest on a shared computer.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - t0)
    return {name: {"min": min(t), "median": statistics.median(t), "times": t} for name, t in times.items()}


def _proc_status_bytes(key: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in bytes."""
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def _cpu_peak_supported() -> bool:
    """True on Linux, where the kernel keeps a resettable high-water mark of resident memory."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        _proc_status_bytes("VmHWM")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except (OSError, AttributeError):
        return False


def peak_memory(fn, *, device) -> int | None:
    """Peak bytes that fn() needs above what was in use when it started; None where not measured.

    - CUDA: the caching allocator's peak of allocated bytes (``torch.cuda.max_memory_allocated``).
    - CPU on Linux: the kernel's high-water mark of resident memory (VmHWM), reset just before
      fn() by writing 5 to /proc/self/clear_refs, minus the resident memory (VmRSS) at that
      moment. Free heap memory is first returned to the system (``malloc_trim``), so that fn()
      cannot reuse pages that are already resident and hide its allocations. It counts every
      page fn() touches, not only tensors: small figures (under a megabyte) are noise.
    - Elsewhere (macOS, Windows, MPS): None. The course never reports a number it did not measure.
    """
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    if device.type != "cpu" or not _cpu_peak_supported():
        return None
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:                                  # not glibc: measure anyway, maybe an underestimate
        pass
    base = _proc_status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                 # VmHWM := VmRSS
    fn()
    return max(0, _proc_status_bytes("VmHWM") - base)


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table, numbers right-aligned."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)
    cells = [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- bench rnn

def bench_rnn(hidden_sizes=(64, 128, 256, 512), batch_size: int = 32, seq_len: int = 128,
              device=None, repeats: int = 5, print_table: bool = True) -> list[dict]:
    """Tokens/s of seqlab's from-scratch LSTM layer vs ``torch.nn.LSTM``, same weights.

    For each hidden size H (input size = H, one layer, float32): a training step
    (forward + backward of out.sum()) and an inference forward (no grad) on a batch of
    (batch_size, seq_len). Both layers compute the same function (tests/test_rnn.py);
    the ratio is the price of running the time loop in Python, one small kernel per
    gate operation, instead of torch's fused oneDNN (CPU) or cuDNN (GPU) kernel.
    """
    from .models.rnn import LSTM

    device = _device(device)
    rows = []
    for H in hidden_sizes:
        torch.manual_seed(0)
        ours = LSTM(H, H).to(device)
        ref = ours.to_torch()
        x = torch.randn(batch_size, seq_len, H, device=device)
        tokens = batch_size * seq_len
        row = {"H": H}
        for name, layer in (("seqlab", ours), ("torch", ref)):
            def train_step():
                out, _ = layer(x)
                out.sum().backward()

            def infer():
                with torch.no_grad():
                    layer(x)

            row[f"{name} train tok/s"] = tokens / timeit(train_step, device=device, repeats=repeats)["min"]
            row[f"{name} infer tok/s"] = tokens / timeit(infer, device=device, repeats=repeats)["min"]
        row["train ratio"] = row["torch train tok/s"] / row["seqlab train tok/s"]
        row["infer ratio"] = row["torch infer tok/s"] / row["seqlab infer tok/s"]
        rows.append(row)
    if print_table:
        threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
        print(f"LSTM layer, batch {batch_size} x {seq_len} steps, float32, {device}{threads}; "
              f"tokens/s from the fastest of {repeats} runs; ratio = torch / seqlab")
        print(format_table(rows, ["H", "seqlab train tok/s", "torch train tok/s", "train ratio",
                                  "seqlab infer tok/s", "torch infer tok/s", "infer ratio"]))
    return rows


# ----------------------------------------------------------------------------- bench attention

def bench_attention(lengths=(256, 512, 1024, 2048), batch_size: int = 4, n_heads: int = 4, d_head: int = 16,
                    causal: bool = True, backward: bool = False, device=None, repeats: int = 3,
                    print_table: bool = True) -> list[dict]:
    """Time and peak memory of one attention call against the sequence length n.

    Two implementations of the same function, softmax(q k^T / sqrt(d) + mask) v, on q, k, v of
    shape (batch_size, n_heads, n, d_head), float32:

    - ``seqlab``: :func:`seqlab.models.attention.scaled_dot_product_attention`, which builds
      the (n, n) score and weight matrices of every head, as the equation reads;
    - ``torch``: ``torch.nn.functional.scaled_dot_product_attention``, which on most devices
      runs a fused kernel (FlashAttention-style tiling) that never stores the whole matrix.

    Both do O(n^2 d) work. Memory is where they differ: the first needs O(n^2) bytes per head,
    the second O(n). Rows: n, milliseconds (fastest of ``repeats``) and peak MiB for each (see
    :func:`peak_memory`; None where it cannot be measured), the size of one float32 (B, h, n, n)
    matrix, and the ratios seqlab / torch. With ``backward``, a forward and backward pass.
    """
    import torch.nn.functional as F

    from .models.attention import scaled_dot_product_attention

    device = _device(device)
    impls = {"seqlab": lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=causal)[0],
             "torch": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal)}
    rows = []
    for n in lengths:
        torch.manual_seed(0)
        q, k, v = (torch.randn(batch_size, n_heads, n, d_head, device=device, requires_grad=backward)
                   for _ in range(3))
        row = {"n": n, "n x n matrix MiB": batch_size * n_heads * n * n * 4 / 2**20}
        for name, attend in impls.items():
            def call():
                if backward:
                    attend(q, k, v).sum().backward()
                else:
                    with torch.no_grad():
                        attend(q, k, v)

            row[f"{name} ms"] = timeit(call, device=device, warmup=1, repeats=repeats)["min"] * 1e3
            mem = peak_memory(call, device=device)
            row[f"{name} MiB"] = None if mem is None else mem / 2**20
        row["time ratio"] = row["seqlab ms"] / row["torch ms"]
        measured = row["seqlab MiB"] is not None and row["torch MiB"]
        row["memory ratio"] = row["seqlab MiB"] / row["torch MiB"] if measured else None
        rows.append(row)
    if print_table:
        threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
        what = "forward + backward" if backward else "forward"
        print(f"attention {what}, batch {batch_size} x {n_heads} heads x d_head {d_head}, "
              f"{'causal' if causal else 'no mask'}, float32, {device}{threads}; time: fastest of {repeats}; "
              f"memory: measured peak above the start; ratio = seqlab / torch")
        table = [{c: ("n/a" if v is None else v) for c, v in r.items()} for r in rows]
        print(format_table(table, ["n", "seqlab ms", "torch ms", "time ratio", "seqlab MiB", "torch MiB",
                                   "memory ratio", "n x n matrix MiB"]))
    return rows


# ----------------------------------------------------------------------------- bench gpt

# Peak dense bf16/fp16 tensor throughput (FLOP/s) of common GPUs, from their vendors' data sheets;
# MFU is reported only for a GPU listed here.
PEAK_FLOPS = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "L4": 121e12, "T4": 65e12, "V100": 125e12,
              "A10G": 125e12, "A10": 125e12, "L40S": 362e12, "RTX 4090": 165e12, "RTX 3090": 71e12}

GPT_BENCH_CONFIGS = {   # nanoGPT's shakespeare_char configurations (vocabulary 65)
    "cpu": dict(n_layer=4, n_head=4, d_model=128, block_size=64, batch_size=12),
    "gpu": dict(n_layer=6, n_head=6, d_model=384, block_size=256, batch_size=64),
}


def peak_flops(device) -> float | None:
    """The listed peak bf16 FLOP/s of a CUDA device, or None (CPU, MPS, an unlisted GPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return peak_flops_for_name(torch.cuda.get_device_name(device))


def peak_flops_for_name(name: str) -> float | None:
    """The listed peak for a GPU's name (e.g. "NVIDIA A100-SXM4-80GB"), longest match first."""
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):      # "A100" before "A10", "L40S" before "L4"
        if key in name:
            return PEAK_FLOPS[key]
    return None


def _training_step(model, opt, x, y, amp: bool = False):
    """One full training step as a function: forward, cross-entropy, backward, optimiser step.

    model(x: (B, T)) -> logits (B, T, V); y: (B, T) targets; ``amp`` runs the forward under
    bfloat16 autocast. Used by :func:`bench_gpt` and :func:`bench_lottery_train`.
    """
    def train_step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return train_step


def bench_gpt(config: str = "auto", steps: int = 20, device=None, compile: str = "auto",
              print_table: bool = True, size: dict | None = None) -> list[dict]:
    """Training throughput of seqlab's GPT: tokens/s for each available variant, and MFU on CUDA.

    config: "cpu" or "gpu" (nanoGPT's shakespeare_char sizes; "auto" picks by device), or pass
    ``size`` (n_layer, n_head, d_model, block_size, batch_size). Each variant times ``steps``
    full training steps (forward, backward, AdamW) on random tokens after 3 warm-up steps:

    - ``fp32 eager``: always;
    - ``bf16 eager``: autocast to bfloat16, on CUDA devices that support it;
    - ``bf16 compiled`` / ``fp32 compiled``: ``torch.compile`` (on CUDA by default;
      ``compile="on"`` tries it anywhere, ``"off"`` never). A variant that fails says why.

    MFU (model FLOPs utilisation) = achieved FLOP/s / the GPU's listed peak, with
    :meth:`GPT.flops_per_token`; None where the peak is unknown.
    """
    from .models.gpt import GPT, GPTConfig

    device = _device(device)
    if size is None:
        key = ("gpu" if device.type == "cuda" else "cpu") if config == "auto" else config
        if key not in GPT_BENCH_CONFIGS:
            raise ValueError(f"config must be one of {list(GPT_BENCH_CONFIGS)} or 'auto', got {config!r}")
        size = GPT_BENCH_CONFIGS[key]
    B, T = size["batch_size"], size["block_size"]
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    use_compile = compile == "on" or (compile == "auto" and device.type == "cuda")
    variants = [("fp32 eager", False, False)]
    if bf16:
        variants.append(("bf16 eager", True, False))
    if use_compile:
        variants.append(("bf16 compiled" if bf16 else "fp32 compiled", bf16, True))
    peak = peak_flops(device)
    rows = []
    for name, amp, compiled in variants:
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=65, block_size=T, n_layer=size["n_layer"], n_head=size["n_head"],
                              d_model=size["d_model"], bias=False)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        step_model = model
        if compiled:
            try:
                step_model = torch.compile(model)
            except Exception as err:                              # pragma: no cover (platform-dependent)
                rows.append({"variant": name, "tokens/s": None, "ms/step": None, "MFU": None,
                             "note": f"torch.compile unavailable: {type(err).__name__}"})
                continue
        x = torch.randint(0, 65, (B, T), device=device)
        y = torch.randint(0, 65, (B, T), device=device)

        train_step = _training_step(step_model, opt, x, y, amp)
        try:
            t = timeit(train_step, device=device, warmup=3, repeats=steps)
        except Exception as err:                                  # pragma: no cover (compiler missing, ...)
            rows.append({"variant": name, "tokens/s": None, "ms/step": None, "MFU": None,
                         "note": f"failed: {type(err).__name__}: {str(err)[:80]}"})
            continue
        sec = t["median"]
        tps = B * T / sec
        mfu = tps * model.flops_per_token() / peak if peak else None
        rows.append({"variant": name, "tokens/s": tps, "ms/step": sec * 1e3, "MFU": mfu, "note": ""})
    if print_table:
        from .runtime import describe_device
        where = describe_device(device)
        print(f"GPT training step, {size['n_layer']} layers, {size['n_head']} heads, d {size['d_model']}, "
              f"batch {B} x {T} tokens, {where}; median of {steps} steps after 3 warm-up steps"
              + ("" if peak else "; MFU: n/a (no listed peak FLOP/s for this device)"))
        table = [{"variant": r["variant"],
                  "tokens/s": "n/a" if r["tokens/s"] is None else r["tokens/s"],
                  "ms/step": "n/a" if r["ms/step"] is None else r["ms/step"],
                  "MFU": "n/a" if r["MFU"] is None else f"{r['MFU']:.1%}", "note": r["note"] or "-"} for r in rows]
        print(format_table(table, ["variant", "tokens/s", "ms/step", "MFU", "note"]))
    return rows


# ----------------------------------------------------------------------------- bench long-context

LONG_CONTEXT_OPS = ("attention (SDPA)", "mamba scan, sequential", "mamba scan, parallel",
                    "mamba-2 SSD, chunked", "hyena FFT conv", "linear attention, chunked")
_SHORT = dict(zip(LONG_CONTEXT_OPS, ("attention", "scan/seq", "scan/par", "SSD chunked", "hyena FFT conv",
                                     "linear attention")))


def bench_long_context(lengths=(256, 512, 1024, 2048, 4096, 8192, 16384), width: int = 64, n_heads: int = 4,
                       d_state: int = 16, chunk: int = 64, max_sequential: int = 16384, device=None,
                       repeats: int = 3, print_table: bool = True) -> list[dict]:
    """Forward + backward time and peak memory of each sequence mixer against the length L.

    All five mix the positions of a batch of one sequence of ``width`` channels, float32:

    - ``attention (SDPA)``: ``F.scaled_dot_product_attention``, causal, n_heads heads of width / n_heads;
    - ``mamba scan``: the selective-scan core h_t = Ā_t h_{t-1} + B̄_t x_t on (1, L, width, d_state),
      step by step (:func:`seqlab.scan.scan_sequential`, up to ``max_sequential``) and as the
      parallel scan (:func:`seqlab.scan.scan_parallel`);
    - ``mamba-2 SSD, chunked``: :func:`seqlab.models.mamba.ssd` (one decay per head and step, as in
      Mamba-2) on n_heads heads of width / n_heads channels and state d_state, in chunks of ``chunk``;
    - ``hyena FFT conv``: :func:`seqlab.models.hyena.fft_conv`, one filter of length L per channel;
    - ``linear attention, chunked``: :func:`seqlab.models.linear_attention.retention` in chunks.

    Rows hold L and, per mixer, milliseconds (fastest of ``repeats``) and peak MiB (None where
    not measured or skipped). :func:`crossovers` reads off where each overtakes attention.
    The memory call is also each mixer's warm-up, so the first (shortest) row's memory can
    include one-time allocations (e.g. a library's workspace on first use); read the trend
    from the longer rows.
    """
    from .models.hyena import fft_conv
    from .models.linear_attention import retention
    from .models.mamba import ssd
    from .scan import scan_parallel, scan_sequential
    import torch.nn.functional as F

    device = _device(device)
    d_head = width // n_heads

    def make(L):
        g = torch.Generator(device="cpu").manual_seed(0)
        new = lambda *shape: torch.randn(*shape, generator=g).to(device).requires_grad_()
        qkv = [new(1, n_heads, L, d_head) for _ in range(3)]
        a = torch.rand(1, L, width, d_state, generator=g).to(device).requires_grad_()        # decays in (0, 1)
        b = new(1, L, width, d_state)
        u, h = new(1, width, L), new(width, L)
        xs, Bs, Cs = new(1, L, n_heads, d_head), new(1, L, n_heads, d_state), new(1, L, n_heads, d_state)
        log_a = (-torch.rand(1, L, n_heads, generator=g)).to(device).requires_grad_()       # log decays in (-1, 0)
        return {
            "attention (SDPA)": lambda: F.scaled_dot_product_attention(*qkv, is_causal=True),
            "mamba scan, sequential": lambda: scan_sequential(a, b),
            "mamba scan, parallel": lambda: scan_parallel(a, b),
            "mamba-2 SSD, chunked": lambda: ssd(xs, log_a, Bs, Cs, mode="chunked", chunk=chunk),
            "hyena FFT conv": lambda: fft_conv(u, h),
            "linear attention, chunked": lambda: retention(*qkv, 1.0, mode="chunked", chunk=chunk),
        }

    rows = []
    for L in lengths:
        row = {"L": L}
        for name, fn in make(L).items():
            if name == "mamba scan, sequential" and L > max_sequential:
                row[f"{name} ms"] = row[f"{name} MiB"] = None
                continue
            call = lambda: fn().sum().backward()
            mem = peak_memory(call, device=device)                       # this first call is the warm-up
            row[f"{name} MiB"] = None if mem is None else mem / 2**20
            row[f"{name} ms"] = timeit(call, device=device, warmup=0, repeats=repeats)["min"] * 1e3
        rows.append(row)
    if print_table:
        threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
        print(f"sequence mixers, forward + backward, 1 sequence x {width} channels (attention: {n_heads} heads; "
              f"scan state {d_state}; chunk {chunk}), float32, {device}{threads}; fastest of {repeats}")
        table = [{c: ("-" if v is None else v) for c, v in r.items()} for r in rows]
        for unit in ("ms", "MiB"):
            print(f"\n{unit}:")
            print(format_table([{"L": r["L"], **{_SHORT[n]: r[f"{n} {unit}"] for n in LONG_CONTEXT_OPS}}
                                for r in table], ["L", *_SHORT.values()]))
        for line in crossovers(rows):
            print(line)
    return rows


def crossovers(rows: list[dict], base: str = "attention (SDPA)") -> list[str]:
    """For each mixer, the first measured L from which it is faster than ``base`` at every longer L."""
    lines = []
    for name in LONG_CONTEXT_OPS:
        if name == base:
            continue
        pairs = [(r["L"], r[f"{name} ms"], r[f"{base} ms"]) for r in rows if r.get(f"{name} ms") is not None]
        if not pairs:
            continue
        faster = [L for i, (L, t, t0) in enumerate(pairs) if all(tt < tt0 for _, tt, tt0 in pairs[i:])]
        if faster:
            lines.append(f"{name}: faster than {base} from L = {faster[0]:,} on (of the lengths measured)")
        else:
            lines.append(f"{name}: slower than {base} at the longest length measured, L = {pairs[-1][0]:,}")
    return lines


# ----------------------------------------------------------------------------- bench generation

def _state_bytes(state) -> int:
    """Bytes of every tensor in a (nested) state: the KV cache or the recurrent state."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_state_bytes(v) for v in state)
    return 0


def bench_generation(positions=(256, 1024, 4096, 8192), d_model: int = 128, n_layer: int = 4, vocab: int = 65,
                     device=None, repeats: int = 5, print_table: bool = True) -> list[dict]:
    """Time of one generated token, and the size of what is kept for the next, at each position.

    Three language models of the same width and depth: a GPT with a KV cache (the cache grows
    with the position), Mamba and RWKV-7 (a fixed-size recurrent state). Each reads a random
    prompt up to the position (GPT in one pass, the recurrent models token by token, which
    is also how they would generate it), then the next token's ``step`` is timed. Rows:
    position, and per model ms per token (fastest of ``repeats``) and state MiB (the bytes of
    the cache or state tensors, counted exactly).
    """
    from .models.gpt import GPT, GPTConfig
    from .models.mamba import Mamba, MambaConfig
    from .models.rwkv import RWKV7, RWKV7Config

    device = _device(device)
    torch.manual_seed(0)
    models = {
        "GPT + KV cache": GPT(GPTConfig(vocab_size=vocab, block_size=max(positions) + 1, n_layer=n_layer,
                                        n_head=4, d_model=d_model)),
        "Mamba": Mamba(MambaConfig(vocab_size=vocab, d_model=d_model, n_layer=n_layer)),
        "RWKV-7": RWKV7(RWKV7Config(vocab_size=vocab, d_model=d_model, n_layer=n_layer, head_size=32,
                                    d_decay=16, d_a=16, d_v=8, d_gate=32)),
    }
    prompt = torch.randint(vocab, (1, max(positions)), device=device)
    rows = [{"position": P} for P in positions]
    with torch.no_grad():
        for name, model in models.items():
            model.to(device).eval()
            state, done = None, 0
            for row in rows:
                P = row["position"]
                if name.startswith("GPT"):
                    _, state = model(prompt[:, :P], return_state=True)
                else:
                    for t in range(done, P):                                   # read the prompt token by token
                        _, state = model.step(prompt[:, t], state)
                    done = P
                token = prompt[:, P - 1]
                row[f"{name} ms"] = timeit(lambda: model.step(token, state), device=device, warmup=1,
                                           repeats=repeats)["min"] * 1e3
                row[f"{name} state MiB"] = _state_bytes(state) / 2**20
    if print_table:
        threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
        print(f"one generated token at each position: {n_layer} layers, width {d_model}, float32, "
              f"{device}{threads}; fastest of {repeats}")
        print(format_table(rows, list(rows[0])))
    return rows


# ----------------------------------------------------------------------------- bench lottery (Lab 16)

def matmul_peak(device=None, sizes=None, dtype=None, repeats: int = 5) -> dict:
    """A device's practical peak: the best FLOP/s of one large dense matrix product.

    Times C = A B for square n x n matrices (2 n^3 FLOPs: each multiply-add counts two) for every
    n in ``sizes`` with :func:`timeit` (fastest of ``repeats``) and returns the best as
    {"flops": FLOP/s, "n": n, "dtype": "float32" | "bfloat16"}. Defaults: n in (256, 512, 1024)
    and float32 on a CPU; n in (2048, 4096, 8192) and bfloat16 (where supported) on a GPU.

    Vendors list a peak for GPUs (:data:`PEAK_FLOPS`), not for the CPU a lab runs on; there this
    measured figure is the ceiling that utilisation is compared against. It is a practical
    ceiling (what the best-tuned kernel of the library reaches), below the theoretical one.
    """
    device = _device(device)
    gpu = device.type == "cuda"
    if dtype is None:
        dtype = torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else torch.float32
    best = {"flops": 0.0, "n": None, "dtype": str(dtype).removeprefix("torch.")}
    for n in sizes or ((2048, 4096, 8192) if gpu else (256, 512, 1024)):
        a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
        flops = 2 * n**3 / timeit(lambda: a @ b, device=device, warmup=2, repeats=repeats)["min"]
        if flops > best["flops"]:
            best.update(flops=flops, n=n)
    return best


def copy_bandwidth(device=None, mib: int = 256, repeats: int = 5) -> float:
    """A device's practical memory bandwidth in bytes/s: the fastest copy of a ``mib`` MiB tensor
    into another (every byte read once and written once: 2 x mib MiB of traffic per copy)."""
    device = _device(device)
    src = torch.ones(mib * 2**18, device=device)                 # 2**18 float32 = 1 MiB
    dst = torch.empty_like(src)
    return 2 * mib * 2**20 / timeit(lambda: dst.copy_(src), device=device, warmup=2, repeats=repeats)["min"]


def lottery_models(vocab: int = 65, n_layer: int = 4, n_head: int = 4, d_model: int = 128,
                   block_size: int = 1024, lstm_layers: int = 1, seed: int = 0) -> dict:
    """The two contestants at equal parameter count: {"LSTM": RecurrentLM, "GPT": GPT}, on the CPU.

    - GPT: Lab 8's shape by default (4 blocks, 4 heads, width 128, no biases), attention through
      ``F.scaled_dot_product_attention``; a context of ``block_size`` positions.
    - LSTM: ``RecurrentLM(cell="lstm", impl="torch")``, i.e. ``torch.nn.LSTM`` with its fused
      kernels (oneDNN on a CPU, cuDNN on a GPU), ``lstm_layers`` layers, embedding size = hidden
      size H, where :func:`seqlab.models.rnn.hidden_size_for` picks the H whose parameter count
      is nearest the GPT's.

    The GPT's count is ``GPT.num_params()`` (the tied embedding once, the position table left
    out): the count that does not change with ``block_size``. Compare the two with
    :func:`seqlab.charlm.count_params`.
    """
    from .charlm import count_params
    from .models.gpt import GPT, GPTConfig
    from .models.rnn import RecurrentLM, hidden_size_for

    torch.manual_seed(seed)
    gpt = GPT(GPTConfig(vocab_size=vocab, block_size=block_size, n_layer=n_layer, n_head=n_head,
                        d_model=d_model, bias=False))
    H = hidden_size_for(vocab, "lstm", count_params(gpt), num_layers=lstm_layers)
    lstm = RecurrentLM(vocab, "lstm", hidden_size=H, num_layers=lstm_layers, impl="torch")
    return {"LSTM": lstm, "GPT": gpt}


def lstm_flops_per_token(model) -> int:
    """Training FLOPs per token of a recurrent LM (``RecurrentLM``): 6 x the entries of its
    recurrent weight matrices.

    Every entry of weight_ih and weight_hh (the four gates' blocks, every layer) does one
    multiply-add (2 FLOPs) per token in the forward pass and two in the backward pass (one for
    the gradient of its input, one for its own gradient: 4 FLOPs), the same 6 N rule as
    :meth:`GPT.flops_per_token`. Left out, as GPT.flops_per_token leaves them out: the embedding
    (a table look-up), the output head (the GPT's is tied to its embedding), the biases and the
    gates' elementwise work (O(H) per token against O(H^2)). No term grows with the length: a
    recurrence does the same work at every step, unlike attention.
    """
    return 6 * sum(p.numel() for name, p in model.rnn.named_parameters() if "weight" in name)


def _fmt_percent(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _runs_under_autocast(model, vocab: int) -> bool:
    """Whether a forward and backward of ``model`` run under bfloat16 autocast on its device (some
    fused kernels, e.g. an older cuDNN's LSTM, have no bfloat16 version)."""
    device = next(model.parameters()).device
    x = torch.randint(vocab, (2, 4), device=device)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            model(x).float().sum().backward()
    except RuntimeError:
        return False
    finally:
        model.zero_grad(set_to_none=True)
    return True


def bench_lottery_train(lengths=(64, 128, 256, 512, 1024), batch_sizes=(1, 4, 16, 64), batch_size: int = 16,
                        seq_len: int = 256, n_layer: int = 4, n_head: int = 4, d_model: int = 128, vocab: int = 65,
                        lstm_layers: int = 1, device=None, repeats: int = 5, warmup: int = 2, memory: bool = True,
                        practical_peak: float | None = None, print_table: bool = True) -> list[dict]:
    """One training step of an LSTM and a Transformer of the same size: time, tokens/s, FLOP/s, MFU, memory.

    The models of :func:`lottery_models` (an ``nn.LSTM`` LM and a GPT with SDPA attention, equal
    parameter counts) each take full training steps on random tokens: forward, cross-entropy,
    backward, AdamW step (:func:`_training_step`; on CUDA under bfloat16 autocast, as
    :func:`bench_gpt`, for each model whose kernels allow it, else float32: see the rows'
    ``f"{m} precision"``). Two sweeps (a configuration in both is measured once):

    - ``sweep="length"``: every T in ``lengths`` at batch ``batch_size``;
    - ``sweep="batch"``: every B in ``batch_sizes`` at length ``seq_len``.

    Rows: sweep, T, B and, for each model m in ("LSTM", "GPT"):

    - ``f"{m} ms"`` (median over ``repeats`` steps after ``warmup``) and ``f"{m} ms min"``, the two
      models' steps interleaved (:func:`timeit_interleaved`);
    - ``f"{m} tok/s"`` = B T / the fastest step (the least disturbed, as the rules above say);
    - ``f"{m} FLOP/s"`` = tok/s x training FLOPs per token (:func:`lstm_flops_per_token`;
      :meth:`GPT.flops_per_token` at context T, which includes attention's 12 L d T);
    - ``f"{m} MFU"`` = FLOP/s / the GPU's listed peak (:data:`PEAK_FLOPS`), None where none is listed
      (every CPU);
    - ``f"{m} util"`` = FLOP/s / the practical peak (``practical_peak``, else :func:`matmul_peak`
      measured here in the precision of the step);
    - ``f"{m} MiB"``: peak memory of one step above what was in use (:func:`peak_memory`;
      None where not measured or ``memory=False``);

    and ``"GPT/LSTM"`` = GPT tok/s / LSTM tok/s (above 1: the Transformer trains faster), plus the
    two parameter counts ``"LSTM params"`` and ``"GPT params"``.
    """
    from .charlm import count_params

    device = _device(device)
    models = lottery_models(vocab, n_layer, n_head, d_model, max(max(lengths), seq_len), lstm_layers)
    params = {m: count_params(model) for m, model in models.items()}
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    amp = {m: bf16 and _runs_under_autocast(model.to(device), vocab) for m, model in models.items()}
    flops_per_token = {"LSTM": lambda T: lstm_flops_per_token(models["LSTM"]),
                       "GPT": lambda T: models["GPT"].flops_per_token(T)}
    listed = peak_flops(device)
    practical = practical_peak or matmul_peak(device, repeats=repeats)["flops"]
    opts = {}
    for m, model in models.items():
        model.to(device).train()
        opts[m] = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    measured, rows = {}, []
    for sweep, T, B in [("length", T, batch_size) for T in lengths] + [("batch", seq_len, B) for B in batch_sizes]:
        if (T, B) not in measured:
            x, y = torch.randint(vocab, (2, B, T), generator=g).to(device)
            steps = {m: _training_step(model, opts[m], x, y, amp[m]) for m, model in models.items()}
            times = timeit_interleaved(steps, device=device, warmup=warmup, repeats=repeats)
            row = {}
            for m, step in steps.items():
                t = times[m]
                tps = B * T / t["min"]
                achieved = tps * flops_per_token[m](T)
                mem = peak_memory(step, device=device) if memory else None
                row.update({f"{m} ms": t["median"] * 1e3, f"{m} ms min": t["min"] * 1e3, f"{m} tok/s": tps,
                            f"{m} FLOP/s": achieved, f"{m} MFU": achieved / listed if listed else None,
                            f"{m} util": achieved / practical, f"{m} MiB": None if mem is None else mem / 2**20,
                            f"{m} precision": "bf16 autocast" if amp[m] else "float32"})
            row["GPT/LSTM"] = row["GPT tok/s"] / row["LSTM tok/s"]
            measured[T, B] = row
        rows.append({"sweep": sweep, "T": T, "B": B, **measured[T, B], "LSTM params": params["LSTM"],
                     "GPT params": params["GPT"]})
    if print_table:
        from .runtime import describe_device
        lstm = models["LSTM"]
        precision = ", ".join(f"{m} {'bfloat16 autocast' if amp[m] else 'float32'}" for m in models)
        print(f"training step (forward, cross-entropy, backward, AdamW) on random tokens, "
              f"{precision}, {describe_device(device)}; tokens/s from the fastest of {repeats} steps "
              f"(the two models interleaved) after {warmup} warm-up steps")
        print(f"LSTM: nn.LSTM, {lstm.config['num_layers']} layer(s), H {lstm.config['hidden_size']}, "
              f"{params['LSTM']:,} parameters | GPT: {n_layer} layers, {n_head} heads, d {d_model}, SDPA, "
              f"{params['GPT']:,} parameters")
        print(f"util = achieved FLOP/s / practical peak ({practical / 1e9:,.1f} GFLOP/s, the best dense matmul "
              f"measured here); MFU = / listed peak" + (f" ({listed / 1e12:,.0f} TFLOP/s)" if listed
                                                         else ": n/a (no listed peak for this device)"))
        for sweep, key in (("length", "T"), ("batch", "B")):
            table = [{"T": r["T"], "B": r["B"], "LSTM tok/s": r["LSTM tok/s"], "GPT tok/s": r["GPT tok/s"],
                      "GPT/LSTM": r["GPT/LSTM"], "LSTM util": _fmt_percent(r["LSTM util"]),
                      "GPT util": _fmt_percent(r["GPT util"]), "LSTM MFU": _fmt_percent(r["LSTM MFU"]),
                      "GPT MFU": _fmt_percent(r["GPT MFU"]),
                      "LSTM MiB": "n/a" if r["LSTM MiB"] is None else r["LSTM MiB"],
                      "GPT MiB": "n/a" if r["GPT MiB"] is None else r["GPT MiB"]}
                     for r in rows if r["sweep"] == sweep]
            if table:
                print(f"\nagainst {'the sequence length T' if key == 'T' else 'the batch size B'}:")
                print(format_table(table, list(table[0])))
    return rows


def bench_streaming(prefixes=(16, 64, 256, 1024, 4096), n_layer: int = 4, n_head: int = 4, d_model: int = 128,
                    vocab: int = 65, lstm_layers: int = 1, batch_size: int = 1, device=None, repeats: int = 5,
                    memory: bool = True, print_table: bool = True) -> list[dict]:
    """Streaming: the cost of the next token once a prefix of P tokens has been read, LSTM vs GPT.

    The models of :func:`lottery_models` (equal parameter counts), in inference mode, on
    ``batch_size`` streams of random tokens. At every prefix length P the rows hold:

    - ``"LSTM ms"``: one LSTM step (``model.step``) from the state (h, c) left by the prefix;
    - ``"GPT + KV cache ms"``: one GPT step attending to the cached keys and values of the P
      earlier positions (this cache grows by concatenation, so a step also copies it);
    - ``"GPT no cache ms"``: the GPT re-reading all P + 1 tokens, what it must do without a cache;
    - ``"LSTM prefill ms"``, ``"GPT prefill ms"``: reading the prefix of P tokens in one call (the
      time before the first new token): the LSTM's time loop inside the fused kernel, the GPT's
      positions in parallel;

    each the fastest of ``repeats`` calls after one warm-up. Bytes held between two tokens, counted
    exactly from the tensors (:func:`_state_bytes`):

    - ``"LSTM state bytes"`` = 2 x layers x B x H x 4: h and c in float32, the same at every P;
    - ``"KV cache bytes"`` = 2 x n_layer x B x P x d_model x 4: keys and values, linear in P;
    - ``"no cache bytes"``: the P token ids (int64) a cache-less GPT keeps in order to re-read them;

    and the weights' bytes of each model (``"LSTM weights bytes"``, ``"GPT weights bytes"``: the
    parameters of :func:`seqlab.charlm.count_params` in float32, so without the GPT's position
    table, whose size is set here by the longest prefix, not by the model). With ``memory``, also the measured peak of each next-token
    call (``"LSTM step MiB"``, ``"GPT + KV cache step MiB"``, ``"GPT no cache step MiB"``; see
    :func:`peak_memory`: None where not measured; on a CPU, figures under a MiB are noise).
    """
    from .charlm import count_params

    device = _device(device)
    models = lottery_models(vocab, n_layer, n_head, d_model, max(prefixes) + 1, lstm_layers)
    lstm, gpt = (models[m].to(device).eval() for m in ("LSTM", "GPT"))
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(vocab, (batch_size, max(prefixes) + 1), generator=g).to(device)
    weights = {m: count_params(model) * 4 for m, model in models.items()}             # float32
    rows = []
    with torch.no_grad():
        for P in prefixes:
            prefix, token = prompt[:, :P], prompt[:, P]
            _, lstm_state = lstm(prefix, return_state=True)
            _, cache = gpt(prefix, return_state=True)
            calls = {"LSTM": lambda: lstm.step(token, lstm_state),
                     "GPT + KV cache": lambda: gpt.step(token, cache),
                     "GPT no cache": lambda: gpt(prompt[:, :P + 1])[:, -1],
                     "LSTM prefill": lambda: lstm(prefix, return_state=True),
                     "GPT prefill": lambda: gpt(prefix, return_state=True)}
            row = {"P": P}
            for name, call in calls.items():
                row[f"{name} ms"] = timeit(call, device=device, warmup=1, repeats=repeats)["min"] * 1e3
            row.update({"LSTM state bytes": _state_bytes(lstm_state), "KV cache bytes": _state_bytes(cache["kv"]),
                        "no cache bytes": _state_bytes(prompt[:, :P]), "LSTM weights bytes": weights["LSTM"],
                        "GPT weights bytes": weights["GPT"]})
            for name in ("LSTM", "GPT + KV cache", "GPT no cache"):
                mem = peak_memory(calls[name], device=device) if memory else None
                row[f"{name} step MiB"] = None if mem is None else mem / 2**20
            rows.append(row)
    if print_table:
        from .runtime import describe_device
        print(f"streaming, {batch_size} stream(s): the next token after a prefix of P tokens, inference, float32, "
              f"{describe_device(device)}; fastest of {repeats}. LSTM H {lstm.config['hidden_size']}; "
              f"GPT {n_layer} layers, d {d_model}")
        print(format_table(rows, ["P", "LSTM ms", "GPT + KV cache ms", "GPT no cache ms", "LSTM prefill ms",
                                  "GPT prefill ms"]))
        kib = [{"P": r["P"], **{k.replace("bytes", "KiB"): r[k] / 2**10
                                for k in ("LSTM state bytes", "KV cache bytes", "no cache bytes")}} for r in rows]
        print("\nheld between tokens (exact):")
        print(format_table(kib, list(kib[0])))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqlab bench", description="side-by-side benchmarks")
    parser.add_argument("which", choices=["rnn", "attention", "gpt", "long-context", "generation", "lottery",
                                          "streaming"])
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: fastest present)")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated; rnn: hidden sizes (default 64,128,256,512); "
                             "attention: sequence lengths (default 256,512,1024,2048); "
                             "long-context: lengths (default 256,...,16384); "
                             "generation: positions (default 256,1024,4096,8192); "
                             "lottery: sequence lengths (default 64,128,256,512,1024); "
                             "streaming: prefix lengths (default 16,64,256,1024,4096)")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (rnn 32, attention 4, lottery 16 for the length sweep, streaming 1)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="sequence length (rnn 128; lottery 256 for the batch sweep)")
    parser.add_argument("--batches", default=None,
                        help="lottery: comma-separated batch sizes of the batch sweep (default 1,4,16,64)")
    parser.add_argument("--lstm-layers", type=int, default=1, help="lottery, streaming: layers of the LSTM")
    parser.add_argument("--heads", type=int, default=4, help="attention: number of heads")
    parser.add_argument("--d-head", type=int, default=16, help="attention: width of each head")
    parser.add_argument("--backward", action="store_true", help="attention: time forward + backward")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (rnn 5, attention 3, gpt 20 steps)")
    parser.add_argument("--config", default="auto", help="gpt: nanoGPT's 'cpu' or 'gpu' shakespeare_char size")
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                        help="gpt: torch.compile (auto: on CUDA only)")
    parser.add_argument("--max-sequential", type=int, default=16384,
                        help="long-context: longest L for the step-by-step scan (default 16384)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="long-context, generation, lottery, streaming: also write the rows and the "
                             "device to PATH")
    args = parser.parse_args(argv)
    rows = None
    if args.which == "lottery":
        lengths = tuple(int(s) for s in (args.sizes or "64,128,256,512,1024").split(","))
        batches = tuple(int(s) for s in (args.batches or "1,4,16,64").split(","))
        rows = bench_lottery_train(lengths, batches, batch_size=args.batch or 16, seq_len=args.seq_len or 256,
                                   lstm_layers=args.lstm_layers, device=args.device, repeats=args.repeats or 5)
    elif args.which == "streaming":
        prefixes = tuple(int(s) for s in (args.sizes or "16,64,256,1024,4096").split(","))
        rows = bench_streaming(prefixes, lstm_layers=args.lstm_layers, batch_size=args.batch or 1,
                               device=args.device, repeats=args.repeats or 5)
    elif args.which == "generation":
        positions = tuple(int(s) for s in (args.sizes or "256,1024,4096,8192").split(","))
        rows = bench_generation(positions, device=args.device, repeats=args.repeats or 5)
    elif args.which == "long-context":
        lengths = tuple(int(s) for s in (args.sizes or "256,512,1024,2048,4096,8192,16384").split(","))
        rows = bench_long_context(lengths, max_sequential=args.max_sequential, device=args.device,
                                  repeats=args.repeats or 3)
    elif args.which == "gpt":
        bench_gpt(args.config, args.repeats or 20, args.device, args.compile)
    elif args.which == "rnn":
        sizes = tuple(int(s) for s in (args.sizes or "64,128,256,512").split(","))
        bench_rnn(sizes, args.batch or 32, args.seq_len or 128, args.device, args.repeats or 5)
    else:
        lengths = tuple(int(s) for s in (args.sizes or "256,512,1024,2048").split(","))
        bench_attention(lengths, args.batch or 4, args.heads, args.d_head, backward=args.backward,
                        device=args.device, repeats=args.repeats or 3)
    if args.json and rows is not None:
        save_results(args.json, args.which, rows, args.device)
    return 0


def save_results(path, which: str, rows: list[dict], device=None) -> None:
    """Write a benchmark's rows with the device, torch version and date, for a lab to plot later."""
    import datetime
    import json

    from .runtime import describe_device

    device = _device(device)
    record = {"benchmark": which, "device": describe_device(device), "torch": torch.__version__,
              "threads": torch.get_num_threads() if device.type == "cpu" else None,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "rows": rows}
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
