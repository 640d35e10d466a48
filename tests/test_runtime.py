import random

import numpy as np
import pytest
import torch

from seqlab import runtime


def test_seed_makes_python_numpy_torch_repeat():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    runtime.seed(123)
    first = draw()
    runtime.seed(123)
    assert draw() == first
    runtime.seed(124)
    assert draw() != first


@pytest.mark.parametrize("value", ["smoke", "cpu", "gpu", " CPU "])
def test_budget_from_environment(monkeypatch, value):
    monkeypatch.setenv("SEQLAB_BUDGET", value)
    assert runtime.budget() == value.strip().lower()


def test_bad_budget_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SEQLAB_BUDGET", "huge")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        runtime.budget()


def test_budget_defaults(monkeypatch):
    monkeypatch.delenv("SEQLAB_BUDGET", raising=False)
    monkeypatch.setenv("CI", "true")
    assert runtime.budget() == "smoke"
    monkeypatch.delenv("CI")
    monkeypatch.delenv("SEQLAB_UNDER_NBVAL", raising=False)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.budget() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.budget() == "gpu"
    monkeypatch.setenv("SEQLAB_UNDER_NBVAL", "1")
    assert runtime.budget() == "smoke"


def test_device_choice(monkeypatch):
    monkeypatch.delenv("SEQLAB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.pick_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.pick_device().type == "cpu"
    monkeypatch.setenv("SEQLAB_DEVICE", "meta")
    assert runtime.pick_device().type == "meta"


def test_colab_detection(monkeypatch):
    import sys
    import types

    assert runtime.in_colab() is False
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert runtime.in_colab() is True


def test_start_pick_and_card(monkeypatch, capsys):
    monkeypatch.setenv("SEQLAB_BUDGET", "cpu")
    run = runtime.start(seed=7, expected={"smoke": "1 s", "cpu": "3 min", "gpu": "1 min"})
    out = capsys.readouterr().out
    assert "budget cpu" in out and "3 min" in out
    assert run.pick(smoke=1, cpu=2, gpu=3) == 2
    with pytest.raises(ValueError, match="missing"):
        run.pick(smoke=1, cpu=2)
    card = run.card({"val bpc": 2.25})
    out = capsys.readouterr().out
    assert card["budget"] == "cpu" and card["seed"] == 7 and card["val bpc"] == 2.25
    assert "Run card" in out and "val bpc" in out and "2.25" in out
