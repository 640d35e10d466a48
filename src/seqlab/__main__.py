"""``python -m seqlab ...``: course tooling; see :mod:`seqlab.booktools`."""
import sys

from .booktools import main

if __name__ == "__main__":
    sys.exit(main())
