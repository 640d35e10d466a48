"""``python -m seqlab COMMAND``: one entry point for the course's commands.

``bootstrap``, ``execute``, ``timeline``, ``config-without-solutions`` and ``times`` are in
:mod:`seqlab.course.booktools`; ``numbers`` in :mod:`seqlab.course.numbers`; ``bench``,
``leaderboard`` and ``curves`` are the library's measurements (:mod:`seqlab.bench`,
:mod:`seqlab.leaderboard`, :mod:`seqlab.curves`), each with its own options.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .booktools import (TIMELINE_DATA, TIMELINE_FIGURE, TIMES_FILE, bootstrap, config_without_solutions, execute,
                        measure_smoke, notebooks, repo_root, timeline_figure, times)


def main(argv: list[str] | None = None) -> int:
    import argparse

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:                       # its own options: see seqlab.bench.main
        from ..bench import main as bench_main
        return bench_main(argv[1:])
    if argv[:1] == ["leaderboard"]:                 # its own options: see seqlab.leaderboard.main
        from ..leaderboard import main as leaderboard_main
        return leaderboard_main(argv[1:])
    if argv[:1] == ["numbers"]:                     # see seqlab.course.numbers
        from .numbers import main as numbers_main
        return numbers_main(argv[1:])
    if argv[:1] == ["curves"]:                      # its own options: see seqlab.curves.main
        from ..curves import main as curves_main
        return curves_main(argv[1:])

    parser = argparse.ArgumentParser(prog="python -m seqlab", description="the course's commands")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bootstrap", help="check or rewrite the Colab bootstrap cells")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if a cell drifted (the default)")
    mode.add_argument("--write", action="store_true", help="rewrite drifted cells instead of failing")
    e = sub.add_parser("execute", help="run notebooks in place with a full budget")
    e.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    e.add_argument("--budget", choices=["cpu", "gpu"], default=None)
    sub.add_parser("timeline", help=f"redraw {TIMELINE_FIGURE} from {TIMELINE_DATA}")
    h = sub.add_parser("config-without-solutions", help="write a _config.yml that hides the exercise solutions")
    h.add_argument("out", type=Path)
    t = sub.add_parser("times", help="check or rewrite the instructors' table of run times per lab")
    t.add_argument("--write", action="store_true", help="rewrite the table instead of checking it")
    t.add_argument("--measure-smoke", action="store_true",
                   help=f"first run every lab under the smoke budget and record the times in {TIMES_FILE}")
    sub.add_parser("bench", help="side-by-side benchmarks: python -m seqlab bench {rnn,attention,gpt} --help")
    sub.add_parser("leaderboard", help="every language model on one benchmark: python -m seqlab leaderboard --help")
    sub.add_parser("numbers", help="check or rewrite the measured numbers the chapters quote: python -m seqlab numbers [--write]")
    sub.add_parser("curves", help="learning curves, several seeds per family: python -m seqlab curves --help")
    args = parser.parse_args(argv)

    root = repo_root()
    if args.command == "bootstrap":
        problems = bootstrap(root, write=args.write)
        for p in problems:
            print(p, file=sys.stderr)
        if not problems:
            print("bootstrap cells match _config.yml")
        return 1 if problems else 0
    if args.command == "timeline":
        print(f"wrote {timeline_figure(root)}")
        return 0
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
