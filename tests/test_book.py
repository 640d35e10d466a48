"""The book: it builds with warnings as errors, lists every notebook, and shows real runs."""
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from seqlab.course import booktools

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no lab"


def test_every_notebook_is_in_the_toc():
    listed = set(booktools.toc_pages(ROOT))
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
    from seqlab.course.cli import main

    assert main(["bootstrap", "--check"]) == 0
    assert "match" in capsys.readouterr().out


NOT_CHAPTERS = {"index", "preface", "instructors", "bibliography", "glossary"}
CHAPTERS = sorted(p for p in (ROOT / "book").glob("*.md") if p.stem not in NOT_CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_ends_with_exercises_and_hidden_solutions(path):
    """At least 3 exercises under a closing "Exercises" heading, each with a solution in a dropdown."""
    import re

    text = path.read_text()
    assert "\n## Exercises\n" in text, f"{path.name}: no '## Exercises' section"
    tail = text.split("\n## Exercises\n", 1)[1]
    assert "\n## " not in tail, f"{path.name}: the exercises must be the chapter's last section"
    labels = re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)", text)
    assert len(labels) >= 3, f"{path.name}: {len(labels)} exercises; every chapter needs at least 3"
    assert text.count("{exercise}") == len(labels), f"{path.name}: an exercise without a :label:"
    solutions = re.findall(r"````?\{solution\} ([\w-]+)\n((?::\w+:[^\n]*\n)*)", text)
    solved = {label: options for label, options in solutions}
    for label in labels:
        assert label in solved, f"{path.name}: exercise {label} has no solution"
        assert ":class: dropdown" in solved[label], f"{path.name}: the solution of {label} is not collapsed"


@pytest.mark.slow
def test_book_builds_with_solutions_hidden(tmp_path):
    """`make book HIDE_SOLUTIONS=1`, as instructors.md documents: exercises stay, solutions go."""
    result = subprocess.run(
        ["make", "book", "HIDE_SOLUTIONS=1", f"BOOK_OUT={tmp_path}", f"PY={sys.executable}",
         f"VENV={Path(sys.executable).parent.parent}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    page = (tmp_path / "_build" / "html" / "book" / "10-scaling.html").read_text()
    assert 'id="ex-scale-fit"' in page, "the exercises must stay"
    assert "least-squares slope" not in page and "solution" not in page.lower(), "a solution was published"


def test_instructors_run_time_table_matches_the_run_cards():
    """book/instructors.md's table of run times is generated (`python -m seqlab times --write`)."""
    assert booktools.times(ROOT, write=False) == []
    table = booktools.times_table(ROOT)
    assert table.count("\n") == len(NOTEBOOKS) + 1
    for path in NOTEBOOKS:  # every lab's committed budget shows a measured time
        budget = nbformat.read(path, as_version=4).metadata["seqlab"]["budget"]
        row = next(line for line in table.splitlines() if f"/notebooks/{path.stem}`" in line)
        cell = row.split("|")[3 if budget == "cpu" else 4]
        assert "min" in cell, row


def _svg_texts(path: Path) -> list[str]:
    import xml.etree.ElementTree as ET

    return ["".join(t.itertext()).strip() for t in ET.parse(path).iter("{http://www.w3.org/2000/svg}text")]


def test_front_page_timeline_is_drawn_from_its_table(tmp_path):
    """book/figures/timeline.svg is `python -m seqlab timeline` applied to book/timeline.csv."""
    rows = booktools.timeline_rows(ROOT)
    assert rows[0]["year"] == "1913" and int(rows[-1]["year"]) >= 2025
    fresh = booktools.timeline_figure(ROOT, tmp_path / "timeline.svg")
    committed = ROOT / booktools.TIMELINE_FIGURE
    assert _svg_texts(fresh) == _svg_texts(committed), "redraw it: python -m seqlab timeline"
    texts = _svg_texts(committed)
    for row in rows:
        assert row["event"] in texts and row["year"] in texts, row
    assert "figures/timeline.svg" in (ROOT / "book" / "index.md").read_text()


def test_timeline_rows_are_checked(tmp_path):
    copy = tmp_path / "repo"
    (copy / "book").mkdir(parents=True)
    shutil.copy(ROOT / "references.bib", copy / "references.bib")
    (copy / "book" / "01-ngrams.md").write_text("# x\n")
    (copy / "book" / "timeline.csv").write_text("year,event,part,chapter,cite\n1948,Shannon,I,01-ngrams,nosuchkey\n")
    with pytest.raises(ValueError, match="nosuchkey"):
        booktools.timeline_rows(copy)


def test_build_warns_about_a_notebook_with_an_error_output(tmp_path):
    """_ext/site_assets.py turns a stored error output into a warning, so `-W` fails the build."""
    import types

    sys.path.insert(0, str(ROOT / "_ext"))
    import site_assets

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1/0")])
    nb.cells[0].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                                  traceback=[])]
    nbformat.write(nb, tmp_path / "broken.ipynb")
    assert site_assets.notebook_errors(tmp_path / "broken.ipynb") == ["cell 0 raised ZeroDivisionError: division by zero"]
    warnings = []
    site_assets.logger.warning = lambda message, **kw: warnings.append(message)  # the test's own copy
    try:
        site_assets._check_notebooks(types.SimpleNamespace(srcdir=str(tmp_path)), None, ["broken", "absent"])
    finally:
        del site_assets.logger.warning
    assert warnings == ["broken.ipynb: cell 0 raised ZeroDivisionError: division by zero"]
    for path in NOTEBOOKS:
        assert site_assets.notebook_errors(path) == [], path.name
