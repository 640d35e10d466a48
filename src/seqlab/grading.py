"""Helpers for the graded assignments in ``assignments/``: clear messages and time limits.

An assignment's tests call a student's function and compare what it returns with
``seqlab``'s reference. The usual ways that goes wrong (the function is not defined, it
raises, it returns the wrong shape or dtype, its values are off, it never returns) each
become one readable sentence, raised as an ``AssertionError``, instead of a traceback:

    h = call(lstm_cell, x, h0, c0, name="lstm_cell")          # not defined / raised / looped
    expect_tensor(h, name="h", shape=(B, H), dtype=torch.float64, hint="(batch, hidden)")
    expect_close(h, h_ref, name="h", atol=1e-10)

Grading runs the whole submission first, so a student cell that loops forever would stall
it. :func:`install_cell_timeout` stops any cell that runs longer than a limit (the
autograder installs it through :class:`CellTimeout`, an otter-grader plugin), and
:func:`call` stops a single call. Both use ``SIGALRM``, so they work on Linux and macOS in
the kernel's main thread; elsewhere they do nothing.

Nothing here imports otter-grader.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time

import numpy as np
import torch

#: The per-cell limit used while grading, in seconds; ``SEQLAB_CELL_TIMEOUT`` overrides it.
DEFAULT_CELL_TIMEOUT = 120
#: The limit for one call of a student's function in a test; ``SEQLAB_CALL_TIMEOUT`` overrides it.
DEFAULT_CALL_TIMEOUT = 30


class TimeLimit(BaseException):
    """Raised by the alarm. A ``BaseException``, so a student's ``except Exception`` cannot swallow it."""


def _have_alarm() -> bool:
    import threading

    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _alarm(seconds: float, message: str):
    """Raise :class:`TimeLimit` after ``seconds`` inside the block; an enclosing alarm (a cell's
    limit) is paused meanwhile and keeps running afterwards."""
    if not _have_alarm():
        yield
        return

    def ring(signum, frame):
        raise TimeLimit(message)

    start, outer_left = time.monotonic(), signal.alarm(0)
    outer_handler = signal.signal(signal.SIGALRM, ring)
    signal.alarm(max(1, int(round(seconds))))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_left:
            signal.alarm(max(1, int(outer_left - (time.monotonic() - start))))


def call(fn, *args, name: str | None = None, seconds: float | None = None, **kwargs):
    """``fn(*args, **kwargs)``, or an ``AssertionError`` that says in one sentence what went wrong.

    ``fn`` is None when the student's notebook never defined it (otter passes None for a
    missing name); ``seconds`` (default :data:`DEFAULT_CALL_TIMEOUT`) bounds the call, so an
    infinite loop fails this test only.
    """
    name = name or getattr(fn, "__name__", "your function")
    seconds = seconds or float(os.environ.get("SEQLAB_CALL_TIMEOUT") or DEFAULT_CALL_TIMEOUT)
    if fn is None:
        raise AssertionError(f"`{name}` is not defined: run the cell that defines it, and keep its name.")
    if not callable(fn):
        raise AssertionError(f"`{name}` should be a function, but it is a {type(fn).__name__}.")
    try:
        with _alarm(seconds, f"`{name}` did not return within {seconds:g} s (an infinite loop?)"):
            out = fn(*args, **kwargs)
    except TimeLimit as stop:
        raise AssertionError(str(stop)) from None
    except NotImplementedError:
        raise AssertionError(f"`{name}` is not written yet (it raised NotImplementedError).") from None
    except Exception as err:  # the student's bug, reported without the traceback
        raise AssertionError(f"`{name}` raised {type(err).__name__}: {err}") from None
    if out is None:
        raise AssertionError(f"`{name}` returned None: replace the `...` with your code, and `return` the result.")
    return out


def _kind(x) -> str:
    return "torch.Tensor" if isinstance(x, torch.Tensor) else "numpy array"


def _values(x) -> torch.Tensor:
    return torch.from_numpy(x) if isinstance(x, np.ndarray) else x.detach()


def expect_tensor(got, *, name: str, shape=None, dtype=None, hint: str = "", kind: str = "torch.Tensor"):
    """Check that ``got`` is a ``kind`` ("torch.Tensor" or "numpy array") of the given shape and dtype.

    Explains the first mismatch; ``hint`` names the axes, e.g. "(batch, hidden)".
    """
    hint = f" {hint}" if hint else ""
    is_kind = isinstance(got, torch.Tensor) if kind == "torch.Tensor" else isinstance(got, np.ndarray)
    if not is_kind:
        raise AssertionError(f"{name} should be a {kind}, but it is a {type(got).__name__}.")
    if shape is not None and tuple(got.shape) != tuple(shape):
        raise AssertionError(f"{name} has shape {tuple(got.shape)}; expected {tuple(shape)}{hint}.")
    if dtype is not None and got.dtype != dtype:
        floating = dtype.is_floating_point if isinstance(dtype, torch.dtype) else np.issubdtype(dtype, np.floating)
        advice = (" Keep the input's dtype (no .float(), and no new tensor or array of a different default dtype)."
                  if floating else "")
        raise AssertionError(f"{name} has dtype {got.dtype}; expected {dtype}.{advice}")


def expect_close(got, want, *, name: str, atol: float = 1e-6, rtol: float = 0.0, hint: str = ""):
    """Check kind, shape and dtype against ``want``, then values: ``|got - want| <= atol + rtol |want|``.

    ``want`` is a torch tensor or a numpy array; ``got`` must be the same kind. Integer and
    boolean values (counts, masks) must match exactly.
    """
    expect_tensor(got, name=name, shape=want.shape, dtype=want.dtype, hint=hint, kind=_kind(want))
    got, want = _values(got), _values(want)
    if not (want.is_floating_point() or want.is_complex()):   # masks, counts, ids: exact
        wrong = got != want
        if wrong.any():
            where = tuple(int(i) for i in torch.nonzero(wrong)[0])
            raise AssertionError(
                f"{name} is wrong in {int(wrong.sum())} of {want.numel()} entries; the first at index "
                f"{where}: got {got[where].item()}, expected {want[where].item()}."
            )
        return
    if not torch.isfinite(got).all() and torch.isfinite(want).all():
        raise AssertionError(f"{name} contains NaN or inf values.")
    err = (got - want).abs()
    bad = err > atol + rtol * want.abs()
    if bad.any():
        where = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise AssertionError(
            f"{name} is off by up to {err.max().item():.3g} (allowed {atol:g}); first wrong entry at "
            f"index {where}: got {got[where].item():.6g}, expected {want[where].item():.6g}."
        )


def expect_number(got, want: float, *, name: str, atol: float = 1e-9):
    """Check that ``got`` is a real number within ``atol`` of ``want``."""
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    try:
        value = float(got)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} should be a number, but it is a {type(got).__name__}.") from None
    if not abs(value - want) <= atol:
        raise AssertionError(f"{name} is {value:.10g}; expected {want:.10g} (within {atol:g}).")


# ----------------------------------------------------------------------------- while grading

def install_cell_timeout(seconds: float | None = None) -> None:
    """Stop every later cell of this IPython kernel that runs longer than ``seconds``.

    The cell ends with a :class:`TimeLimit` error; grading goes on with the next cell, so
    the questions answered elsewhere in the notebook still earn their points.
    """
    from IPython import get_ipython

    ip = get_ipython()
    seconds = int(seconds or os.environ.get("SEQLAB_CELL_TIMEOUT") or DEFAULT_CELL_TIMEOUT)
    if ip is None or not _have_alarm():
        return

    def ring(signum, frame):
        raise TimeLimit(f"this cell ran for more than {seconds} s and was stopped (an infinite loop?)")

    def arm(*_):
        signal.signal(signal.SIGALRM, ring)
        signal.alarm(seconds)

    def disarm(*_):
        signal.alarm(0)

    ip.events.register("pre_run_cell", arm)
    ip.events.register("post_run_cell", disarm)


class CellTimeout:
    """otter-grader plugin: limit every cell of a submission, and report the cells that failed.

    Before the submission runs it adds a first cell that calls :func:`install_cell_timeout`;
    after grading it lists each cell that ended in an error (``TimeLimit`` for one that was
    stopped), which otter prints below the scores. Configure it in an assignment's config as
    ``plugins: [{seqlab.grading.CellTimeout: {seconds: 120}}]``; ``SEQLAB_CELL_TIMEOUT`` in
    the grading environment overrides the number.
    """

    REPORT_TITLE = "Cells that stopped with an error while grading"

    # otter calls a plugin's events only where the plugin has them (``hasattr``), so this class
    # needs nothing from otter, and importing seqlab.grading never imports otter.
    def __init__(self, submission_path, submission_metadata, plugin_config):
        self.submission_path = submission_path
        self.submission_metadata = submission_metadata
        self.plugin_config = plugin_config
        self.errors = []

    def after_grading(self, results):
        self.errors = []
        for cell in getattr(results, "notebook", None) and results.notebook.cells or []:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    first = next((line for line in cell.source.splitlines() if line.strip()), "")
                    self.errors.append(f"{first[:60]!r}: {out['ename']}: {out['evalue']}")

    def generate_report(self):
        if not self.errors:
            return ""
        return "\n".join([f"{self.REPORT_TITLE}:"] + [f"  {e}" for e in self.errors])

    def before_execution(self, submission):
        import nbformat

        seconds = os.environ.get("SEQLAB_CELL_TIMEOUT") or (self.plugin_config or {}).get(
            "seconds", DEFAULT_CELL_TIMEOUT
        )
        cell = nbformat.v4.new_code_cell(
            f"from seqlab.grading import install_cell_timeout\ninstall_cell_timeout({int(seconds)})"
        )
        if isinstance(submission, str):  # a .py submission: nothing to do per cell
            return submission
        submission.cells.insert(0, cell)
        return submission
