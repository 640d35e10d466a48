"""Tests for seqlab.train: schedule, clipping, learning, eval, checkpoints, exact resume, errors."""
import dataclasses
import glob
import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from seqlab import train as T
from seqlab.train import TrainConfig, TrainResult, lr_factor, train

V = 11  # vocabulary of the synthetic tasks


pytestmark = pytest.mark.usefixtures("one_thread")


class TinyGRULM(nn.Module):
    """Embedding -> dropout -> 1-layer GRU -> dropout -> linear: (B, T) -> (B, T, V).

    Dropout makes every training step draw from torch's RNG, so a resume that
    forgot to restore the RNG would produce different losses.
    """

    def __init__(self, vocab=V, d=16, p=0.2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.drop = nn.Dropout(p)
        self.head = nn.Linear(d, vocab)
        self.calls = []  # (training flag, grad enabled) seen by each forward

    def forward(self, idx):
        self.calls.append((self.training, torch.is_grad_enabled()))
        h, _ = self.gru(self.drop(self.emb(idx)))
        return self.head(self.drop(h))


class BigramLM(nn.Module):
    def __init__(self, vocab=V):
        super().__init__()
        self.table = nn.Embedding(vocab, vocab)

    def forward(self, idx):
        return self.table(idx)


def make_batcher(tokens, batch_size=8, block=12):
    """Random windows of a fixed token tensor; positions drawn with torch's global RNG."""
    n = len(tokens)
    split = {"train": tokens[: int(0.8 * n)], "val": tokens[int(0.8 * n):]}

    def get_batch(name):
        data = split[name]
        ix = torch.randint(len(data) - block - 1, (batch_size,))
        x = torch.stack([data[i: i + block] for i in ix])
        y = torch.stack([data[i + 1: i + block + 1] for i in ix])
        return x, y

    return get_batch


def random_tokens(n=2000, seed=0):
    return torch.randint(V, (n,), generator=torch.Generator().manual_seed(seed))


def fresh_gru(seed=0):
    torch.manual_seed(seed)
    return TinyGRULM()


def quiet(**kw):
    kw.setdefault("progress", False)
    return TrainConfig(**kw)


# ----------------------------------------------------------------------------- schedule

def test_lr_factor_warmup_then_cosine_to_min_ratio():
    cfg = quiet(max_steps=20, warmup_steps=4, min_lr_ratio=0.1)
    f = [lr_factor(s, cfg) for s in range(cfg.max_steps)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert f[4] == pytest.approx(1.0)                     # first decay step starts at the peak
    assert f[-1] == pytest.approx(0.1)                    # last update reaches lr * min_lr_ratio
    mid = 4 + (20 - 1 - 4) / 2                            # cosine midpoint: halfway between 1 and 0.1
    assert lr_factor(mid, cfg) == pytest.approx(0.55)
    assert all(a >= b for a, b in zip(f[4:], f[5:]))      # decays monotonically
    no_warmup = quiet(max_steps=10, min_lr_ratio=0.0)
    assert lr_factor(0, no_warmup) == 1.0 and lr_factor(9, no_warmup) == pytest.approx(0.0)


def test_inverse_sqrt_schedule_is_the_transformer_schedule():
    """Vaswani et al. (2017) eq. 3, divided by its peak: cfg.lr is the peak learning rate."""
    d_model, warmup = 512, 40
    cfg = quiet(max_steps=400, warmup_steps=warmup, schedule="inverse_sqrt")
    paper = [d_model ** -0.5 * min(n ** -0.5, n * warmup ** -1.5) for n in range(1, 401)]
    peak = d_model ** -0.5 * warmup ** -0.5
    assert [lr_factor(s, cfg) for s in range(400)] == pytest.approx([p / peak for p in paper], rel=1e-12)
    assert max(paper) == pytest.approx(peak) and paper.index(max(paper)) == warmup - 1
    with pytest.raises(ValueError, match="schedule"):
        train(BigramLM(), make_batcher(random_tokens()), quiet(max_steps=2, schedule="noam"))


def test_trained_lr_history_follows_the_schedule():
    cfg = quiet(max_steps=12, lr=1e-2, warmup_steps=3, min_lr_ratio=0.2, eval_every=0, eval_batches=1)
    res = train(BigramLM(), make_batcher(random_tokens()), cfg)
    expected = [1e-2 * lr_factor(s, cfg) for s in range(12)]
    assert res.history["lr"] == pytest.approx(expected)
    assert res.history["lr"][0] == pytest.approx(1e-2 / 3)
    assert res.history["lr"][-1] == pytest.approx(1e-2 * 0.2)


# ----------------------------------------------------------------------------- optimisation

def test_weight_decay_only_on_matrices():
    model = TinyGRULM()
    opt = T.make_optimizer(model, quiet(max_steps=1, weight_decay=0.3))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.3 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert len(plain["params"]) > 0  # the GRU and head biases


def test_parameters_marked_no_weight_decay_are_not_decayed():
    from seqlab.models.mamba import Mamba, MambaConfig

    model = Mamba(MambaConfig(vocab_size=11, d_model=8, n_layer=2, d_state=4)).double()   # survives .double()
    decayed, plain = T.make_optimizer(model, quiet(max_steps=1)).param_groups
    marked = [m.mixer.A_log for m in model.layers] + [m.mixer.D for m in model.layers]
    assert all(any(p is q for q in plain["params"]) for p in marked)
    assert not any(any(p is q for q in decayed["params"]) for p in marked)
    assert any(p is model.layers[0].mixer.in_proj.weight for p in decayed["params"])


def test_grad_clip_bounds_the_norm_the_optimizer_sees():
    seen = []

    def before_step(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

    handle = register_optimizer_step_pre_hook(before_step)
    try:
        # lr 1.0 on a bigram table gives big gradients: the clip is active on most steps.
        get_batch = make_batcher(random_tokens())
        cfg = quiet(max_steps=15, lr=1.0, grad_clip=0.05, eval_every=0, eval_batches=1)
        torch.manual_seed(0)
        clipped = train(BigramLM(), get_batch, cfg)
        seen_clipped, seen[:] = list(seen), []
        torch.manual_seed(0)
        unclipped = train(BigramLM(), get_batch, dataclasses.replace(cfg, grad_clip=None))
    finally:
        handle.remove()
    assert len(seen_clipped) == 15
    assert max(seen_clipped) <= 0.05 * (1 + 1e-4)
    assert min(clipped.history["grad_norm"]) > 0.05       # the recorded norm is the pre-clip one
    # without clipping the optimizer sees the raw norm, which is well above the bound
    assert seen == pytest.approx(unclipped.history["grad_norm"], rel=1e-5)
    assert min(seen) > 0.05


def test_loss_goes_down_on_a_learnable_sequence():
    # 0 1 2 ... 10 0 1 2 ...: every next token is determined by the current one.
    tokens = torch.arange(3000) % V
    torch.manual_seed(0)
    cfg = quiet(max_steps=200, lr=0.1, weight_decay=0.0, warmup_steps=10, eval_every=50, eval_batches=2)
    res = train(BigramLM(), make_batcher(tokens), cfg)
    assert res.history["train_loss"][0] > 2.0              # ~ln(11) = 2.4 at the start
    assert res.final_val_loss < 0.1
    assert res.history["eval_train_loss"][-1] < 0.1


# ----------------------------------------------------------------------------- eval and result

def test_eval_schedule_mode_toggling_and_result_fields():
    model = fresh_gru()
    cfg = quiet(max_steps=25, eval_every=10, eval_batches=3)
    res = train(model, make_batcher(random_tokens()), cfg)
    assert isinstance(res, TrainResult)
    h = res.history
    assert h["step"] == list(range(1, 26))
    assert len(h["train_loss"]) == len(h["lr"]) == len(h["grad_norm"]) == 25
    assert h["eval_step"] == [10, 20, 25]                  # every 10 steps and at the last one
    assert len(h["val_loss"]) == len(h["eval_train_loss"]) == 3
    assert res.final_val_loss == h["val_loss"][-1]
    assert res.steps_done == 25 and res.resumed_from == 0
    assert res.wall_time_s > 0 and res.tokens_per_s > 0
    # 25 training forwards in train mode with grad, 3 evals x 2 splits x 3 batches without
    calls = model.calls
    assert calls.count((True, True)) == 25
    assert calls.count((False, False)) == 3 * 2 * 3
    assert len(calls) == 25 + 18
    assert model.training                                   # handed back in train mode


def test_progress_bar_shows_live_loss_and_eval_lines(capsys):
    cfg = TrainConfig(max_steps=3, eval_every=0, eval_batches=1)   # progress=True by default
    res = train(BigramLM(), make_batcher(random_tokens()), cfg)
    out, err = capsys.readouterr()
    assert "loss=" in err and "lr=" in err and "3/3" in err          # tqdm draws on stderr
    assert f"step 3: train {res.history['eval_train_loss'][-1]:.4f}" in out
    train(BigramLM(), make_batcher(random_tokens()), quiet(max_steps=3, eval_batches=1))
    assert capsys.readouterr() == ("", "")                            # progress=False is silent


def test_custom_loss_fn_is_used_for_training_and_eval():
    shapes, values = [], []

    def loss_fn(logits, y):
        shapes.append(tuple(logits.shape))
        loss = logits.float().pow(2).mean()                 # not cross-entropy: pulls logits to 0
        values.append(loss.item())
        return loss

    cfg = quiet(max_steps=3, eval_every=0, eval_batches=2)
    res = train(BigramLM(), make_batcher(random_tokens()), cfg, loss_fn=loss_fn)
    assert shapes == [(8, 12, V)] * (3 + 2 * 2)              # 3 steps + 2 batches of each split
    assert res.history["train_loss"] == values[:3]
    assert res.history["eval_train_loss"] == [pytest.approx(sum(values[3:5]) / 2)]
    assert res.history["val_loss"] == [pytest.approx(sum(values[5:7]) / 2)]


# ----------------------------------------------------------------------------- checkpoints

def test_checkpoint_loads_with_weights_only(tmp_path):
    path = str(tmp_path / "ck" / "run.pt")                  # the directory is created
    random.random(), np.random.rand()                       # some non-trivial python / numpy state
    train(fresh_gru(), make_batcher(random_tokens()), quiet(max_steps=5, eval_every=0, eval_batches=1, ckpt_path=path))
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["step"] == 5
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "scaler", "rng", "step", "history", "config"}
    assert ckpt["scaler"] is None                           # no AMP on CPU
    assert ckpt["config"]["max_steps"] == 5 and ckpt["config"]["amp"] == "auto"
    assert ckpt["history"]["step"] == [1, 2, 3, 4, 5]
    assert ckpt["scheduler"]["last_epoch"] == 5
    # The RNG state round-trips: restoring it replays the same random numbers.
    T.restore_rng_state(ckpt["rng"])
    a = (random.random(), float(np.random.rand()), torch.rand(1).item())
    T.restore_rng_state(ckpt["rng"])
    assert a == (random.random(), float(np.random.rand()), torch.rand(1).item())
    assert not glob.glob(str(tmp_path / "ck" / "*.tmp"))


def test_failed_write_keeps_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = str(tmp_path / "run.pt")
    get_batch = make_batcher(random_tokens())
    train(fresh_gru(), get_batch, quiet(max_steps=3, eval_every=0, eval_batches=1, ckpt_path=path))
    before = (tmp_path / "run.pt").read_bytes()

    real_save = torch.save

    def save_then_crash(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw)                         # part of the bytes hit the temp file...
        raise OSError("disk full")                          # ...then the write dies

    monkeypatch.setattr(torch, "save", save_then_crash)
    with pytest.raises(OSError, match="disk full"):
        train(fresh_gru(1), get_batch, quiet(max_steps=3, eval_every=0, eval_batches=1, ckpt_path=path))
    assert (tmp_path / "run.pt").read_bytes() == before
    assert os.listdir(tmp_path) == ["run.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    assert T.load_checkpoint(path)["step"] == 3


# ----------------------------------------------------------------------------- exact resume

def run_interrupted(tmp_path, seed_after_stop=123):
    """17 steps, 'crash', scramble every RNG, then resume to 40 in fresh objects."""
    path = str(tmp_path / "resume.pt")
    get_batch = make_batcher(random_tokens())
    # eval_every=17: the interruption lands on an eval step, so the checkpoint must come after
    # eval has drawn its batches from the RNG (or the resumed run draws different ones).
    cfg = quiet(max_steps=40, warmup_steps=5, eval_every=17, eval_batches=2, ckpt_path=path, ckpt_every=10)
    first = train(fresh_gru(), get_batch, cfg, stop_after=17)
    assert first.steps_done == 17 and T.load_checkpoint(path)["step"] == 17
    # a new process would start with some other RNG state and a differently initialised model
    torch.manual_seed(seed_after_stop), random.seed(seed_after_stop), np.random.seed(seed_after_stop)
    model = fresh_gru(seed=seed_after_stop)
    second = train(model, get_batch, cfg, resume=True)
    return first, second, model, get_batch, cfg


def test_resume_reproduces_the_uninterrupted_run_bitwise(tmp_path):
    first, second, resumed_model, get_batch, cfg = run_interrupted(tmp_path)
    straight_model = fresh_gru()
    straight = train(straight_model, get_batch, dataclasses.replace(cfg, ckpt_path=None))

    assert second.resumed_from == 17 and second.steps_done == 40
    assert first.history["train_loss"] == straight.history["train_loss"][:17]
    assert second.history["train_loss"] == straight.history["train_loss"]   # float ==: bitwise
    assert second.history["lr"] == straight.history["lr"]
    assert second.history["eval_step"] == straight.history["eval_step"] == [17, 34, 40]
    assert second.history["val_loss"] == straight.history["val_loss"]
    assert second.final_val_loss == straight.final_val_loss
    for (name, a), b in zip(straight_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_without_restoring_the_rng_would_be_caught(tmp_path, monkeypatch):
    """The bitwise test above has teeth: skip the RNG restore and the losses differ."""
    get_batch = make_batcher(random_tokens())
    straight = train(fresh_gru(), get_batch, quiet(max_steps=40, warmup_steps=5, eval_every=17, eval_batches=2))
    monkeypatch.setattr(T, "restore_rng_state", lambda state: None)
    _, second, *_ = run_interrupted(tmp_path)
    assert second.history["train_loss"][:17] == straight.history["train_loss"][:17]  # weights etc. restored
    assert second.history["train_loss"][17:] != straight.history["train_loss"][17:]  # batches / dropout not


def test_resume_with_missing_checkpoint_starts_fresh(tmp_path, capsys):
    path = str(tmp_path / "nothing.pt")
    res = train(fresh_gru(), make_batcher(random_tokens()),
                quiet(max_steps=3, eval_every=0, eval_batches=1, ckpt_path=path), resume=True)
    assert "starting fresh" in capsys.readouterr().out
    assert res.resumed_from == 0 and res.steps_done == 3 and os.path.exists(path)


def test_resume_of_a_finished_run_takes_no_step(tmp_path):
    path = str(tmp_path / "done.pt")
    get_batch = make_batcher(random_tokens())
    cfg = quiet(max_steps=4, eval_every=0, eval_batches=1, ckpt_path=path)
    done = train(fresh_gru(), get_batch, cfg)
    model = fresh_gru(5)
    again = train(model, get_batch, cfg, resume=True)
    assert again.steps_done == 4 and again.history == done.history
    assert again.final_val_loss == done.final_val_loss
    assert torch.equal(model.head.weight, T.load_checkpoint(path)["model"]["head.weight"])


# ----------------------------------------------------------------------------- errors

def test_bad_config_raises_clear_errors():
    get_batch = make_batcher(random_tokens())
    with pytest.raises(ValueError, match="max_steps"):
        train(BigramLM(), get_batch, quiet(max_steps=0))
    with pytest.raises(ValueError, match="amp"):
        train(BigramLM(), get_batch, quiet(max_steps=1, amp="fp8"))
    with pytest.raises(ValueError, match="ckpt_path"):
        train(BigramLM(), get_batch, quiet(max_steps=1), resume=True)


def test_resume_into_a_different_model_names_the_checkpoint(tmp_path):
    path = str(tmp_path / "small.pt")
    get_batch = make_batcher(random_tokens())
    cfg = quiet(max_steps=2, eval_every=0, eval_batches=1, ckpt_path=path)
    train(TinyGRULM(d=16), get_batch, cfg)
    with pytest.raises(ValueError, match="small.pt.*does not fit") as err:
        train(TinyGRULM(d=32), get_batch, cfg, resume=True)
    assert "size mismatch" in str(err.value)
    with pytest.raises(ValueError, match="small.pt.*does not fit"):
        train(BigramLM(), get_batch, cfg, resume=True)


class Arbitrary:
    """Stands for any pickled object: loading one can run code, so weights_only refuses it."""


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "not_a_checkpoint", "unsafe_object"])
def test_corrupted_checkpoint_gives_an_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "broken.pt"
    get_batch = make_batcher(random_tokens())
    cfg = quiet(max_steps=2, eval_every=0, eval_batches=1, ckpt_path=str(path))
    train(BigramLM(), get_batch, cfg)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"this is not a checkpoint " * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not_a_checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        ckpt = torch.load(path, weights_only=True)
        ckpt["extra"] = Arbitrary()
        torch.save(ckpt, path)
    with pytest.raises(ValueError, match="broken.pt") as err:
        train(BigramLM(), get_batch, cfg, resume=True)
    assert len(str(err.value)) < 400                         # one readable sentence, not a trace


# ----------------------------------------------------------------------------- truncated BPTT

class StatefulGRULM(TinyGRULM):
    """TinyGRULM with the recurrent interface: model(x, state, return_state=True)."""

    def forward(self, idx, state=None, return_state=False):
        self.calls.append((self.training, torch.is_grad_enabled()))
        h, state = self.gru(self.drop(self.emb(idx)), state)
        logits = self.head(self.drop(h))
        return (logits, state) if return_state else logits


def stream(tokens=None, block=6, batch=4):
    from seqlab.data import StreamBatcher
    tokens = random_tokens() if tokens is None else tokens
    n = int(0.8 * len(tokens))
    return StreamBatcher(tokens[:n], tokens[n:], block_size=block, batch_size=batch)


def fresh_stateful(seed=0):
    torch.manual_seed(seed)
    return StatefulGRULM()


def test_tbptt_carries_the_state_and_cuts_the_gradient():
    """Two windows with tbptt: the second forward starts from the first's final state
    (forward sees the past), but no gradient reaches the first window's computation."""
    model = fresh_stateful()
    seen = []
    original = model.forward

    def spy(idx, state=None, return_state=False):
        seen.append(state)
        return original(idx, state, return_state)

    model.forward = spy
    sb = stream()
    train(model, sb, quiet(max_steps=2, eval_every=0, eval_batches=1, tbptt=True))
    assert seen[0] is None                                   # first window: zero state
    assert seen[1] is not None and not seen[1].requires_grad  # carried, detached
    # eval walks windows from the start of each split, with its own fresh state
    assert seen[2] is None


def test_tbptt_state_equals_running_the_whole_stream():
    """With lr = 0 nothing learns, so the losses of consecutive tbptt windows must equal
    the per-window losses of one forward over the concatenated windows."""
    model = fresh_stateful()
    model.drop.p = 0.0
    sb = stream()
    res = train(model, sb, quiet(max_steps=4, lr=0.0, eval_every=0, eval_batches=1, tbptt=True,
                                 weight_decay=0.0))
    xs, ys = zip(*list(sb.windows("train", 4)))
    with torch.no_grad():
        logits = model(torch.cat(xs, 1))
    T_ = xs[0].size(1)
    for k in range(4):
        expected = T.default_loss(logits[:, k * T_:(k + 1) * T_], ys[k]).item()
        assert abs(res.history["train_loss"][k] - expected) < 1e-5


def test_tbptt_state_resets_when_the_stream_starts_over():
    model = fresh_stateful()
    seen = []
    original = model.forward
    model.forward = lambda idx, state=None, return_state=False: (seen.append(state), original(idx, state, return_state))[1]
    sb = stream(random_tokens(200), block=5, batch=4)          # 160 train tokens -> 7 windows
    n = sb.n_windows["train"]
    train(model, sb, quiet(max_steps=n + 1, eval_every=0, eval_batches=1, tbptt=True))
    assert seen[n] is None and seen[n - 1] is not None


def test_tbptt_resume_reproduces_the_uninterrupted_run(tmp_path):
    cfg = quiet(max_steps=12, eval_every=4, eval_batches=2, tbptt=True,
                ckpt_path=str(tmp_path / "tbptt.pt"))
    full_model, full_sb = fresh_stateful(), stream()
    full = train(full_model, full_sb, dataclasses.replace(cfg, ckpt_path=None))

    train(fresh_stateful(), stream(), cfg, stop_after=7)       # "crash" after step 7
    resumed_model, resumed_sb = fresh_stateful(seed=1), stream()
    resumed = train(resumed_model, resumed_sb, cfg, resume=True)
    assert resumed.resumed_from == 7
    assert resumed.history["train_loss"] == full.history["train_loss"]
    assert resumed.history["val_loss"] == full.history["val_loss"]
    assert resumed_sb.cursor == full_sb.cursor
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_tbptt_needs_a_stream_batcher():
    with pytest.raises(ValueError, match="StreamBatcher"):
        train(fresh_stateful(), make_batcher(random_tokens()), quiet(max_steps=1, tbptt=True))


def test_stream_loss_covers_every_window_with_the_state_carried():
    model = fresh_stateful().eval()
    sb = stream()
    windows = list(sb.windows("val"))
    xs, ys = zip(*windows)
    with torch.no_grad():
        logits = model(torch.cat(xs, 1))
    expected = T.default_loss(logits, torch.cat(ys, 1)).item()
    assert abs(T.stream_loss(model, windows) - expected) < 1e-5
    with pytest.raises(ValueError, match="no windows"):
        T.stream_loss(model, [])


def test_detach_state_handles_tensors_pairs_and_none():
    h = torch.randn(2, 3, requires_grad=True) * 2
    assert T.detach_state(None) is None
    assert not T.detach_state(h).requires_grad
    pair = T.detach_state((h, h))
    assert isinstance(pair, tuple) and not any(p.requires_grad for p in pair)


def test_eval_seconds_count_training_time_and_survive_a_resume(tmp_path):
    """history["eval_seconds"]: training seconds at each evaluation, rising, and carried over a resume."""
    first, second, *_ = run_interrupted(tmp_path)
    t = first.history["eval_seconds"]
    assert len(t) == 1 and 0 < t[0] <= first.wall_time_s
    assert len(second.history["eval_seconds"]) == 3                       # evals at 17, 34, 40
    assert t[0] < second.history["eval_seconds"][1] < second.history["eval_seconds"][2]
