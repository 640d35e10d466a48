"""The number policy: chapters quote measurements only through values generated from committed runs."""
import shutil
from pathlib import Path

import pytest

from seqlab.course import numbers
from seqlab.course.numbers import bare_numbers, sync_page
from seqlab.course.sources import Sources, parse_run_card, sci

ROOT = Path(__file__).resolve().parents[1]


def test_every_quoted_number_matches_the_committed_runs():
    assert numbers.numbers(ROOT, write=False) == []


def test_no_chapter_types_a_measured_number():
    assert numbers.typed_numbers(ROOT) == {}


def test_every_prose_page_is_linted():
    from seqlab.course.pages import PAGES, PROSE_PAGES

    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "book").glob("*.md")} - {"book/bibliography.md"}
    assert pages == set(PROSE_PAGES)
    assert set(PAGES) <= set(PROSE_PAGES)


def test_run_card_parsing():
    text = "noise\nRun card\n" + "-" * 40 + "\nbudget      cpu\nval bpc RNN (100,039 params)  2.432\nlast  a / b\n"
    assert parse_run_card(text) == {"budget": "cpu", "val bpc RNN (100,039 params)": "2.432", "last": "a / b"}
    with pytest.raises(ValueError):
        parse_run_card("no card here")


def test_sources_read_cards_outputs_and_results():
    src = Sources(ROOT)
    assert src.card("08-gpt")["budget"] in ("cpu", "gpu")
    with pytest.raises(KeyError, match="has no"):
        src.value("08-gpt", "no such key")
    with pytest.raises(LookupError, match="matches 0 times"):
        src.output("08-gpt", r"a pattern that is printed nowhere (\d+)")
    assert src.result("leaderboard-cpu")["benchmark"] == "leaderboard"


def test_lint_skips_math_code_and_generated_numbers_but_not_prose():
    text = ("---\nmyst:\n  substitutions:\n    x: \"1.234\"\n---\n"
            "Math $0.044715 z^3$ and $$1.25$$, code `lr=0.003`, a value {{ x }},\n"
            "```python\ny = 2.71828\n```\n"
            "but 2.754 bits and 42.5% typed by hand; 0.5 and 1,000 are not flagged; 1.4697 is allowed.\n")
    assert bare_numbers(text, {"1.4697": "published"}) == ["2.754", "42.5%"]


def test_sci():
    assert sci("3.0e-07") == "3.0 × 10⁻⁷"
    assert sci(6.7e-16) == "6.7 × 10⁻¹⁶"
    assert sci(0.0) == "0"


def test_drift_is_caught_and_rewritten(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\nThe loss is {{ loss }}.\n")
    assert any("differ" in p for p in sync_page(page, {"loss": "1.909"}, write=False))
    assert sync_page(page, {"loss": "1.909"}, write=True) == []
    assert page.read_text().startswith("---\nmyst:\n  substitutions:\n")
    assert 'loss: "1.909"' in page.read_text()
    assert sync_page(page, {"loss": "1.909"}, write=False) == []
    problems = sync_page(page, {"loss": "1.950"}, write=False)           # a re-run changed the number
    assert problems and "python -m seqlab numbers --write" in problems[0]
    problems = sync_page(page, {"loss": "1.909", "unused": "2"}, write=False)
    assert any("never used" in p for p in problems)
    page.write_text(page.read_text() + "And {{ undefined }}.\n")
    assert any("undefined" in p and "used" in p for p in sync_page(page, {"loss": "1.909"}, write=False))


def test_a_figure_drawn_from_old_data_is_caught(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = tmp_path / "results.json"
    data.write_text('{"a": 1}')

    def draw(root):
        fig, ax = plt.subplots()
        ax.plot([1, 2], [3, 4])
        return fig

    assert numbers.sync_figure(tmp_path, "fig.svg", "results.json", draw, write=False)   # missing
    assert numbers.sync_figure(tmp_path, "fig.svg", "results.json", draw, write=True) == []
    assert numbers.sync_figure(tmp_path, "fig.svg", "results.json", draw, write=False) == []
    data.write_text('{"a": 2}')                                                       # new data
    assert numbers.sync_figure(tmp_path, "fig.svg", "results.json", draw, write=False)


def test_a_figure_drawn_from_a_notebook_follows_its_outputs_only(tmp_path):
    """Editing a lab's prose leaves its figure fresh; a new output makes it stale."""
    import json

    import matplotlib.pyplot as plt

    def notebook(markdown, output):
        return json.dumps({"cells": [{"cell_type": "markdown", "source": markdown},
                                     {"cell_type": "code", "source": "print(1)",
                                      "outputs": [{"output_type": "stream", "text": output}]}]})

    def draw(root):
        fig, ax = plt.subplots()
        ax.plot([1, 2], [3, 4])
        return fig

    lab = tmp_path / "lab.ipynb"
    lab.write_text(notebook("# A lab", "1.234"))
    assert numbers.sync_figure(tmp_path, "fig.svg", "lab.ipynb", draw, write=True) == []
    lab.write_text(notebook("# A lab, reworded", "1.234"))
    assert numbers.sync_figure(tmp_path, "fig.svg", "lab.ipynb", draw, write=False) == []
    lab.write_text(notebook("# A lab, reworded", "1.235"))
    assert numbers.sync_figure(tmp_path, "fig.svg", "lab.ipynb", draw, write=False)


def test_a_changed_run_card_is_caught(tmp_path):
    """Change a committed run card's number in a copy of the book: the check fails, --write fixes it."""
    import nbformat

    copy = tmp_path / "book"
    for part in ("book", "notebooks", "results"):
        shutil.copytree(ROOT / part, copy / part)
    path = copy / "notebooks" / "08-gpt.ipynb"
    nb = nbformat.read(path, 4)
    out = nb.cells[-1].outputs[0]
    out["text"] = out["text"].replace("val loss, whole split (nats/char)          1.909",
                                      "val loss, whole split (nats/char)          1.401")
    nbformat.write(nb, path)
    problems = numbers.numbers(copy, write=False)
    assert any("08-gpt.md" in p for p in problems)
    numbers.numbers(copy, write=True)
    text = (copy / "book" / "08-gpt.md").read_text()
    assert 'gpt_val: "1.401"' in text
    assert "The Transformer is ahead of the n-gram model" in text                   # the verdict flips


def test_lint_reads_exercises_and_solutions_but_not_code():
    text = ("```{exercise} E\n:label: e\n\nThe loss fell to 1.234.\n```\n\n"
            "````{solution} e\n:class: dropdown\n\nIt is 2.345.\n````\n\n"
            "```python\nx = 3.456\n```\n\n```{code-block} python\ny = 4.567\n```\n")
    assert bare_numbers(text) == ["1.234", "2.345"]
