"""The book: it builds with warnings as errors, lists every notebook, and shows real runs."""
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from seqlab import booktools

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _toc_files(entries):
    for entry in entries or []:
        if "file" in entry:
            yield entry["file"]
        for key in ("sections", "chapters", "parts"):
            yield from _toc_files(entry.get(key))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no lab"


def test_every_notebook_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = set(_toc_files(toc.get("parts"))) | {toc["root"]}
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in listed, f"{nb.name} is not in _toc.yml"
    for name in listed:  # and every TOC entry exists
        assert any((ROOT / f"{name}{ext}").exists() for ext in (".md", ".ipynb")), name


def test_bootstrap_cells_match_config():
    assert booktools.bootstrap(ROOT, write=False) == []


def test_bootstrap_drift_is_caught_and_fixed(tmp_path):
    copy = tmp_path / "repo"
    (copy / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", copy / "_config.yml")
    shutil.copy(NOTEBOOKS[0], copy / "notebooks" / NOTEBOOKS[0].name)
    config = (copy / "_config.yml").read_text()
    (copy / "_config.yml").write_text(config.replace("seqlab-course/", "someone-else/"))
    problems = booktools.bootstrap(copy, write=False)
    assert len(problems) == 1 and "differs" in problems[0]
    assert booktools.bootstrap(copy, write=True) == []
    assert booktools.bootstrap(copy, write=False) == []
    cell = booktools._bootstrap_cell(nbformat.read(copy / "notebooks" / NOTEBOOKS[0].name, 4))
    assert "someone-else/" in cell.source


def test_execute_refuses_the_smoke_budget():
    with pytest.raises(SystemExit, match="smoke"):
        booktools.execute([], budget="smoke")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_executed_top_to_bottom_with_a_full_budget(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not one top-to-bottom run: {counts}"
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", f"{path.name}: a cell raised {out.get('ename')}"
    meta = nb.metadata.get("seqlab", {})
    assert meta.get("budget") in ("cpu", "gpu"), f"{path.name}: not executed by `make execute`"
    text = "".join(o.get("text", "") for o in code[-1].outputs if o.output_type == "stream")
    assert "Run card" in text, f"{path.name}: the last cell must print the run card"
    card = dict(line.split(None, 1) for line in text.split("Run card")[1].splitlines() if line[:1].isalpha())
    assert card.get("budget", "").strip() == meta["budget"], f"{path.name}: run card budget {card.get('budget')}"


@pytest.mark.slow
def test_book_builds_with_warnings_as_errors(tmp_path):
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "-W", "--keep-going", "--path-output", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    assert (html / "notebooks" / "01-ngrams.html").exists()
    page = (html / "book" / "01-ngrams.html").read_text()
    assert "exercise" in page.lower()


def test_cli_bootstrap_check_flag_as_documented(capsys):
    """README documents `python -m seqlab bootstrap --check`; it must exist and pass."""
    assert booktools.main(["bootstrap", "--check"]) == 0
    assert "match" in capsys.readouterr().out
