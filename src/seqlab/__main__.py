"""``python -m seqlab ...``: course tooling; see :mod:`seqlab.course.booktools`."""
import sys

from .course.booktools import main

if __name__ == "__main__":
    sys.exit(main())
