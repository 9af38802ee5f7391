"""Text normalisation applied to every query before it is embedded."""

from __future__ import annotations

import re
import unicodedata

from functions.core.errors import InvalidRequest

_WHITESPACE = re.compile(r"\s+")
# Scripts written without spaces between words: Han (Chinese, Japanese kanji) and kana. Their
# words come from a segmenter (BM25's jieba analyzer), not from splitting on spaces.
UNSPACED = re.compile(
    "[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]"
)


def unspaced_share(text: str) -> float:
    """The share of `text`'s letters written in an unspaced script (0.0 for no letters)."""
    letters = [c for c in text if c.isalpha()]
    return sum(bool(UNSPACED.match(c)) for c in letters) / len(letters) if letters else 0.0


def normalize_text(text: str, max_chars: int) -> str:
    """NFKC, whitespace collapsed, control characters dropped; refuses empty or over-long text."""
    if len(text) > max_chars * 4:
        raise InvalidRequest(f"text is longer than {max_chars} characters")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise InvalidRequest("text contains unpaired surrogate code points")
    if "\x00" in text:  # other control characters are dropped; NUL is refused, never cut at
        raise InvalidRequest("text contains NUL characters")
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if c.isprintable() or c.isspace())
    text = _WHITESPACE.sub(" ", text).strip()
    if not text:
        raise InvalidRequest("text is empty after normalisation")
    if len(text) > max_chars:
        raise InvalidRequest(f"text is longer than {max_chars} characters")
    return text
