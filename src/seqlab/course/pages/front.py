"""Numbers quoted by the pages of this part (see seqlab.course.pages)."""
from __future__ import annotations

PAGES = {}
NOT_MEASURED = {
    "book/glossary.md": {"15%": "BERT's published masking rate (Devlin et al. 2019), a hyper-parameter"},
}
