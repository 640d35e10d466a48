"""Where a lab runs and how big it may be: device, seeding, budget, Colab, run card.

Every lab starts with

    run = seqlab.runtime.start(seed=0, expected={"smoke": "20 s", "cpu": "4 min", "gpu": "3 min"})

which seeds everything, picks the device, reads the budget and prints one line of each,
and ends with

    run.card(metrics={"val bpc": 2.1})

which prints the run card a reader compares their own run against.

Budgets
-------
``smoke``  proves the code runs: under 60 s on a 2-core CPU (CI and nbval use it).
``cpu``    real, if small, results: under 10 minutes on a 2-core CPU.
``gpu``    the full experiment: about 20 minutes on Colab's free T4.

The budget comes from ``SEQLAB_BUDGET``; when that is unset it is ``smoke`` under CI
(``CI`` set) or nbval, else ``gpu`` when CUDA is available, else ``cpu``. Labs read every
size (data, model, steps) from the budget, never from hand edits.
"""
from __future__ import annotations

import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

BUDGETS = ("smoke", "cpu", "gpu")


def pick_device() -> torch.device:
    """The fastest device present: cuda > mps > cpu (``SEQLAB_DEVICE`` overrides)."""
    forced = os.environ.get("SEQLAB_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed(value: int = 0) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds every CUDA device


_seed_all = seed  # start() takes a parameter called ``seed``; this keeps the function reachable


def in_colab() -> bool:
    """True inside Google Colab (its ``google.colab`` package is importable there only)."""
    if "google.colab" in sys.modules:
        return True
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def _under_nbval() -> bool:
    # nbval runs the kernel with this variable set by our tests/conftest.py, and pytest
    # itself exports PYTEST_CURRENT_TEST into the environment of the test process.
    return "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("SEQLAB_UNDER_NBVAL") == "1"


def budget() -> str:
    """The budget this run uses: ``smoke`` | ``cpu`` | ``gpu`` (see the module docstring)."""
    value = os.environ.get("SEQLAB_BUDGET", "").strip().lower()
    if value:
        if value not in BUDGETS:
            raise ValueError(
                f"SEQLAB_BUDGET={value!r} is not a budget; use one of {', '.join(BUDGETS)}."
            )
        return value
    if os.environ.get("CI") or _under_nbval():
        return "smoke"
    return "gpu" if torch.cuda.is_available() else "cpu"


@dataclass
class Run:
    """One lab's run: what it ran on and for how long. Made by :func:`start`."""

    seed: int
    budget: str
    device: torch.device
    started: float = field(default_factory=time.perf_counter)

    def pick(self, **by_budget):
        """The value for this budget: ``run.pick(smoke=1_000, cpu=100_000, gpu=1_000_000)``."""
        missing = [b for b in BUDGETS if b not in by_budget]
        if missing:
            raise ValueError(f"run.pick needs a value for every budget; missing {missing}")
        return by_budget[self.budget]

    @property
    def elapsed(self) -> float:
        """Seconds since :func:`start`."""
        return time.perf_counter() - self.started

    def card(self, metrics: dict | None = None) -> dict:
        """Print and return the run card: budget, device, versions, wall time, metrics."""
        info = {
            "budget": self.budget,
            "device": describe_device(self.device),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "seed": self.seed,
            "wall time": f"{self.elapsed:.1f} s",
        }
        info.update(metrics or {})
        width = max(len(k) for k in info)
        lines = ["Run card", "-" * 40]
        for key, value in info.items():
            if isinstance(value, float):
                value = f"{value:.4g}"
            lines.append(f"{key:<{width}}  {value}")
        print("\n".join(lines))
        return info


def describe_device(device: torch.device) -> str:
    """A human name for a device, e.g. ``cuda (Tesla T4)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'s' if n != 1 else ''})"
    return device.type


def start(seed: int = 0, expected: dict | None = None) -> Run:
    """Seed everything, choose device and budget, print them; return the :class:`Run`.

    ``expected`` maps each budget to its expected wall time (a string shown to the reader).
    """
    _seed_all(seed)
    run = Run(seed=seed, budget=budget(), device=pick_device())
    where = "Colab" if in_colab() else platform.node() or "local"
    print(
        f"seqlab | budget {run.budget} | device {describe_device(run.device)} | "
        f"torch {torch.__version__} | python {platform.python_version()} | {where}"
    )
    if expected and run.budget in expected:
        print(f"Expected time for the {run.budget!r} budget: {expected[run.budget]}")
    if run.budget == "smoke":
        print("smoke budget: tiny sizes that only prove the code runs; numbers are not results.")
    return run
