"""Corpora, tokenizers and batches. See each module's docstring."""
from .bpe import ByteBPE
from .batching import StreamBatcher, batcher, random_windows, train_val_split
from .corpora import CORPORA, DataError, fetch, load_multi30k, load_text
from .tokenizers import CharTokenizer, WordTokenizer, split_words
from .translation import Translation, TranslationBatcher, Vocab, detokenize, tokenize

__all__ = [
    "CORPORA", "DataError", "fetch", "load_text", "load_multi30k",
    "CharTokenizer", "WordTokenizer", "split_words", "ByteBPE",
    "train_val_split", "random_windows", "batcher", "StreamBatcher",
    "Translation", "TranslationBatcher", "Vocab", "tokenize", "detokenize",
]
