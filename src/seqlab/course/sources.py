"""Where the book's numbers come from, and how they are written: the committed run cards and outputs
of the labs, ``results/`` files, and small formatting helpers. Used by :mod:`seqlab.course.pages`."""
from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path


# ----------------------------------------------------------------------------- where numbers come from

def parse_run_card(text: str) -> dict[str, str]:
    """{key: value} of a printed run card (``Run card``, a rule, then ``key  value`` lines)."""
    lines = text.splitlines()
    if "Run card" not in lines:
        raise ValueError("no run card in this text")
    card = {}
    for line in lines[lines.index("Run card") + 2:]:
        m = re.match(r"^(\S.*?)\s{2,}(\S.*)$", line)
        if m:
            card[m.group(1)] = m.group(2).strip()
    return card


def _output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text") or out.get("data", {}).get("text/plain", "")
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


class Sources:
    """The committed runs of the book, read lazily: run cards, other lab outputs, results files."""

    def __init__(self, root: Path):
        self.root = root

    @cache
    def _notebook(self, lab: str):
        import nbformat

        path = self.root / "notebooks" / f"{lab}.ipynb"
        if not path.exists():
            raise FileNotFoundError(f"no lab {path}")
        return nbformat.read(path, as_version=4)

    def budget(self, lab: str) -> str:
        """The budget the committed run of ``lab`` used (``cpu`` or ``gpu``)."""
        return self._notebook(lab).metadata.get("seqlab", {}).get("budget", "?")

    @cache
    def card(self, lab: str) -> dict[str, str]:
        """The run card of ``lab`` (e.g. ``"08-gpt"``): {key: value as printed}."""
        return parse_run_card(_output_text(self._notebook(lab).cells[-1]))

    def value(self, lab: str, key: str) -> str:
        card = self.card(lab)
        if key not in card:
            raise KeyError(f"{lab}'s run card has no {key!r}; it has {sorted(card)}")
        return card[key]

    def output(self, lab: str, pattern: str) -> tuple[str, ...]:
        """The groups of the one match of ``pattern`` (a regex) in the committed outputs of ``lab``."""
        found = [m for cell in self._notebook(lab).cells if cell.cell_type == "code"
                 for m in re.finditer(pattern, _output_text(cell))]
        if len(found) != 1:
            raise LookupError(f"{lab}: the pattern {pattern!r} matches {len(found)} times in the committed "
                              "outputs, not once (was the lab re-run with other output?)")
        return found[0].groups()

    @cache
    def result(self, name: str) -> dict:
        """``results/NAME.json``."""
        return json.loads((self.root / "results" / f"{name}.json").read_text())


# ----------------------------------------------------------------------------- formatting

def num(text: str) -> float:
    """The number in a printed value: ``"345,665"`` -> 345665.0, ``"2.23"`` -> 2.23."""
    m = re.search(r"-?[\d,]*\.?\d+(?:e[-+]?\d+)?", text)
    if not m:
        raise ValueError(f"no number in {text!r}")
    return float(m.group(0).replace(",", ""))


def split(text: str, sep: str = "/") -> list[str]:
    """The parts of a value printed as ``a / b / c``."""
    return [p.strip() for p in text.split(sep)]


def bits(nats: float) -> float:
    return nats / math.log(2)


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(text_or_x, digits: int = 1) -> str:
    """``"3.0e-07"`` (or 3e-7) -> ``"3.0 × 10⁻⁷"``; 0 -> ``"0"``."""
    x = num(text_or_x) if isinstance(text_or_x, str) else float(text_or_x)
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def lower_word(a: float, b: float, lower: str = "below", higher: str = "above", same: str = "equal to") -> str:
    """How ``a`` compares with ``b``, in words (``lower`` when a < b)."""
    return lower if a < b else higher if a > b else same
