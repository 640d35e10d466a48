"""The graded assignments (assignments/): they build, their solutions pass, and grading is fair.

For every master notebook: `otter assign` builds it (and runs every test against the
solutions), the solutions score full marks through `otter run`, the untouched student
notebook scores 0 without a crash, and a planted wrong answer loses exactly its question's
points. One submission that raises and loops forever is graded with a time-out and a score.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("manage", ROOT / "assignments" / "manage.py")
manage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(manage)

MASTERS = manage.masters()

# One typical mistake per assignment, planted in the solutions: (function, its wrong source).
# Nothing else in the assignment calls that function, so it must cost exactly its question.
PLANTED = {
    "01-kneser-ney": ("bits_per_token", "def bits_per_token(P, ids):\n"
                      "    ids = np.asarray(ids)\n"
                      "    return float(-np.log(P[ids[:-1], ids[1:]]).mean())   # nats, not bits\n"),
    "02-lstm-cell": ("forget_product", '''
def forget_product(xs, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c = h0, c0
    product = torch.ones_like(c0)
    for t in range(1, xs.shape[0]):        # "c_0 -> c_1 has no forget gate yet": skips step 1
        i, f, g, o = lstm_gates(xs[t], h, W_ih, W_hh, b_ih, b_hh)
        product = product * f
        c = f * c + i * g
        h = o * torch.tanh(c)
    return product
'''.lstrip()),
    "04-kv-cache-top-p": ("attend_with_cache", '''
def attend_with_cache(q, k, v, cache=None):
    if cache is not None:
        k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
    scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5
    weights = torch.softmax(scores, dim=-1)                              # forgot the causal mask
    return weights @ v, (k, v)
'''.lstrip()),
    "06-selective-scan": ("parallel_scan", '''
def parallel_scan(a, b, h0=None):
    if h0 is not None:
        b = torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:]], dim=1)
    d = 1
    while d < b.size(1):
        a_prev = torch.cat([torch.ones_like(a[:, :d]), a[:, :-d]], dim=1)
        b_prev = torch.cat([torch.zeros_like(b[:, :d]), b[:, :-d]], dim=1)
        a = a * a_prev                 # the combined decay of this round ...
        b = a * b_prev + b             # ... but b needs the decay from before the round
        d *= 2
    return b
'''.lstrip()),
    "03-masked-attention": ("multi_head_attention", '''
def multi_head_attention(query, key, value, params, n_heads, key_padding_mask=None, attn_mask=None):
    B, T_q, D = query.shape
    d_k = D // n_heads
    W_q, W_k, W_v = params["in_proj_weight"].chunk(3)
    b_q, b_k, b_v = params["in_proj_bias"].chunk(3)

    def project_and_split(x, W, b):
        return (x @ W.T + b).view(x.shape[0], x.shape[1], n_heads, d_k).transpose(1, 2)

    q, k, v = project_and_split(query, W_q, b_q), project_and_split(key, W_k, b_k), project_and_split(value, W_v, b_v)
    mask = None
    if key_padding_mask is not None:
        mask = ~key_padding_mask[:, None, None, :]
    if attn_mask is not None:
        mask = attn_mask if mask is None else mask & attn_mask
    out, weights = attention(q, k, v, mask)
    out = out.reshape(B, T_q, D)          # merges the heads without moving the head axis back
    return out @ params["out_proj.weight"].T + params["out_proj.bias"], weights
'''.lstrip()),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`make assignments`, as documented, into a temporary folder."""
    if not (Path(sys.executable).with_name("otter")).exists():
        pytest.fail("otter-grader is missing: it is in requirements-dev.txt (make venv)")
    out = tmp_path_factory.mktemp("assignments")
    result = subprocess.run(
        ["make", "assignments", f"ASSIGNMENTS_OUT={out}", f"PY={sys.executable}",
         f"VENV={Path(sys.executable).parent.parent}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return {name: manage.outputs(name, out) for name in MASTERS}


def solutions(built, name) -> nbformat.NotebookNode:
    return nbformat.read(built[name]["autograder"].with_name(f"{name}.ipynb"), as_version=4)


def replace_function(nb, function: str, source: str) -> None:
    cells = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(f"def {function}(")]
    assert len(cells) == 1, f"expected one cell defining {function}, found {len(cells)}"
    cells[0].source = source


def grade(built, name, nb, tmp_path, **kwargs) -> dict:
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return manage.grade_one(built[name]["autograder"], path, **kwargs)


def by_question(result) -> dict:
    return {t["name"]: (t["score"], t["max_score"]) for t in result["tests"]}


def test_there_is_an_assignment_per_part():
    parts = {name[:2] for name in MASTERS}
    assert {"01", "02", "03", "04", "06"} <= parts, f"assignments found: {sorted(MASTERS)}"


def test_instructors_table_lists_every_assignment_as_measured():
    """book/instructors.md's table is generated (`manage.py report --write`) from the masters and
    results/assignment-grading.json (`manage.py report --measure`)."""
    assert set(manage.COVERS) == set(MASTERS), "describe each assignment in manage.COVERS"
    assert manage.report(write=False) == []
    measured = json.loads(manage.TIMES_FILE.read_text())["assignments"]
    assert set(measured) == set(MASTERS), "re-measure: python assignments/manage.py report --measure"
    for name, m in measured.items():
        assert m["solutions"]["score"] == m["solutions"]["possible"] == 10, (name, m)
        assert m["untouched"]["score"] == 0, (name, m)


@pytest.mark.parametrize("name", MASTERS)
def test_master_has_public_and_hidden_tests_per_question(name):
    qs = manage.questions(MASTERS[name])
    assert len(qs) >= 3 and sum(q["points"] for q in qs.values()) == 10, qs
    for q, info in qs.items():
        assert info["public"] >= 1 and info["hidden"] >= 1, f"{name} {q}: {info}"


@pytest.mark.slow
@pytest.mark.parametrize("name", MASTERS)
def test_solutions_score_full_marks_and_students_get_no_solutions(built, name, tmp_path):
    result = grade(built, name, solutions(built, name), tmp_path)
    assert result["score"] == result["possible"] == 10, result
    assert not result["errors"], result["errors"]
    qs = manage.questions(MASTERS[name])
    assert by_question(result) == {q: (v["points"], v["points"]) for q, v in qs.items()}
    student = nbformat.read(built[name]["student"], as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "# BEGIN SOLUTION" not in text and "# HIDDEN" not in text
    # the setup cell, generated from _config.yml, installs the package from the course's repository
    url, branch = manage._repository()
    assert f"git+{url}@{branch}" in student.cells[1].source


@pytest.mark.slow
@pytest.mark.parametrize("name", MASTERS)
def test_untouched_student_notebook_scores_zero_without_crashing(built, name, tmp_path):
    result = grade(built, name, nbformat.read(built[name]["student"], as_version=4), tmp_path)
    assert result["possible"] == 10 and result["score"] == 0, result
    assert not result["timed_out"]
    for t in result["tests"]:  # each failure is explained in a sentence, not a traceback
        assert "Traceback" not in t["output"], t["output"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_wrong_answer_loses_exactly_its_points(built, name, tmp_path):
    function, wrong = PLANTED[name]
    nb = solutions(built, name)
    replace_function(nb, function, wrong)
    result = grade(built, name, nb, tmp_path)
    scores = by_question(result)
    lost = [q for q, (score, possible) in scores.items() if score != possible]
    assert len(lost) == 1, scores
    assert scores[lost[0]][0] == 0
    assert result["score"] == 10 - scores[lost[0]][1]


@pytest.mark.slow
def test_a_submission_that_raises_and_loops_is_graded_with_a_time_out(built, tmp_path, monkeypatch):
    name = "01-kneser-ney"
    monkeypatch.setenv("SEQLAB_CALL_TIMEOUT", "2")
    nb = solutions(built, name)
    function, _ = PLANTED[name]
    # a function that never returns (its question's tests stop it), a cell that raises,
    # and a cell that loops forever (the per-cell limit stops it)
    replace_function(nb, function, f"def {function}(P, ids):\n    while True:\n        pass\n")
    nb.cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('not finished')"))
    nb.cells.insert(4, nbformat.v4.new_code_cell("import time\nwhile True:\n    time.sleep(0.1)"))
    result = grade(built, name, nb, tmp_path, cell_timeout=3)
    assert not result["timed_out"]
    assert any("RuntimeError: not finished" in e for e in result["errors"]), result["errors"]
    assert any("TimeLimit" in e for e in result["errors"]), result["errors"]
    points = manage.questions(MASTERS[name])
    lost = next(q for q, (score, possible) in by_question(result).items() if score < possible)
    assert result["score"] == 10 - points[lost]["points"], result
    feedback = next(t["output"] for t in result["tests"] if t["name"] == lost)
    assert f"`{function}` did not return within 2 s" in feedback


@pytest.mark.slow
def test_a_submission_that_ignores_the_cell_limit_is_stopped_whole(built, tmp_path):
    name = "01-kneser-ney"
    nb = solutions(built, name)
    nb.cells.insert(3, nbformat.v4.new_code_cell(
        "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n    except BaseException:\n        pass"))
    result = grade(built, name, nb, tmp_path, cell_timeout=2, timeout=25)
    assert result["timed_out"] and result["score"] == 0
    assert "ran past 25 s" in result["errors"][0]
