"""Finnish word vectors: the floret table of spaCy's ``fi_experimental_web_md`` (50,000 ×
300, trained on Finnish web text), read from the installed package, never downloaded.

Floret builds a word's vector from its character n-grams, so every word, inflected or
misspelt, gets one. Only the vocabulary table is read (0.4 s); the spaCy pipeline is not
loaded.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
DIMENSIONS = 300


@lru_cache(maxsize=1)
def _vocab() -> Any | None:
    try:
        import spacy_fi_experimental_web_md as package
        from spacy.vocab import Vocab
    except ImportError:
        log.warning("Finnish word vectors (spacy-fi-experimental-web-md) are not installed")
        return None
    folder = next(Path(package.__file__).parent.glob("fi_experimental_web_md-*"))
    vocab = Vocab()
    vocab.from_disk(folder / "vocab", exclude=["lookups"])
    return vocab


def available() -> bool:
    return _vocab() is not None


@lru_cache(maxsize=100_000)
def unit(word: str) -> np.ndarray | None:
    """The word's vector scaled to length 1, or None without vectors."""
    vocab = _vocab()
    if vocab is None:
        return None
    v = np.asarray(vocab.get_vector(word), dtype=np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n else None
