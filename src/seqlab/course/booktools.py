"""Course tooling (not needed inside a lab): the Colab bootstrap cell and ``make execute``.

``python -m seqlab bootstrap --check``   fail if any notebook's bootstrap cell drifted from _config.yml
``python -m seqlab bootstrap --write``   rewrite every notebook's bootstrap cell from _config.yml
``python -m seqlab execute [NB ...]``    run notebooks top to bottom in place with a full budget
``python -m seqlab times [--write]``     check (rewrite) the instructors' run-time table from the run cards
``python -m seqlab bench rnn|attention|gpt`` side-by-side benchmarks (see :mod:`seqlab.bench`)

The repository's address lives in one place, ``repository.url`` in ``_config.yml``; the
bootstrap cell of every notebook is generated from it.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path

BOOTSTRAP_TAG = "colab-bootstrap"


def repo_root(start: Path | None = None) -> Path:
    """The folder holding ``_config.yml``, searching upwards from ``start`` (default: cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").exists():
            return folder
    raise FileNotFoundError(f"no _config.yml in {here} or any parent folder")


def repository_url(root: Path) -> tuple[str, str]:
    """(url, branch) from ``_config.yml``."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config.get("repository") or {}
    if not repo.get("url"):
        raise ValueError(f"{root / '_config.yml'} has no repository.url")
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def bootstrap_source(url: str, branch: str) -> str:
    """The exact source of the Colab bootstrap cell for a repository."""
    return (
        "# Colab bootstrap: installs seqlab when this notebook runs in Google Colab; does nothing elsewhere.\n"
        "# Generated from _config.yml by `python -m seqlab bootstrap --write`; do not edit by hand.\n"
        "import subprocess, sys\n"
        "if \"google.colab\" in sys.modules:\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                    \"seqlab @ git+{url}@{branch}\"], check=True)"
    )


def notebooks(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb"))


def _bootstrap_cell(nb):
    for cell in nb.cells:
        if cell.cell_type == "code" and BOOTSTRAP_TAG in cell.metadata.get("tags", []):
            return cell
    return None


LINKS_START, LINKS_END = "<!-- lab-links: start -->", "<!-- lab-links: end -->"


def toc_pages(root: Path) -> list[str]:
    """Every page of ``_toc.yml`` in reading order (the root first), e.g. ``"book/01-ngrams"``."""
    import yaml

    def files(entries):
        for entry in entries or []:
            if "file" in entry:
                yield entry["file"]
            for key in ("sections", "chapters", "parts"):
                yield from files(entry.get(key))

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [toc["root"], *files(toc.get("parts"))]


def chapter_labs(root: Path) -> dict[str, list[str]]:
    """{chapter page stem: [its labs' notebook stems]}, from the sections of ``_toc.yml``."""
    import yaml

    found = {}

    def walk(entries):
        for entry in entries or []:
            labs = [s["file"].split("/", 1)[1] for s in entry.get("sections", []) if s.get("file", "").startswith("notebooks/")]
            if entry.get("file", "").startswith("book/") and labs:
                found[entry["file"].split("/", 1)[1]] = labs
            for key in ("chapters", "parts", "sections"):
                walk(entry.get(key))

    if (root / "_toc.yml").exists():
        walk(yaml.safe_load((root / "_toc.yml").read_text()).get("parts"))
    return found


def lab_links(url: str, branch: str, labs: list[str]) -> str:
    """The buttons under a chapter's title: open each of its labs in Colab, or download it."""
    if "github.com/" not in url:
        raise ValueError(f"repository.url {url!r} is not a GitHub address; Colab opens notebooks from GitHub")
    repo = url.split("github.com/", 1)[1]
    lines = []
    for lab in labs:
        lines += [f"```{{button-link}} https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{lab}.ipynb",
                  ":color: primary", ":outline:", "", f"Open the lab in Colab: {lab}.ipynb", "```",
                  f"{{download}}`Download the notebook <../notebooks/{lab}.ipynb>`", ""]
    return "\n".join(lines).rstrip()


def _sync_chapter_links(root: Path, url: str, branch: str, write: bool) -> list[str]:
    problems = []
    for chapter, labs in chapter_labs(root).items():
        page = root / "book" / f"{chapter}.md"
        text = page.read_text()
        if LINKS_START not in text:  # first time: under the title
            title, rest = text.split("\n", 1)
            text = f"{title}\n\n{LINKS_START}\n{LINKS_END}\n{rest}"
            if write:
                page.write_text(text)
        problems += sync_block(page, LINKS_START, LINKS_END, lab_links(url, branch, labs), write,
                               "python -m seqlab bootstrap --write")
    return problems


CITE_START, CITE_END = "<!-- citation: start -->", "<!-- citation: end -->"


def citation(root: Path, url: str) -> str:
    """The BibTeX entry on the front page, with the repository's address from ``_config.yml``."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    return "\n".join([
        "```bibtex",
        "@misc{ngrams2mamba,",
        f"  title        = {{{config['title']}: a history of sequence models, told as experiments you can run}},",
        f"  author       = {{{{{config['author']}}}}},",
        f"  year         = {{{config['copyright']}}},",
        f"  howpublished = {{\\url{{{url}}}}},",
        "  note         = {Online book, lab notebooks and the seqlab library}",
        "}",
        "```",
    ])


def bootstrap(root: Path, write: bool) -> list[str]:
    """Check (or rewrite) every notebook's bootstrap cell, and the Colab and download buttons
    under each chapter's title. Returns a list of problems."""
    import nbformat

    expected = bootstrap_source(*repository_url(root))
    problems = []
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        cell = _bootstrap_cell(nb)
        if cell is None:
            problems.append(f"{path.name}: no code cell tagged {BOOTSTRAP_TAG!r}")
            continue
        if cell.source != expected:
            if write:
                cell.source = expected
                nbformat.write(nb, path)
                print(f"rewrote the bootstrap cell of {path.name}")
            else:
                problems.append(f"{path.name}: bootstrap cell differs from the one _config.yml generates")
    url, branch = repository_url(root)
    problems += _sync_chapter_links(root, url, branch, write)
    if (root / "book" / "index.md").exists():
        problems += sync_block(root / "book" / "index.md", CITE_START, CITE_END, citation(root, url), write,
                               "python -m seqlab bootstrap --write")
    return problems


def execute(paths: list[Path], budget: str | None = None, timeout: int = 1800) -> None:
    """Run each notebook top to bottom in place with a full budget, storing widget state."""
    import nbformat
    from nbclient import NotebookClient

    import torch

    budget = budget or os.environ.get("SEQLAB_BUDGET") or ("gpu" if torch.cuda.is_available() else "cpu")
    if budget not in ("cpu", "gpu"):
        raise SystemExit(
            f"refusing to execute with budget {budget!r}: committed outputs must come from a full "
            "run (cpu or gpu). smoke is for tests only."
        )
    os.environ["SEQLAB_BUDGET"] = budget
    os.environ.pop("CI", None)  # CI would force smoke in runtime.budget() otherwise
    for path in paths:
        path = path.resolve()
        nb = nbformat.read(path, as_version=4)
        print(f"executing {path.name} with budget {budget} ...", flush=True)
        start = time.perf_counter()
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
        seconds = time.perf_counter() - start
        nb.metadata["seqlab"] = {
            "budget": budget,
            "executed": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_time_s": round(seconds, 1),
        }
        nbformat.write(nb, path)
        print(f"  done in {seconds:.0f} s -> {path}")


def config_without_solutions(root: Path, out: Path) -> Path:
    """Write a copy of ``_config.yml`` to ``out`` that hides every exercise's solution.

    (sphinx-exercise's ``hide_solutions``; ``make book HIDE_SOLUTIONS=1`` builds with it.) Paths
    that Jupyter Book reads relative to the config file are made absolute.
    """
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())
    sphinx = config.setdefault("sphinx", {})
    sphinx.setdefault("config", {})["hide_solutions"] = True
    sphinx["local_extensions"] = {name: str((root / path).resolve())
                                  for name, path in (sphinx.get("local_extensions") or {}).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


# ----------------------------------------------------------------------------- the front page's timeline
TIMELINE_DATA = Path("book") / "timeline.csv"
TIMELINE_FIGURE = Path("book") / "figures" / "timeline.svg"
PARTS = {"I": "Counting", "II": "Recurrence", "III": "Attention", "IV": "Pre-training",
         "V": "The hardware lottery", "VI": "Beyond attention", "VII": "The grand comparison"}


def timeline_rows(root: Path) -> list[dict]:
    """The rows of ``book/timeline.csv``, checked: a year, a part, an existing chapter, a cited key."""
    import csv

    bib = (root / "references.bib").read_text()
    rows = list(csv.DictReader((root / TIMELINE_DATA).open()))
    for i, row in enumerate(rows, start=2):
        where = f"{TIMELINE_DATA}, line {i}"
        if not row["year"].isdigit():
            raise ValueError(f"{where}: year {row['year']!r} is not a year")
        if row["part"] not in PARTS:
            raise ValueError(f"{where}: part {row['part']!r} is not one of {list(PARTS)}")
        if not (root / "book" / f"{row['chapter']}.md").exists():
            raise ValueError(f"{where}: no chapter book/{row['chapter']}.md")
        if f"{{{row['cite']},".lower() not in bib.lower():
            raise ValueError(f"{where}: {row['cite']!r} is not in references.bib")
    if [int(r["year"]) for r in rows] != sorted(int(r["year"]) for r in rows):
        raise ValueError(f"{TIMELINE_DATA}: rows must be in order of year")
    return rows


def timeline_figure(root: Path, out: Path | None = None) -> Path:
    """Draw the history as a vertical timeline from ``book/timeline.csv``: one dot per idea,
    coloured by the part of the course that tells it. Writes an SVG whose text stays text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = timeline_rows(root)
    out = out or root / TIMELINE_FIGURE
    colours = dict(zip(PARTS, plt.get_cmap("tab10").colors))
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "seqlab-timeline"}):
        fig, ax = plt.subplots(figsize=(8.5, 0.34 * len(rows) + 1.2))
        ys = range(len(rows) - 1, -1, -1)
        ax.plot([0, 0], [-0.6, len(rows) - 0.4], color="0.8", lw=2, zorder=1)
        for y, row in zip(ys, rows):
            ax.scatter([0], [y], s=55, color=colours[row["part"]], zorder=2)
            ax.text(-0.12, y, row["year"], ha="right", va="center", fontsize=10, fontweight="bold")
            ax.text(0.12, y, row["event"], ha="left", va="center", fontsize=10)
        used = [p for p in PARTS if any(r["part"] == p for r in rows)]
        handles = [plt.Line2D([], [], ls="", marker="o", color=colours[p], label=f"Part {p}: {PARTS[p]}")
                   for p in used]
        ax.legend(handles=handles, loc="lower right", frameon=False, fontsize=9)
        ax.set_xlim(-0.9, 5.0)
        ax.set_ylim(-0.8, len(rows) - 0.2)
        ax.axis("off")
        ax.set_title(f"From n-grams to Mamba: {rows[0]['year']} to {rows[-1]['year']}", fontsize=12, loc="left")
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
        plt.close(fig)
    return out


# ----------------------------------------------------------------------------- run times per lab
TIMES_FILE = Path("results") / "smoke-times.json"
TIMES_PAGE = Path("book") / "instructors.md"
TIMES_START, TIMES_END = "<!-- lab-times: start -->", "<!-- lab-times: end -->"


def measure_smoke(root: Path, paths: list[Path] | None = None, timeout: int = 600) -> dict:
    """Run each lab once under the smoke budget (outputs discarded); write and return the times.

    The file records the machine, its CPU count and the load average around each run, so
    that a time measured on a busy machine can be recognised as such.
    """
    import json
    import platform

    import nbformat
    from nbclient import NotebookClient

    import torch

    os.environ["SEQLAB_BUDGET"] = "smoke"
    times = {}
    for path in paths or notebooks(root):
        nb = nbformat.read(path, as_version=4)
        load = os.getloadavg()[0]
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        times[path.stem] = {"seconds": round(time.perf_counter() - start, 1), "load_before": round(load, 2)}
        print(f"{path.stem}: {times[path.stem]['seconds']} s (load {load:.2f} before)", flush=True)
    record = {
        "budget": "smoke",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU used",
        "torch": torch.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m seqlab times --measure-smoke",
        "times": times,
    }
    (root / TIMES_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def _card_device(nb) -> str:
    """The device line of a notebook's run card (its last cell), e.g. ``cuda (NVIDIA H200)``."""
    text = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
    for line in text.splitlines():
        if line.startswith("device"):
            return line.split(None, 1)[1].strip()
    return "?"


def lab_times(root: Path) -> dict[str, dict[str, str]]:
    """{lab: {"smoke", "cpu", "gpu": measured wall time or "not measured"}} from the smoke file
    and each notebook's committed run (its metadata and run card)."""
    import json

    import nbformat

    smoke = json.loads((root / TIMES_FILE).read_text()) if (root / TIMES_FILE).exists() else {"times": {}}
    found = {}
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        meta = nb.metadata.get("seqlab", {})
        times = {"smoke": "not measured", "cpu": "not measured", "gpu": "not measured"}
        if meta.get("budget") in ("cpu", "gpu"):
            minutes = meta["wall_time_s"] / 60
            device = _card_device(nb)
            if "(" in device:                       # "cuda (NVIDIA H200)" -> "NVIDIA H200"
                device = device.split("(", 1)[1].rstrip(")")
            times[meta["budget"]] = f"{minutes:.1f} min" + ("" if meta["budget"] == "cpu" else f" on {device}")
        if path.stem in smoke["times"]:
            times["smoke"] = f"{smoke['times'][path.stem]['seconds']:.0f} s"
        found[path.stem] = times
    return found


def times_table(root: Path) -> str:
    """Markdown table: each lab's measured wall time per budget (smoke file, committed run cards)."""
    rows = ["| Lab | `smoke` | `cpu` (2-core CPU) | `gpu` |", "| --- | --- | --- | --- |"]
    for lab, t in lab_times(root).items():
        rows.append(f"| {{doc}}`/notebooks/{lab}` | {t['smoke']} | {t['cpu']} | {t['gpu']} |")
    return "\n".join(rows)


def run_time_note(times: dict[str, str]) -> str:
    """The sentence at the top of a lab that states its measured run time per budget."""
    def said(budget):
        t = times[budget]
        if t == "not measured":
            return f"`{budget}` not measured yet"
        return f"`{budget}` {t}" + (" on a 2-core CPU" if budget in ("smoke", "cpu") else "")

    return (f"**Run time** (measured for this book): {'; '.join(said(b) for b in ('smoke', 'cpu', 'gpu'))}. "
            "Where a budget has no measurement yet, the setup cell prints an estimate.")


def _sync_cell_block(path: Path, start: str, end: str, body: str, write: bool, fix: str) -> list[str]:
    """:func:`sync_block` for the first markdown cell of a notebook (the block is appended when missing)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown")
    text = cell.source if start in cell.source else f"{cell.source.rstrip()}\n\n{start}\n{end}"
    fresh = _fill_block(text, start, end, body)
    if fresh == cell.source:
        return []
    if write:
        cell.source = fresh
        nbformat.write(nb, path)
        print(f"rewrote the run-time note of {path.name}")
        return []
    return [f"{path.name}: its run-time note is stale; run `{fix}`"]


def _fill_block(text: str, start: str, end: str, body: str) -> str:
    """``text`` with whatever lies between the markers ``start`` and ``end`` replaced by ``body``."""
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{body}\n{end}{rest.split(end, 1)[1]}"


def sync_block(page: Path, start: str, end: str, body: str, write: bool, fix: str) -> list[str]:
    """Check (or rewrite) the generated text between the markers ``start`` and ``end`` of ``page``.

    Returns a list of problems (empty when the block already holds ``body`` or was rewritten);
    ``fix`` is the command that regenerates it, named in the problem.
    """
    text = page.read_text()
    if start not in text or end not in text:
        return [f"{page.name}: no {start} ... {end} block"]
    fresh = _fill_block(text, start, end, body)
    if fresh == text:
        return []
    if write:
        page.write_text(fresh)
        print(f"rewrote a generated block of {page.name}")
        return []
    return [f"{page.name}: a generated block is stale; run `{fix}`"]


RUN_TIME_START, RUN_TIME_END = "<!-- run-time: start -->", "<!-- run-time: end -->"


def times(root: Path, write: bool) -> list[str]:
    """Check (or rewrite) the run-time table of the instructors' guide and the run-time note
    at the top of every lab. Returns a list of problems."""
    fix = "python -m seqlab times --write"
    problems = sync_block(root / TIMES_PAGE, TIMES_START, TIMES_END, times_table(root), write, fix)
    for lab, t in lab_times(root).items():
        problems += _sync_cell_block(root / "notebooks" / f"{lab}.ipynb", RUN_TIME_START, RUN_TIME_END,
                                     run_time_note(t), write, fix)
    return problems
