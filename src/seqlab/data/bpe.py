"""Byte-level byte-pair encoding (BPE), as in GPT-2, written from scratch (Part IV).

    bpe = ByteBPE.train(text, vocab_size=1024)      # learn 1024 - 256 merges from raw text
    ids = bpe.encode("To be, or not to be")         # list[int]
    bpe.decode(ids)                                  # == the text, for every string
    bpe.tokens(ids)                                  # ['To', 'Ġbe', ',', 'Ġor', ...] (GPT-2's display)
    bpe.save("bpe.json"); ByteBPE.load("bpe.json")
    gpt2 = ByteBPE.from_gpt2_files("vocab.json", "merges.txt")   # GPT-2's published tokenizer

The algorithm (Sennrich et al., 2016, on bytes as in Radford et al., 2019):

1. **Pre-tokenize.** Split the text into chunks with GPT-2's regular expression
   (:data:`GPT2_PATTERN`: contractions, runs of letters, of digits, of other symbols, each
   with at most one leading space; and whitespace). Merges never cross a chunk boundary,
   so " dog" and "dog." cannot become one token.
2. **Start from bytes.** Every chunk is its UTF-8 bytes, so the 256 byte values are the
   initial vocabulary and *any* string can be encoded: there is no unknown token.
3. **Train: merge the most frequent pair, repeatedly.** Count every adjacent pair of
   tokens in all chunks (weighted by how often each chunk occurs); the most frequent pair
   (a, b) becomes a new token ab, every occurrence is replaced, left to right; repeat
   until the vocabulary has ``vocab_size`` tokens. Ties between equally frequent pairs go
   to the smallest pair of ids (a, then b): Hugging Face ``tokenizers``' rule, so both
   learn the same merges (tests/test_bpe.py).
4. **Encode: replay the merges by rank.** In a chunk, repeatedly merge the adjacent pair
   whose merge was learned first, until no learned merge applies.

Token ids: the 256 byte tokens come first, in the order of GPT-2's vocabulary (the
printable bytes, then the others), then one id per merge, in the order learned. A merge
whose result already exists (a + bc == ab + c) reuses that token's id, as GPT-2's files
and ``tokenizers`` do. Special tokens (e.g. ``<|endoftext|>``) get the last ids; ``encode``
treats their text as plain text unless it is told they are allowed.
"""
from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict

import regex

# GPT-2's pre-tokenization pattern (\p{L}: any letter, \p{N}: any digit, in any script).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte, used only to *display* tokens and in its files.

    Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68
    (control characters, space, ...) are shifted to chr(256), chr(257), ... in byte order. So
    the space byte shows as 'Ġ' and a newline as 'Ċ'.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, shifted = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    return mapping


BYTE_TO_UNICODE = bytes_to_unicode()
UNICODE_TO_BYTE = {c: b for b, c in BYTE_TO_UNICODE.items()}
# the order of the byte tokens in GPT-2's vocabulary (and tokenizers' ByteLevel alphabet): by stand-in code point
BYTE_ORDER = sorted(range(256), key=lambda b: ord(BYTE_TO_UNICODE[b]))


def _merge_word(word: tuple[int, ...], pair: tuple[int, int], new_id: int) -> tuple[int, ...]:
    """Replace every occurrence of ``pair`` in ``word``, left to right (in 'a a a', the first two)."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def _pairs(word: tuple[int, ...]) -> Counter:
    """Adjacent pairs of a word with their counts ('a a a' has the pair (a, a) twice)."""
    return Counter(zip(word, word[1:]))


class ByteBPE:
    """A byte-level BPE tokenizer: ``encode(str) -> list[int]``, ``decode(list[int]) -> str``.

    vocab:          id -> the bytes that token stands for
    merges:         (left id, right id) -> (rank, merged id), rank = the order learned
    byte_ids:       byte value -> id of its single-byte token
    special_tokens: text -> id (never produced by merges)
    """

    def __init__(self, vocab: list[bytes], merges: dict[tuple[int, int], tuple[int, int]],
                 byte_ids: list[int] | None = None, special_tokens: dict[str, int] | None = None,
                 pattern: str = GPT2_PATTERN):
        self.vocab = list(vocab)
        self.merges = dict(merges)
        self.byte_ids = list(byte_ids) if byte_ids is not None else [self.vocab.index(bytes([b])) for b in range(256)]
        self.special_tokens = dict(special_tokens or {})
        self.pattern = pattern
        self._regex = regex.compile(pattern)
        self._cache: dict[bytes, list[int]] = {}

    def __len__(self) -> int:
        """The vocabulary size: byte tokens + merged tokens + special tokens."""
        return len(self.vocab)

    # ------------------------------------------------------------------ training

    @classmethod
    def train(cls, text: str, vocab_size: int, *, special_tokens: tuple[str, ...] = (),
              pattern: str = GPT2_PATTERN, progress: bool = False) -> "ByteBPE":
        """Learn merges from ``text`` until there are ``vocab_size`` tokens (special tokens included).

        Stops early, with a smaller vocabulary, when no pair occurs any more.
        """
        n_merged = vocab_size - 256 - len(special_tokens)
        if n_merged < 0:
            raise ValueError(f"vocab_size={vocab_size} is below the 256 byte tokens"
                             f"{' + special tokens' if special_tokens else ''}")
        vocab = [bytes([b]) for b in BYTE_ORDER]                     # ids 0..255: the bytes, in GPT-2's order
        byte_ids = [0] * 256
        for i, b in enumerate(BYTE_ORDER):
            byte_ids[b] = i
        index = {tok: i for i, tok in enumerate(vocab)}

        # 1-2. chunks as tuples of byte ids, with how often each chunk occurs
        chunk_counts = Counter(regex.findall(pattern, text))
        words = [tuple(byte_ids[b] for b in chunk.encode("utf-8")) for chunk in chunk_counts]
        freqs = list(chunk_counts.values())

        # pair -> total count, pair -> words it occurs in
        counts: defaultdict[tuple[int, int], int] = defaultdict(int)
        where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        for w, (word, f) in enumerate(zip(words, freqs)):
            for pair, c in _pairs(word).items():
                counts[pair] += c * f
                where[pair].add(w)
        # a max-heap by count, ties by the smallest pair; stale entries are skipped when popped
        heap = [(-c, pair) for pair, c in counts.items()]
        heapq.heapify(heap)

        merges: dict[tuple[int, int], tuple[int, int]] = {}
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=n_merged, desc="BPE merges", unit="merge")
        while len(vocab) < 256 + n_merged and heap:
            neg, pair = heapq.heappop(heap)
            if -neg != counts.get(pair, 0):                           # stale: its count has changed
                if counts.get(pair, 0) > 0:
                    heapq.heappush(heap, (-counts[pair], pair))
                continue
            if -neg < 1:
                break
            # 3. the new token: a + b (reusing the id if those bytes are already a token)
            merged = vocab[pair[0]] + vocab[pair[1]]
            new_id = index.get(merged)
            if new_id is None:
                new_id = len(vocab)
                vocab.append(merged)
                index[merged] = new_id
            merges[pair] = (len(merges), new_id)
            # replace it in every word that contains it, and update the pair counts of those words
            touched = defaultdict(int)
            for w in where.pop(pair):
                old, f = words[w], freqs[w]
                new = _merge_word(old, pair, new_id)
                for p, c in _pairs(old).items():
                    counts[p] -= c * f
                    touched[p] -= c * f
                for p, c in _pairs(new).items():
                    counts[p] += c * f
                    touched[p] += c * f
                    where[p].add(w)
                words[w] = new
            counts.pop(pair, None)
            for p, change in touched.items():
                if counts.get(p, 0) <= 0:
                    counts.pop(p, None)
                elif change > 0:                                      # grew: push its new count
                    heapq.heappush(heap, (-counts[p], p))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        specials = {}
        for s in special_tokens:
            specials[s] = len(vocab)
            vocab.append(s.encode("utf-8"))
        return cls(vocab, merges, byte_ids, specials, pattern)

    # ------------------------------------------------------------------ encoding

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """4. Replay the merges on one pre-token: merge the lowest-ranked pair until none applies."""
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        word = tuple(self.byte_ids[b] for b in chunk)
        while len(word) > 1:
            ranked = [(self.merges[p][0], p) for p in zip(word, word[1:]) if p in self.merges]
            if not ranked:
                break
            _, pair = min(ranked)
            word = _merge_word(word, pair, self.merges[pair][1])
        ids = list(word)
        if len(self._cache) < 100_000:
            self._cache[chunk] = ids
        return ids

    def encode(self, text: str, allowed_special: str | tuple[str, ...] = ()) -> list[int]:
        """Token ids of ``text``. Special tokens' text is encoded as plain text unless it is listed
        in ``allowed_special`` (or ``allowed_special="all"``), then it becomes the special id."""
        allowed = tuple(self.special_tokens) if allowed_special == "all" else tuple(allowed_special)
        unknown = [s for s in allowed if s not in self.special_tokens]
        if unknown:
            raise ValueError(f"not special tokens of this tokenizer: {unknown}; it has {list(self.special_tokens)}")
        ids: list[int] = []
        parts = [text]
        if allowed:
            splitter = "(" + "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
            parts = regex.split(splitter, text)
        for k, part in enumerate(parts):
            if k % 2 == 1:                                            # a special token (the split's captures)
                ids.append(self.special_tokens[part])
                continue
            for chunk in self._regex.findall(part):
                ids.extend(self._encode_chunk(chunk.encode("utf-8")))
        return ids

    def decode(self, ids) -> str:
        """The text of ``ids``. A sequence that cuts a multi-byte character shows U+FFFD there."""
        return b"".join(self.vocab[int(i)] for i in ids).decode("utf-8", errors="replace")

    def tokens(self, ids) -> list[str]:
        """Each id as GPT-2 displays it: bytes shown through :func:`bytes_to_unicode` ('Ġthe')."""
        special = {i: s for s, i in self.special_tokens.items()}
        return [special.get(int(i)) or "".join(BYTE_TO_UNICODE[b] for b in self.vocab[int(i)]) for i in ids]

    # ------------------------------------------------------------------ files

    def save(self, path) -> None:
        """Write the tokenizer as JSON: vocabulary (as GPT-2 strings), merges in rank order, specials."""
        ordered = sorted(self.merges.items(), key=lambda kv: kv[1][0])
        state = {"format": "seqlab-byte-bpe-1", "pattern": self.pattern,
                 "vocab": [self.tokens([i])[0] if i not in self.special_tokens.values() else None
                           for i in range(len(self.vocab))],
                 "byte_ids": self.byte_ids, "merges": [[a, b, new] for (a, b), (_, new) in ordered],
                 "special_tokens": self.special_tokens}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f, ensure_ascii=False)

    @classmethod
    def load(cls, path) -> "ByteBPE":
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("format") != "seqlab-byte-bpe-1":
            raise ValueError(f"{path} is not a file written by ByteBPE.save")
        specials = {s: int(i) for s, i in state["special_tokens"].items()}
        by_id = {i: s for s, i in specials.items()}
        vocab = [by_id[i].encode("utf-8") if i in by_id else bytes(UNICODE_TO_BYTE[c] for c in tok)
                 for i, tok in enumerate(state["vocab"])]
        merges = {(a, b): (rank, new) for rank, (a, b, new) in enumerate(state["merges"])}
        return cls(vocab, merges, state["byte_ids"], specials, state["pattern"])

    @classmethod
    def from_gpt2_files(cls, vocab_json, merges_txt, special_tokens: tuple[str, ...] = ("<|endoftext|>",)) -> "ByteBPE":
        """GPT-2's published tokenizer (``vocab.json``: token -> id; ``merges.txt``: one "a b" per line,
        in rank order). Tokens are written with :func:`bytes_to_unicode`'s stand-ins. Listed special
        tokens that the vocabulary contains are treated as special."""
        with open(vocab_json, encoding="utf-8") as f:
            token_to_id = json.load(f)
        with open(merges_txt, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f]
        specials = {s: token_to_id[s] for s in special_tokens if s in token_to_id}
        vocab: list[bytes] = [b""] * (max(token_to_id.values()) + 1)
        for tok, i in token_to_id.items():
            vocab[i] = tok.encode("utf-8") if tok in specials else bytes(UNICODE_TO_BYTE[c] for c in tok)
        merges = {}
        for line in lines:
            if not line or line.startswith("#version"):
                continue
            a, b = line.split(" ")
            merges[(token_to_id[a], token_to_id[b])] = (len(merges), token_to_id[a + b])
        byte_ids = [token_to_id[BYTE_TO_UNICODE[b]] for b in range(256)]
        return cls(vocab, merges, byte_ids, specials)
