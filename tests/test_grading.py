"""seqlab.grading: the messages a student sees, and the time limits that keep grading alive."""
import time
import types

import nbformat
import numpy as np
import pytest
import torch

from seqlab import grading
from seqlab.grading import call, expect_close, expect_number, expect_tensor


def message(fn, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as err:
        fn(*args, **kwargs)
    text = str(err.value)
    assert "\n" not in text, "a student's message is one sentence, not a traceback"
    return text


def test_call_explains_each_way_a_student_function_fails():
    def boom(x):
        raise ValueError("bad x")

    def todo(x):
        raise NotImplementedError

    def nothing(x):
        ...

    assert call(lambda x: x + 1, 1, name="f") == 2
    assert "`f` is not defined" in message(call, None, 1, name="f")
    assert "should be a function" in message(call, 3, 1, name="f")
    assert message(call, boom, 1) == "`boom` raised ValueError: bad x"
    assert "not written yet" in message(call, todo, 1)
    assert "returned None" in message(call, nothing, 1)


def test_call_stops_an_infinite_loop_and_restores_an_outer_limit():
    def spin():
        while True:
            pass

    start = time.monotonic()
    assert "did not return within 1 s" in message(call, spin, seconds=1)
    assert time.monotonic() - start < 5
    # inside an enclosing limit (a cell's), the call's own limit ends the loop and the outer
    # limit keeps running afterwards
    with pytest.raises(grading.TimeLimit, match="outer"):
        with grading._alarm(3, "outer"):
            message(call, spin, seconds=1)
            spin()
    assert grading.signal.alarm(0) == 0, "no alarm may be left armed"


def test_expect_messages_name_shape_dtype_kind_and_the_first_wrong_value():
    want = torch.zeros(2, 3, dtype=torch.float64)
    assert message(expect_close, torch.zeros(3, 2, dtype=torch.float64), want, name="h", hint="(batch, hidden)") \
        == "h has shape (3, 2); expected (2, 3) (batch, hidden)."
    assert "dtype torch.float32; expected torch.float64" in message(expect_close, torch.zeros(2, 3), want, name="h")
    assert "should be a torch.Tensor, but it is a ndarray" in message(expect_close, np.zeros((2, 3)), want, name="h")
    assert "should be a numpy array, but it is a list" in message(expect_close, [0.0], np.zeros(1), name="p")
    got = want.clone()
    got[1, 2] = 0.5
    text = message(expect_close, got, want, name="h", atol=1e-6)
    assert "off by up to 0.5" in text and "index (1, 2)" in text
    assert "NaN" in message(expect_close, torch.full((2, 3), float("nan"), dtype=torch.float64), want, name="h")
    expect_close(want + 1e-9, want, name="h", atol=1e-8)          # within tolerance: no error
    mask = torch.ones(2, 2, dtype=torch.bool).tril()
    assert message(expect_close, mask.T.contiguous(), mask, name="mask") == \
        "mask is wrong in 2 of 4 entries; the first at index (0, 1): got True, expected False."
    assert message(expect_close, mask.long(), mask, name="mask") == \
        "mask has dtype torch.int64; expected torch.bool."
    assert "index (2,)" in message(expect_close, np.array([1, 2, 4]), np.array([1, 2, 3]), name="counts")
    expect_tensor(want, name="h", shape=(2, 3), dtype=torch.float64)
    assert "is 1.5; expected 1" in message(expect_number, 1.5, 1.0, name="bits")
    assert "should be a number" in message(expect_number, None, 1.0, name="bits")
    expect_number(torch.tensor(2.0), 2.0, name="loss")


def test_cell_timeout_stops_a_looping_cell_and_the_next_cell_runs():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        grading.install_cell_timeout(1)
        start = time.monotonic()
        looped = shell.run_cell("while True:\n    pass")
        assert isinstance(looped.error_in_exec, grading.TimeLimit)
        assert time.monotonic() - start < 5
        # a student's `except Exception` cannot swallow the stop
        caught = shell.run_cell("while True:\n    try:\n        pass\n    except Exception:\n        pass")
        assert isinstance(caught.error_in_exec, grading.TimeLimit)
        assert shell.run_cell("x = 1 + 1").success and shell.user_ns["x"] == 2
    finally:
        InteractiveShell.clear_instance()
        grading.signal.alarm(0)


def test_plugin_adds_the_limit_first_and_reports_cells_that_failed(monkeypatch):
    monkeypatch.delenv("SEQLAB_CELL_TIMEOUT", raising=False)
    plugin = grading.CellTimeout("sub.ipynb", {}, {"seconds": 45})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nb = plugin.before_execution(nb)
    assert nb.cells[0].source.endswith("install_cell_timeout(45)") and nb.cells[1].source == "x = 1"
    monkeypatch.setenv("SEQLAB_CELL_TIMEOUT", "7")
    assert plugin.before_execution(nbformat.v4.new_notebook()).cells[0].source.endswith("(7)")
    failed = nbformat.v4.new_code_cell("while True:\n    pass")
    failed.outputs = [nbformat.v4.new_output("error", ename="TimeLimit", evalue="stopped", traceback=[])]
    plugin.after_grading(types.SimpleNamespace(notebook=nbformat.v4.new_notebook(cells=[failed])))
    report = plugin.generate_report()
    assert report.startswith(grading.CellTimeout.REPORT_TITLE) and "'while True:': TimeLimit: stopped" in report
