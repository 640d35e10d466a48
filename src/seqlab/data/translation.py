"""A translation pipeline for Multi30k (German -> English, Part III).

    data = Translation.load()                        # vocabularies from train only
    batches = TranslationBatcher(data, batch_size=128)
    (src, src_mask, tgt_in), tgt_out = batches("train")
    data.detokenize(data.tgt_vocab.decode(ids))      # ids -> a plain English sentence

Tokenization: words and punctuation marks, with the space *before* a token kept as
part of it (written "▁", as SentencePiece does):

    "Two young, White males."  ->  ["▁Two", "▁young", ",", "▁White", "▁males", "."]

Why this choice: it is a word-level tokenizer a learner can read in one line, yet
it is *lossless*: joining the tokens and turning "▁" back into spaces gives the
sentence again (runs of spaces collapse to one). So a model's output becomes a
normal sentence without guessing where spaces go, and BLEU is computed by
``sacrebleu`` on that detokenized text against the raw references, exactly as
published results are. Case is kept, because the references are cased.
Subwords (BPE) arrive in Part IV; with Multi30k's small, repetitive vocabulary,
words are enough.

Vocabularies are built from the training split only (a word seen only in
validation or test must not leak in), keeping tokens seen at least ``min_freq``
times; everything else becomes ``<unk>``. Special ids: 0 ``<pad>``, 1 ``<unk>``,
2 ``<bos>``, 3 ``<eos>``.

Batches are bucketed by length: sentences of similar length go together, so
little of each batch is padding, and ``src_mask`` (True = real token) tells the
models which positions are padding.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch

from .corpora import load_multi30k

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
SPACE = "\u2581"                                   # "▁", the mark of a preceding space

# an optional space, then a run of letters/digits or one other non-space character
_TOKEN_RE = re.compile(r" ?\w+| ?[^\w\s]")


def tokenize(sentence: str) -> list[str]:
    """Words and punctuation, each carrying its preceding space as "▁".

    >>> tokenize("Two young, White males.")
    ['▁Two', '▁young', ',', '▁White', '▁males', '.']
    """
    text = " " + " ".join(sentence.split())      # a sentence starts after a space
    return [t.replace(" ", SPACE) for t in _TOKEN_RE.findall(text)]


def detokenize(tokens: list[str]) -> str:
    """The inverse of tokenize (up to runs of spaces): "▁" becomes a space again.

    >>> detokenize(['▁Two', '▁young', ',', '▁White', '▁males', '.'])
    'Two young, White males.'
    """
    return "".join(tokens).replace(SPACE, " ").strip()


class Vocab:
    """Tokens <-> ids; ids 0-3 are the specials, then tokens by falling count (ties: alphabetical)."""

    def __init__(self, sentences: list[list[str]], min_freq: int = 2):
        counts = Counter(t for s in sentences for t in s)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        self.itos: list[str] = list(SPECIALS) + kept
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.min_freq = min_freq

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: list[str]) -> list[int]:
        """Ids of tokens, <unk> (1) for tokens not in the vocabulary. No <bos>/<eos> added."""
        return [self.stoi.get(t, UNK) for t in tokens]

    def decode(self, ids) -> list[str]:
        """Tokens of ids, stopping at the first <eos> and dropping <pad>/<bos>."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.itos[i])
        return out


@dataclass
class Split:
    """One split: raw sentences and their ids (without <bos>/<eos>)."""
    src_text: list[str]
    tgt_text: list[str]
    src: list[list[int]]
    tgt: list[list[int]]

    def __len__(self) -> int:
        return len(self.src)


class Translation:
    """Multi30k task 1 tokenized, with vocabularies built on train only.

    Attributes: ``src_vocab``, ``tgt_vocab`` (Vocab), ``splits`` {"train", "val", "test"} -> Split.
    """

    def __init__(self, pairs: dict[str, tuple[list[str], list[str]]], min_freq: int = 2):
        if "train" not in pairs:
            raise ValueError("the pairs must include a 'train' split: the vocabularies are built from it")
        tokenized = {s: ([tokenize(x) for x in src], [tokenize(y) for y in tgt]) for s, (src, tgt) in pairs.items()}
        self.src_vocab = Vocab(tokenized["train"][0], min_freq)
        self.tgt_vocab = Vocab(tokenized["train"][1], min_freq)
        self.splits: dict[str, Split] = {}
        for name, (src, tgt) in pairs.items():
            if len(src) != len(tgt):
                raise ValueError(f"split {name!r}: {len(src)} sources but {len(tgt)} targets")
            s_tok, t_tok = tokenized[name]
            self.splits[name] = Split(list(src), list(tgt),
                                      [self.src_vocab.encode(t) for t in s_tok],
                                      [self.tgt_vocab.encode(t) for t in t_tok])

    @classmethod
    def load(cls, src_lang: str = "de", min_freq: int = 2, max_train: int | None = None) -> "Translation":
        """Multi30k train / val / test2016; src_lang "de" translates German -> English ("en": the reverse).

        max_train keeps only the first max_train training pairs (small budgets); the
        vocabularies then come from those pairs only.
        """
        if src_lang not in ("de", "en"):
            raise ValueError(f"src_lang must be 'de' or 'en', not {src_lang!r}")
        pairs = {}
        for split in ("train", "val", "test"):
            en, de = load_multi30k(split)
            if split == "train" and max_train is not None:
                en, de = en[:max_train], de[:max_train]
            pairs[split] = (de, en) if src_lang == "de" else (en, de)
        return cls(pairs, min_freq)

    def encode_source(self, sentences: list[str]) -> list[list[int]]:
        """Raw source sentences -> id lists (unknown words -> <unk>)."""
        return [self.src_vocab.encode(tokenize(s)) for s in sentences]

    def decode_target(self, ids) -> str:
        """Target ids -> a detokenized sentence (stops at <eos>)."""
        return detokenize(self.tgt_vocab.decode(ids))

    def unk_rate(self, split: str) -> dict[str, float]:
        """Fraction of source and target tokens of a split that are <unk>."""
        s = self.splits[split]
        rate = lambda seqs: sum(i == UNK for x in seqs for i in x) / max(1, sum(len(x) for x in seqs))
        return {"src": rate(s.src), "tgt": rate(s.tgt)}


def pad_batch(seqs: list[list[int]], bos: bool = False, eos: bool = False) -> torch.Tensor:
    """(B, T_max) int64, sequences right-padded with <pad> (0), optionally wrapped in <bos>/<eos>."""
    seqs = [([BOS] if bos else []) + list(s) + ([EOS] if eos else []) for s in seqs]
    out = torch.full((len(seqs), max(1, max(len(s) for s in seqs))), PAD, dtype=torch.long)
    for b, s in enumerate(seqs):
        out[b, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def make_batch(src: list[list[int]], tgt: list[list[int]]):
    """((src, src_mask, tgt_in), tgt_out) for teacher forcing.

    src:     (B, S) source ids, then <eos>; padded with 0
    src_mask:(B, S) bool, True at real tokens (including <eos>)
    tgt_in:  (B, T) <bos> y_1 ... y_n          (what the decoder reads)
    tgt_out: (B, T) y_1 ... y_n <eos>          (what it must predict; <pad> = ignored by the loss)
    """
    src_ids = pad_batch(src, eos=True)
    return (src_ids, src_ids != PAD, pad_batch(tgt, bos=True)), pad_batch(tgt, eos=True)


class TranslationBatcher:
    """get_batch(split) for seqlab.train: length-bucketed batches of sentence pairs.

    Training batches: each pass over the data shuffles the pairs (torch's global RNG,
    which the training loop's checkpoints restore), sorts each pool of
    ``pool_batches * batch_size`` pairs by source length, cuts it into batches and
    shuffles the batch order. Neighbours in length share a batch, so padding stays
    small, while the order still changes every pass. The plan of the current pass
    is part of ``state_dict()``, so a resumed run continues with the same batches.

    Validation batches (``batcher("val")``) are drawn at random, for the training
    loop's periodic loss estimate; use ``iterate(split)`` to walk a whole split.
    """

    def __init__(self, data: Translation, batch_size: int = 128, pool_batches: int = 50,
                 device="cpu"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data, self.batch_size, self.pool_batches = data, batch_size, pool_batches
        self.device = torch.device(device)
        self.plan: list[list[int]] = []             # batches of pair indices for the current pass
        self.pos = 0                                # next batch of the plan
        self.passes = 0                             # completed passes over the training data

    def _new_plan(self) -> None:
        src = self.data.splits["train"].src
        order = torch.randperm(len(src)).tolist()
        pool = self.pool_batches * self.batch_size
        batches = []
        for p in range(0, len(order), pool):
            chunk = sorted(order[p:p + pool], key=lambda i: len(src[i]))
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        shuffle = torch.randperm(len(batches)).tolist()
        self.plan, self.pos = [batches[i] for i in shuffle], 0

    def _batch(self, split: str, idx: list[int]):
        s = self.data.splits[split]
        (src, mask, tgt_in), tgt_out = make_batch([s.src[i] for i in idx], [s.tgt[i] for i in idx])
        d = self.device
        return (src.to(d), mask.to(d), tgt_in.to(d)), tgt_out.to(d)

    def __call__(self, split: str = "train"):
        if split not in self.data.splits:
            raise KeyError(f"unknown split {split!r}; have {sorted(self.data.splits)}")
        if split != "train":
            n = len(self.data.splits[split])
            return self._batch(split, torch.randint(n, (min(self.batch_size, n),)).tolist())
        if self.pos >= len(self.plan):
            if self.plan:
                self.passes += 1
            self._new_plan()
        idx = self.plan[self.pos]
        self.pos += 1
        return self._batch("train", idx)

    def steps_per_pass(self) -> int:
        """Training batches in one pass (epoch) over the training split."""
        return -(-len(self.data.splits["train"]) // self.batch_size)

    def iterate(self, split: str, batch_size: int | None = None):
        """Every pair of a split once, in length-sorted batches: yields (indices, batch)."""
        s = self.data.splits[split]
        order = sorted(range(len(s)), key=lambda i: len(s.src[i]))
        bs = batch_size or self.batch_size
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            yield idx, self._batch(split, idx)

    def state_dict(self) -> dict:
        return {"plan": [list(b) for b in self.plan], "pos": self.pos, "passes": self.passes}

    def load_state_dict(self, state: dict) -> None:
        self.plan, self.pos, self.passes = [list(b) for b in state["plan"]], state["pos"], state["passes"]
