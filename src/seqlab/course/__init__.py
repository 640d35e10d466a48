"""The book's own tooling, kept apart from what a student imports (the library never imports it).

- :mod:`seqlab.course.booktools`: Colab bootstrap cells, executing labs,
  run-time tables, the timeline figure, the book without solutions.
- :mod:`seqlab.course.numbers`: the measured numbers a chapter quotes, generated from the labs'
  committed run cards and ``results/``, and the check that no chapter quotes one by hand.
- :mod:`seqlab.course.sources`: reading the committed runs (run cards, outputs, results/) and formatting.
- :mod:`seqlab.course.pages`: which numbers each chapter quotes, and from where.
- :mod:`seqlab.course.cli`: ``python -m seqlab COMMAND``, the one entry point.
"""
