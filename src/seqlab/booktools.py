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
import sys
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


def bootstrap(root: Path, write: bool) -> list[str]:
    """Check (or rewrite) every notebook's bootstrap cell. Returns a list of problems."""
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


def times_table(root: Path) -> str:
    """Markdown table: each lab's measured wall time per budget (smoke file, committed run cards)."""
    import json

    import nbformat

    smoke = json.loads((root / TIMES_FILE).read_text()) if (root / TIMES_FILE).exists() else {"times": {}}
    rows = ["| Lab | `smoke` | `cpu` (2-core CPU) | `gpu` |", "| --- | --- | --- | --- |"]
    for path in notebooks(root):
        nb = nbformat.read(path, as_version=4)
        meta = nb.metadata.get("seqlab", {})
        cells = {"cpu": "not measured", "gpu": "not measured"}
        if meta.get("budget") in cells:
            minutes = meta["wall_time_s"] / 60
            cells[meta["budget"]] = f"{minutes:.1f} min" + ("" if meta["budget"] == "cpu" else f", {_card_device(nb)}")
        s = smoke["times"].get(path.stem)
        quick = f"{s['seconds']:.0f} s" if s else "not measured"
        rows.append(f"| {{doc}}`/notebooks/{path.stem}` | {quick} | {cells['cpu']} | {cells['gpu']} |")
    return "\n".join(rows)


def sync_block(page: Path, start: str, end: str, body: str, write: bool, fix: str) -> list[str]:
    """Check (or rewrite) the generated text between the markers ``start`` and ``end`` of ``page``.

    Returns a list of problems (empty when the block already holds ``body`` or was rewritten);
    ``fix`` is the command that regenerates it, named in the problem.
    """
    text = page.read_text()
    if start not in text or end not in text:
        return [f"{page.name}: no {start} ... {end} block"]
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    fresh = f"{head}{start}\n{body}\n{end}{tail}"
    if fresh == text:
        return []
    if write:
        page.write_text(fresh)
        print(f"rewrote a generated table of {page.name}")
        return []
    return [f"{page.name}: a generated table is stale; run `{fix}`"]


def times(root: Path, write: bool) -> list[str]:
    """Check (or rewrite) the run-time table of the instructors' guide. Returns a list of problems."""
    return sync_block(root / TIMES_PAGE, TIMES_START, TIMES_END, times_table(root), write,
                      "python -m seqlab times --write")


def main(argv: list[str] | None = None) -> int:
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:                       # its own options: see seqlab.bench.main
        from .bench import main as bench_main
        return bench_main(argv[1:])
    if argv[:1] == ["leaderboard"]:                 # its own options: see seqlab.leaderboard.main
        from .leaderboard import main as leaderboard_main
        return leaderboard_main(argv[1:])

    parser = argparse.ArgumentParser(prog="python -m seqlab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bootstrap", help="check or rewrite the Colab bootstrap cells")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if a cell drifted (the default)")
    mode.add_argument("--write", action="store_true", help="rewrite drifted cells instead of failing")
    e = sub.add_parser("execute", help="run notebooks in place with a full budget")
    e.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    e.add_argument("--budget", choices=["cpu", "gpu"], default=None)
    h = sub.add_parser("config-without-solutions", help="write a _config.yml that hides the exercise solutions")
    h.add_argument("out", type=Path)
    t = sub.add_parser("times", help="check or rewrite the instructors' table of run times per lab")
    t.add_argument("--write", action="store_true", help="rewrite the table instead of checking it")
    t.add_argument("--measure-smoke", action="store_true",
                   help=f"first run every lab under the smoke budget and record the times in {TIMES_FILE}")
    sub.add_parser("bench", help="side-by-side benchmarks: python -m seqlab bench {rnn,attention,gpt} --help")
    sub.add_parser("leaderboard", help="every language model on one benchmark: python -m seqlab leaderboard --help")
    args = parser.parse_args(argv)

    root = repo_root()
    if args.command == "bootstrap":
        problems = bootstrap(root, write=args.write)
        for p in problems:
            print(p, file=sys.stderr)
        if not problems:
            print("bootstrap cells match _config.yml")
        return 1 if problems else 0
    if args.command == "config-without-solutions":
        print(f"wrote {config_without_solutions(root, args.out)}")
        return 0
    if args.command == "times":
        if args.measure_smoke:
            measure_smoke(root)
        problems = times(root, write=args.write or args.measure_smoke)
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    execute(args.notebooks or notebooks(root), budget=args.budget)
    return 0
