"""Terms of CJK and multilingual text as the index's analyzers see them, with their offsets in
code points, so that highlights mark what BM25 matched: jieba's search-mode segmentation (the
segmenter behind Milvus' `jieba` tokenizer; functions/core/stores/analyzers.py has the measured
behaviour) with each analyzer's filters. English words are summarize.py's.

jieba loads its dictionary on first use (about 60 MB; seconds on a cold start), so it is
imported only when a field that is not English is highlighted.
"""

from __future__ import annotations

import threading
from typing import Any

from functions.core.stores.analyzers import SEPARATORS

Term = tuple[str, int, int]  # (term as the index compares it, start, end) in code points

_lock = threading.Lock()
_jieba: Any = None


def _segmenter() -> Any:
    """jieba's tokenizer, loaded once; None where jieba is not installed (a bundle built
    without it: CJK fields then have no highlights, and the log says why)."""
    global _jieba
    with _lock:
        if _jieba is None:
            import logging

            try:
                import jieba
            except ImportError:
                logging.getLogger(__name__).warning(
                    "jieba is not installed: Chinese and Japanese fields get no highlights"
                )
                _jieba = False
                return None
            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            _jieba = tokenizer
        return _jieba or None


def warm() -> None:
    """Load jieba's dictionary now (a Lambda's init phase), not on the first CJK highlight."""
    _segmenter()


def terms(text: str, language: str) -> list[Term]:
    """The terms of `text` under the jieba-based analyzer of `language` (chinese, japanese,
    standard), each with its [start, end)."""
    segmenter = _segmenter()
    if segmenter is None:
        return []
    found = [(w, a, b) for w, a, b in segmenter.tokenize(text, mode="search", HMM=True)]
    if language == "chinese":
        # Milvus' `cnalphanumonly`: only Han characters and ASCII letters and digits; no
        # lower-casing.
        return [t for t in found if all(_han_or_alnum(c) for c in t[0])]
    return [(w.lower(), a, b) for w, a, b in found if w not in SEPARATORS and not w.isspace()]


def _han_or_alnum(char: str) -> bool:
    if char.isascii():
        return char.isalnum()
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


def marks(text: str, query: frozenset[str], language: str) -> list[tuple[int, int]]:
    """[start, end) code point offsets of the terms of `text` that are terms of the query,
    overlapping ones (search mode yields 共和 inside 共和国) merged."""
    if not query:
        return []
    spans = sorted((a, b) for term, a, b in terms(text, language) if term in query)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
