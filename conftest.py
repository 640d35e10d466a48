"""Shared test set-up (tests/ and nbval over notebooks/): root, corpora folder, smoke budget."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

# Notebooks run by nbval must use the smoke budget; the kernel inherits this environment.
os.environ.setdefault("SEQLAB_UNDER_NBVAL", "1")
os.environ["SEQLAB_BUDGET"] = "smoke"
os.environ.setdefault("MPLBACKEND", "Agg")
if not os.environ.get("SEQLAB_DATA") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["SEQLAB_DATA"] = str(ROOT.parent / "shared" / "data")


@pytest.fixture
def root() -> Path:
    return ROOT
