"""One training loop for every language model of the course.

Every model in ``seqlab.models`` maps token ids to next-token logits,
``model(idx: (B, T)) -> logits: (B, T, V)``, so one loop trains them all:

    cfg = TrainConfig(max_steps=2000, lr=1e-3, warmup_steps=100, ckpt_path="ckpt/gpt.pt")
    result = train(model, get_batch, cfg)           # get_batch(split) -> (x, y), both (B, T)
    result = train(model, get_batch, cfg, resume=True)   # after a crash: carries on exactly

What one step does, top to bottom (the order matters, see the comments):

    x, y   = get_batch("train")                      # (B, T), (B, T)
    loss   = cross_entropy(model(x), y)              # autocast to bf16/fp16 on CUDA only
    loss.backward()                                  # (scaled, when fp16 needs a GradScaler)
    clip the gradient norm to grad_clip              # tames exploding gradients (RNN chapter)
    AdamW step with lr = lr * lr_factor(step)        # linear warm-up, then cosine (or inverse-sqrt) decay

Truncated backpropagation through time (``tbptt=True``, Part II): ``get_batch`` is a
``seqlab.data.StreamBatcher``, whose consecutive windows continue each other, and the
model is called as ``logits, state = model(x, state, return_state=True)``. The final
state of one window is the initial state of the next, detached, so the forward pass
sees the whole past while gradients flow back at most one window. Evaluation then walks
the first ``eval_batches`` windows of each split in order, carrying the state too.

Several processes (``torchrun --nproc_per_node=N script.py``, after
:func:`distributed_setup`): the model is wrapped in PyTorch's
``DistributedDataParallel``, every process draws the same *global* batch from
``get_batch`` (all seeded alike) and trains on its own 1/N of the rows; DDP
averages the gradients, so each update equals the one-process update on the whole
batch whenever every shard holds the same number of loss terms (language-model
windows do). Losses are averaged over the processes; only rank 0 shows progress
and writes checkpoints.

Every ``eval_every`` steps (and at the last step) it measures the mean loss
on ``eval_batches`` batches of each split, and it writes checkpoints
atomically. A checkpoint holds everything the next step depends on: weights,
optimizer moments, scheduler, GradScaler and *every random number generator*
(python, numpy, torch, CUDA), because ``get_batch`` and dropout draw from
them. Restoring all of it makes an interrupted-then-resumed run reproduce the
uninterrupted one bit for bit on CPU.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

AMP_MODES = ("auto", "off")
SCHEDULES = ("cosine", "inverse_sqrt")


@dataclass
class TrainConfig:
    """Everything that decides a run, saved in every checkpoint (as a dict)."""
    max_steps: int
    lr: float = 3e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 0
    schedule: str = "cosine"        # after warm-up: "cosine" decay, or "inverse_sqrt" (Vaswani et al. 2017)
    min_lr_ratio: float = 0.1       # cosine decays lr to lr * min_lr_ratio at the last step
    grad_clip: float | None = 1.0   # max global grad norm; None = no clipping
    eval_every: int = 100           # also evaluates at the last step; 0 = only there
    eval_batches: int = 10
    ckpt_path: str | None = None    # where to write checkpoints (atomically)
    ckpt_every: int = 0             # 0 = only at the end (if ckpt_path)
    amp: str = "auto"               # "auto": bf16 (or fp16 + GradScaler) on CUDA, never on CPU/MPS; "off"
    tbptt: bool = False             # carry the recurrent state across windows of a StreamBatcher
    progress: bool = True           # tqdm bar with live loss / lr


@dataclass
class TrainResult:
    """What train() returns; history holds plain python floats, ready to plot."""
    history: dict[str, list]        # step, train_loss, lr, grad_norm (every step); eval_step, val_loss,
                                    # eval_train_loss, eval_seconds (training time so far, evaluations left out)
    final_val_loss: float | None    # the last evaluation's val loss (None if none ran)
    steps_done: int                 # optimizer steps taken in total, including resumed ones
    wall_time_s: float              # time spent in this call
    tokens_per_s: float             # training tokens per second in this call
    resumed_from: int = 0           # step the run resumed from (0 = fresh start)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr for the update with 0-based index ``step``.

    Warm-up: (step + 1) / warmup_steps, rising linearly to 1 (never 0, so the
    first update moves). Then, with schedule="cosine", half a cosine from 1 down
    to min_lr_ratio, which the last update (step = max_steps - 1) reaches exactly.

    schedule="inverse_sqrt" is the Transformer's schedule (Vaswani et al. 2017, eq. 3),
    lrate = d_model^-0.5 * min(n^-0.5, n * warmup^-1.5) for the n-th update (n = step + 1),
    written relative to its peak at n = warmup, so that cfg.lr is the peak learning
    rate: factor = min(n / warmup, sqrt(warmup / n)). (The paper's peak is
    d_model^-0.5 * warmup^-0.5, e.g. 7e-4 for d_model = 512 and warmup = 4000.)
    """
    if cfg.schedule == "inverse_sqrt":
        n, w = step + 1, max(1, cfg.warmup_steps)
        return min(n / w, math.sqrt(w / n))
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    decay_steps = max(1, cfg.max_steps - 1 - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))          # 1 -> 0
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW that decays only matrices (dim >= 2: weights, embeddings), as nanoGPT does.

    Biases and norm gains are few and shift or scale activations; pulling them
    to zero only hurts, so they get weight_decay = 0. So does any parameter a model
    marks with ``p._no_weight_decay = True``, the convention of the Mamba reference
    code, whose A_log matrix holds decay rates, not weights: pulling log-rates to zero
    would pull every rate to 1.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = lambda p: p.dim() >= 2 and not getattr(p, "_no_weight_decay", False)
    groups = [
        {"params": [p for p in params if decay(p)], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if not decay(p)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def default_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in nats. logits: (B, T, V), y: (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


# ----------------------------------------------------------------------------- RNG state
# torch.load(weights_only=True) only unpickles tensors and plain containers, so
# numpy's ndarray state and python's tuples of ints become lists.

def get_rng_state() -> dict:
    version, internal, gauss = random.getstate()
    name, keys, *rest = np.random.get_state()          # rest: pos, has_gauss, cached_gaussian
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), *rest],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(obj: dict, path: str) -> None:
    """Write ``obj`` to ``path`` so that ``path`` is always either the old or the new file.

    A crash during torch.save would otherwise leave a truncated file and lose
    both checkpoints. We write a temporary file in the same directory (same
    file system, so the rename is atomic), then os.replace it over the old one.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())    # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def load_checkpoint(path: str) -> dict:
    """Read a checkpoint written by ``train``, with a clear error if it is damaged."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [""])[0][:120]   # torch's messages run long
        detail = f"{type(e).__name__}: {reason}" if reason else type(e).__name__
        raise ValueError(f"checkpoint {path!r} is unreadable, truncated or corrupted "
                         f"({detail}). Delete it to start fresh.") from e
    needed = {"model", "optimizer", "scheduler", "rng", "step", "history"}
    if not isinstance(ckpt, dict) or not needed <= ckpt.keys():
        raise ValueError(f"{path!r} is not a checkpoint written by seqlab.train.train")
    return ckpt


# ----------------------------------------------------------------------------- several processes

def distributed_setup() -> tuple[int, int, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment: (rank, world size, device).

    One process per GPU with NCCL (device cuda:LOCAL_RANK), or CPU processes with gloo.
    Outside torchrun (no WORLD_SIZE in the environment) it does nothing and returns
    (0, 1, None). Call :func:`distributed_cleanup` at the end.
    """
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, None
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def distributed_cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """(rank, number of processes): (0, 1) unless a process group is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _shard(batch, rank: int, size: int):
    """This process's rows of a global batch: rows rank*B/size .. (rank+1)*B/size of every tensor."""
    def rows(t):
        if t.size(0) % size:
            raise ValueError(f"a batch of {t.size(0)} rows cannot be split evenly over {size} processes")
        n = t.size(0) // size
        return t[rank * n:(rank + 1) * n]
    return _map_state(rows, batch)


def _mean_over_processes(value: float, size: int, device) -> float:
    if size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / size


# ----------------------------------------------------------------------------- the loop

def _map_state(fn, state):
    """fn applied to every tensor of a state or batch (nested tuples, lists and dicts of
    tensors; None and other leaves pass through unchanged)."""
    if isinstance(state, (tuple, list)):
        return type(state)(_map_state(fn, s) for s in state)
    if isinstance(state, dict):
        return {k: _map_state(fn, v) for k, v in state.items()}
    return fn(state) if isinstance(state, torch.Tensor) else state


def _forward(model, x):
    """model(x), or model(*x) when the batch's input is a tuple (e.g. a translation
    batch's (src, src_mask, tgt_in))."""
    return model(*x) if isinstance(x, tuple) else model(x)


def detach_state(state):
    """A carried recurrent state (tensor, tuple or list of tensors, or None) cut from its graph."""
    return _map_state(torch.Tensor.detach, state)


@torch.no_grad()
def stream_loss(model, windows, loss_fn=None, device=None, autocast=contextlib.nullcontext) -> float:
    """Mean per-token loss over consecutive windows, carrying the model's state between them.

    windows: an iterable of (x, y), e.g. ``StreamBatcher.windows("val")``, in which window
    k+1 continues window k; model(x, state, return_state=True) -> (logits, state).
    With every window of a split, this is the loss of (almost) every token of it, each
    predicted from its whole past in its stream: the number to compare with an n-gram's.
    """
    loss_fn = loss_fn or default_loss
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    state, total, count = None, 0.0, 0
    for x, y in windows:
        x, y = x.to(device), y.to(device)
        with autocast():
            logits, state = model(x, state, return_state=True)
            total += loss_fn(logits, y).item() * y.numel()
        count += y.numel()
    model.train(was_training)
    if count == 0:
        raise ValueError("stream_loss got no windows")
    return total / count


@torch.no_grad()
def evaluate(model, get_batch, loss_fn, n_batches: int, device, autocast,
             tbptt: bool = False) -> dict[str, float]:
    """Mean loss over n_batches of each split, with dropout off (model.eval()).

    With tbptt, the batches are the first n_batches windows of each split, in order and
    with the state carried (the same windows at every evaluation).
    """
    model.eval()
    rank, size = world()
    out = {}
    for split in ("train", "val"):
        if tbptt:
            out[split] = stream_loss(model, get_batch.windows(split, n_batches), loss_fn, device, autocast)
            continue
        losses = []
        for _ in range(n_batches):
            x, y = _shard(get_batch(split), rank, size)
            x, y = _map_state(lambda t: t.to(device), x), y.to(device)
            with autocast():
                losses.append(loss_fn(_forward(model, x), y).item())
        out[split] = _mean_over_processes(sum(losses) / len(losses), size, device)
    model.train()
    return out


def train(model, get_batch, cfg: TrainConfig, *, device=None, loss_fn=None,
          resume: bool = False, stop_after: int | None = None) -> TrainResult:
    """Train ``model`` for cfg.max_steps AdamW steps on batches from ``get_batch``.

    model:      any nn.Module with model(x) -> logits (B, T, V)
                (with cfg.tbptt: model(x, state, return_state=True) -> (logits, state));
                if it has extra_loss() (-> scalar or None), that is added to the loss it is
                trained on; if it has after_step(), that is called after each update
    get_batch:  get_batch(split) -> (x, y), split in {"train", "val"}; x may be a tuple of
                tensors, then the model is called as model(*x) (translation: (src, src_mask,
                tgt_in), see seqlab.data.TranslationBatcher); it should draw
                its randomness from torch's global RNG, which checkpoints restore.
                If it has state_dict()/load_state_dict() (StreamBatcher's cursors),
                checkpoints save and restore that too. cfg.tbptt needs a StreamBatcher.
    device:     where to train; None = wherever the model's parameters already are
    loss_fn:    loss_fn(logits, y) -> scalar; default: cross-entropy over (B*T, V)
    resume:     continue from cfg.ckpt_path if that file exists (else start fresh)
    stop_after: stop after this step, as if interrupted (checkpoints there if ckpt_path)
    """
    if cfg.max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {cfg.max_steps}")
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose one of {SCHEDULES}")
    if cfg.amp not in AMP_MODES:
        raise ValueError(f"unknown amp mode {cfg.amp!r}; choose one of {AMP_MODES}")
    if resume and cfg.ckpt_path is None:
        raise ValueError("resume=True needs cfg.ckpt_path")
    if cfg.tbptt and not all(hasattr(get_batch, a) for a in ("windows", "starts_new_pass")):
        raise ValueError("tbptt=True needs consecutive windows: pass a seqlab.data.StreamBatcher "
                         "as get_batch (random windows do not continue each other)")
    stateful_batcher = hasattr(get_batch, "state_dict") and hasattr(get_batch, "load_state_dict")
    loss_fn = loss_fn or default_loss
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    rank, n_proc = world()
    if n_proc > 1 and cfg.tbptt:
        raise ValueError("tbptt=True is not supported with several processes")
    # several processes: DDP averages the gradients of the shards during backward()
    net = model if n_proc == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None)

    # Mixed precision only on CUDA: bf16 keeps fp32's exponent range and needs no
    # loss scaling, but only Ampere (compute capability 8) and newer run it natively.
    # fp16 (older GPUs such as Colab's T4) underflows small gradients, so the
    # GradScaler multiplies the loss up and the gradients back down.
    amp_dtype = None
    if cfg.amp == "auto" and device.type == "cuda":
        native_bf16 = torch.cuda.get_device_capability(device)[0] >= 8
        amp_dtype = torch.bfloat16 if native_bf16 else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    optimizer = make_optimizer(model, cfg)
    # LambdaLR's counter is the number of updates done, i.e. the 0-based index of the next one.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    history = {k: [] for k in ("step", "train_loss", "lr", "grad_norm",
                               "eval_step", "val_loss", "eval_train_loss", "eval_seconds")}
    step = 0
    state = None                                        # the carried recurrent state (tbptt)
    trained_before = 0.0                                # training seconds of the run this one resumes

    if resume and os.path.exists(cfg.ckpt_path):
        ckpt = load_checkpoint(cfg.ckpt_path)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"checkpoint {cfg.ckpt_path!r} does not fit this model: {e}") from e
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") is not None and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        restore_rng_state(ckpt["rng"])    # the next batch and dropout mask are the ones we'd have drawn
        if stateful_batcher and ckpt.get("batcher") is not None:
            get_batch.load_state_dict(ckpt["batcher"])
        state = _map_state(lambda s: s.to(device), ckpt.get("tbptt_state"))
        step, history = ckpt["step"], ckpt["history"]
        trained_before = ckpt.get("trained_s", 0.0)
        print(f"resumed from {cfg.ckpt_path} at step {step}")
    elif resume:
        print(f"no checkpoint at {cfg.ckpt_path}: starting fresh")
    resumed_from = step

    def checkpoint():
        if rank != 0:                                   # one writer; every process holds the same state
            return
        save_checkpoint({
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "rng": get_rng_state(),
            "batcher": get_batch.state_dict() if stateful_batcher else None,
            "tbptt_state": state,
            "step": step,
            "history": history,
            "trained_s": trained_s(),
            "config": asdict(cfg),
        }, cfg.ckpt_path)

    last = cfg.max_steps if stop_after is None else min(cfg.max_steps, stop_after)
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not cfg.progress or rank != 0, desc="train")
    was_training = model.training
    model.train()
    tokens, t0, eval_time = 0, time.perf_counter(), 0.0

    def trained_s():                                    # training seconds, evaluations left out, resumed ones in
        return trained_before + time.perf_counter() - t0 - eval_time
    while step < last:
        if cfg.tbptt and get_batch.starts_new_pass("train"):
            state = None                                # the stream starts over: so does the memory
        x, y = _shard(get_batch("train"), rank, n_proc)   # the whole batch with one process
        x, y = _map_state(lambda t: t.to(device), x), y.to(device)
        lr = optimizer.param_groups[0]["lr"]            # the lr this update will use
        with autocast():
            if cfg.tbptt:
                logits, state = model(x, state, return_state=True)
                loss = loss_fn(logits, y)
            else:
                loss = loss_fn(_forward(net, x), y)
            # a model may add a term of its own (an MoE's load-balance loss); the history logs the LM loss
            extra = model.extra_loss() if hasattr(model, "extra_loss") else None
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss if extra is None else loss + extra).backward()
        scaler.unscale_(optimizer)                      # clip the true gradients, not scaled ones
        # clip_grad_norm_ returns the norm before clipping; max_norm=inf only measures it.
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)                          # skips the step if fp16 grads overflowed
        scaler.update()
        scheduler.step()
        if hasattr(model, "after_step"):                # e.g. an MoE's balancing biases move toward balance
            model.after_step()
        state = detach_state(state)                     # truncate: no gradient into the previous window
        step += 1
        tokens += y.numel() * n_proc

        history["step"].append(step)
        history["train_loss"].append(_mean_over_processes(loss.item(), n_proc, device))
        history["lr"].append(lr)
        history["grad_norm"].append(grad_norm.item())
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}", lr=f"{lr:.2e}", refresh=False)
        bar.update(1)

        if step == cfg.max_steps or (cfg.eval_every > 0 and step % cfg.eval_every == 0):
            t_eval = time.perf_counter()
            history.setdefault("eval_seconds", []).append(trained_s())
            losses = evaluate(model, get_batch, loss_fn, cfg.eval_batches, device, autocast, cfg.tbptt)
            eval_time += time.perf_counter() - t_eval
            history["eval_step"].append(step)
            history["val_loss"].append(losses["val"])
            history["eval_train_loss"].append(losses["train"])
            if cfg.progress and rank == 0:              # a line per eval stays after the bar moves on
                bar.write(f"step {step}: train {losses['train']:.4f}, val {losses['val']:.4f}")
        # Checkpoint after evaluating: eval draws batches from the RNG too, and the
        # saved RNG state must be the one the next training step starts from.
        if cfg.ckpt_path and (step == last or (cfg.ckpt_every > 0 and step % cfg.ckpt_every == 0)):
            checkpoint()
    bar.close()
    model.train(was_training)

    wall = time.perf_counter() - t0
    return TrainResult(
        history=history,
        final_val_loss=history["val_loss"][-1] if history["val_loss"] else None,
        steps_done=step,
        wall_time_s=wall,
        tokens_per_s=tokens / wall if tokens else 0.0,
        resumed_from=resumed_from,
    )
