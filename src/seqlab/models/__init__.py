"""One file per model family. Import the one you need, e.g. ``from seqlab.models.ngram import NGramLM``."""
