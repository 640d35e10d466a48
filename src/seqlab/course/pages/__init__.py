"""Which measured numbers each chapter quotes, and from which committed run (see :mod:`..numbers`).

One module per part of the book, and :mod:`.curves` for the learning curves that several parts
show. Each defines

* ``PAGES``: {page: function(Sources) -> {name: text}}: the values of the page's ``{{ name }}``;
* ``FIGURES`` (optional): {figure path: (results file, draw(root) -> matplotlib figure)};
* ``NOT_MEASURED``: {page: {literal: why}}: numbers typed into the page's prose that are not
  measurements of this course (a paper's published result, a hyper-parameter, arithmetic), each
  with its reason. Every other decimal number or percentage in the prose is an error.
"""
from __future__ import annotations

from . import curves, front, part1, part2, part3, part4, part5, part6, part7

PROSE_PAGES = [f"book/{p}" for p in (
    "index.md", "preface.md", "01-ngrams.md", "02-rnn.md", "03-lstm-gru.md", "04-seq2seq-attention.md",
    "05-self-attention.md", "06-transformer.md", "07-bpe.md", "08-gpt.md", "09-bert.md", "10-scaling.md",
    "hardware-lottery.md", "beyond-attention.md", "11-state-spaces.md", "12-rwkv.md",
    "13-hyena-and-linear-attention.md", "14-moe.md", "15-ctm.md", "grand-comparison.md", "instructors.md",
    "glossary.md")]

_PARTS = (front, part1, part2, part3, part4, part5, part6, part7, curves)
PAGES: dict = {}                      # {page: [functions]}: a page may take numbers from several modules
for _part in _PARTS:
    for _page, _make in _part.PAGES.items():
        PAGES.setdefault(_page, []).append(_make)
NOT_MEASURED: dict = {}               # {page: {literal: why}}, merged over the modules
for _part in _PARTS:
    for _page, _allowed in _part.NOT_MEASURED.items():
        NOT_MEASURED.setdefault(_page, {}).update(_allowed)
FIGURES = {fig: how for part in _PARTS for fig, how in getattr(part, "FIGURES", {}).items()}
