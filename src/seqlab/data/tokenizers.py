"""Tokenizers: text <-> integer ids.

``CharTokenizer``  one id per distinct character (char-rnn, nanoGPT's shakespeare_char).
``WordTokenizer``  words and punctuation marks, with ``<unk>`` for words never seen in training.

Byte-level BPE arrives with Part IV.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np


class CharTokenizer:
    """Characters of a training text <-> ids 0..V-1 (sorted, so ids are reproducible).

    >>> tok = CharTokenizer("hello")
    >>> tok.decode(tok.encode("hole"))
    'hole'
    """

    def __init__(self, text: str):
        self.itos: list[str] = sorted(set(text))
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> np.ndarray:
        """(len(text),) int64 ids. Raises ValueError naming any character not in the vocabulary."""
        try:
            return np.fromiter((self.stoi[ch] for ch in text), dtype=np.int64, count=len(text))
        except KeyError:
            unknown = sorted(set(text) - set(self.stoi))
            raise ValueError(
                f"{len(unknown)} character(s) not in the vocabulary: {unknown[:20]!r}. "
                "Build the tokenizer from a text that contains them."
            ) from None

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)


_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|[^\sA-Za-z]")


def split_words(text: str) -> list[str]:
    """Words (letters, with inner apostrophes) and single punctuation marks; case is kept.

    >>> split_words("Speak, man! I'll go.")
    ['Speak', ',', 'man', '!', "I'll", 'go', '.']
    """
    return _WORD_RE.findall(text)


class WordTokenizer:
    """Words of a training text <-> ids; id 0 is ``<unk>`` for every word never seen.

    ``min_count`` drops rare training words to ``<unk>`` too (default 1: keep all).
    """

    UNK = "<unk>"

    def __init__(self, text: str, min_count: int = 1):
        counts = Counter(split_words(text))
        words = sorted(w for w, c in counts.items() if c >= min_count)
        self.itos: list[str] = [self.UNK] + words
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def unk_id(self) -> int:
        return 0

    def encode(self, text: str) -> np.ndarray:
        """(number of words,) int64 ids; unknown words become ``<unk>`` (id 0)."""
        return np.array([self.stoi.get(w, 0) for w in split_words(text)], dtype=np.int64)

    def decode(self, ids) -> str:
        """Words joined by spaces, without a space before punctuation."""
        out = ""
        for i in ids:
            word = self.itos[int(i)]
            glue = "" if not out or (len(word) == 1 and not word.isalpha() and word not in "(&") else " "
            out += glue + word
        return out
