"""Text normalisation applied to every query before it is embedded."""

from __future__ import annotations

import re
import unicodedata

from functions.core.errors import InvalidRequest

_WHITESPACE = re.compile(r"\s+")


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
