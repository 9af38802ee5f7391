"""BM25 analyzers by language, and the Milvus text + sparse field pairs a scene's text needs.

A scene names a language per BM25 field (`functions/core/scenes.yaml`); Milvus analyses both
the stored text and the query text of a field with that field's analyzer. Measured on Milvus
Lite 2.5.1 (tests/functions/test_analyzers.py): its tokenizers are `standard`, `whitespace`
and `jieba`; `icu` and `lindera` (a Japanese dictionary tokenizer) are not built in, and the
`standard` tokenizer keeps a whole run of CJK characters as one token (大象是一种... is one
term), so every CJK-capable analyzer here is jieba-based.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TEXT_FIELD = "text"  # the searchable text; Milvus derives the BM25 sparse vector from it
SPARSE_FIELD = "sparse"
# A field's own pair when its language is not the scene's: text__<field>, sparse__<field>.
TEXT_PREFIX = "text__"
SPARSE_PREFIX = "sparse__"

# Today's analysis: words, lower-cased, stemmed, English stop words removed.
ENGLISH: dict[str, Any] = {
    "tokenizer": "standard",
    "filter": [
        "lowercase",
        {"type": "stemmer", "language": "english"},
        {"type": "stop", "stop_words": ["_english_"]},
    ],
}
# Milvus' built-in Chinese analyzer: jieba (search mode) and `cnalphanumonly`, which drops
# every token that is not Han characters or ASCII letters and digits (kana, emoji,
# punctuation); no lower-casing, so "iPhone" does not match "iphone".
CHINESE: dict[str, Any] = {"type": "chinese"}
# jieba yields whitespace and punctuation as tokens of their own (a query's space would match
# every text with a space); Milvus Lite 2.5.1 has no `removepunct` filter, so they are stop
# words here.
SEPARATORS = (
    " \t\n\r\u3000,.;:!?()[]{}\"'"
    "\uff0c\u3002\u3001\uff1b\uff1a\uff01\uff1f\uff08\uff09\u300c\u300d\u300e\u300f"
    "\u3010\u3011\u300a\u300b\u201c\u201d\u2018\u2019\u30fb\uff5e\u2026"
)
# Multilingual: jieba segments Han text with its Chinese dictionary and yields every other
# non-Latin character (kana, hangul, emoji) as a token of its own; Latin words stay whole and
# are lower-cased, not stemmed. The best Milvus Lite 2.5.1 offers for Japanese (no lindera).
MULTILINGUAL: dict[str, Any] = {
    "tokenizer": "jieba",
    "filter": ["lowercase", {"type": "stop", "stop_words": list(SEPARATORS)}],
}
ANALYZERS: dict[str, dict[str, Any]] = {
    "english": ENGLISH,
    "chinese": CHINESE,
    "japanese": MULTILINGUAL,
    "standard": MULTILINGUAL,
}
LANGUAGES = tuple(sorted(ANALYZERS))
DEFAULT_LANGUAGE = "english"


def check_language(language: object, where: str) -> str:
    """`language` when it names a known analyzer, else a ValueError naming `where`."""
    if not isinstance(language, str) or language not in ANALYZERS:
        known = ", ".join(LANGUAGES)
        raise ValueError(f"{where}: unknown analyzer {language!r}; known analyzers: {known}")
    return language


@dataclass(frozen=True)
class LexicalField:
    """One analysed text in Milvus and the sparse vector BM25 derives from it: `sources` are
    the scene fields joined into it (None: the embedded text), analysed as `language`."""

    text: str
    sparse: str
    language: str
    sources: tuple[str, ...] | None

    @property
    def analyzer(self) -> dict[str, Any]:
        """Milvus `analyzer_params` for this text."""
        return ANALYZERS[self.language]

    @property
    def own(self) -> bool:
        """Whether this is a field's own pair (not the collection's main `text`/`sparse`)."""
        return self.text != TEXT_FIELD


def main_lexical(language: str = DEFAULT_LANGUAGE) -> LexicalField:
    """The collection's main text (every collection has it), analysed as `language`."""
    return LexicalField(TEXT_FIELD, SPARSE_FIELD, language, None)


def own_lexical(field: str, language: str) -> LexicalField:
    """A scene field's own analysed text, for a language other than the scene's."""
    return LexicalField(TEXT_PREFIX + field, SPARSE_PREFIX + field, language, (field,))


def is_lexical_field(name: str) -> bool:
    """Whether a Milvus field name is an analysed text or a BM25 sparse vector."""
    return name in (TEXT_FIELD, SPARSE_FIELD) or name.startswith((TEXT_PREFIX, SPARSE_PREFIX))


def same_analyzer(stored: object, wanted: dict[str, Any]) -> bool:
    """Whether Milvus' stored `analyzer_params` (JSON text) equal `wanted`. Absent (a server
    whose description leaves them out) counts as English, the one analyzer every collection
    had before languages, so such a collection is not rebuilt on every run."""
    if stored is None or stored == "":
        return wanted == ENGLISH
    try:
        value = json.loads(stored) if isinstance(stored, str) else stored
    except ValueError:
        return False
    return bool(value == json.loads(json.dumps(wanted)))


def add_lexical_fields(
    schema: Any, lexical: tuple[LexicalField, ...], *, max_bytes: int, bm25: bool
) -> None:
    """Add each analysed text (and, where Milvus derives BM25 vectors, its sparse vector and
    the BM25 function between them) to a pymilvus collection schema."""
    from pymilvus import DataType, Function, FunctionType

    for field in lexical:
        if not bm25:
            # The text is kept (as on 2.5) and nothing derives sparse vectors from it.
            schema.add_field(field.text, DataType.VARCHAR, max_length=max_bytes)
            continue
        schema.add_field(
            field.text,
            DataType.VARCHAR,
            max_length=max_bytes,
            enable_analyzer=True,
            analyzer_params=field.analyzer,
        )
        schema.add_field(field.sparse, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name=f"{field.text}_bm25",
                function_type=FunctionType.BM25,
                input_field_names=[field.text],
                output_field_names=[field.sparse],
            )
        )


def lexical_current(
    described: dict[str, dict[str, Any]], lexical: tuple[LexicalField, ...]
) -> bool:
    """Whether a described collection (field name -> description) holds exactly these
    analysed texts, each with its analyzer (only where it derives BM25 vectors)."""
    own = {name for name in described if name.startswith(TEXT_PREFIX)}
    if own != {f.text for f in lexical if f.own}:
        return False
    for field in lexical:
        params = (described.get(field.text) or {}).get("params") or {}
        if field.sparse in described and not same_analyzer(
            params.get("analyzer_params"), field.analyzer
        ):
            return False
    return True
