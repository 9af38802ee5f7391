"""The summary layer: the configured fields of each document, long fields truncated, and a
snippet with the query's terms marked by offsets in code points (never markup), so a page can
render it as text and style the marked ranges itself. A field is segmented as its BM25
analyzer segments it: English words by stem, CJK text by jieba (search/segmentation.py)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from typing import Any

import snowballstemmer

from functions.core.http.schemas import Snippet
from functions.core.pipeline_config import SummaryParams
from functions.core.scenes import Scene

_WORD = re.compile(r"\w+", re.UNICODE)
_ELLIPSIS = "…"
# The analyzer's idea of noise words, so "how do I" highlights nothing.
_STOP = (
    "a an and are as at be but by for if in into is it no not of on or such that the "
    "their then there these they this to was will with i do does did how what when where "
    "which who why my me you your we our can"
)
STOP_WORDS = frozenset(_STOP.split())


_local = threading.local()


@lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    # Snowball stemmers keep per-call state: one per thread (the server runs requests in a
    # thread pool); the cache makes repeated words free.
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return str(stemmer.stemWord(word.casefold()))


def query_terms(query: str) -> frozenset[str]:
    """Stems of the query's words, stop words left out."""
    words = [w for w in _WORD.findall(query) if w.casefold() not in STOP_WORDS]
    return frozenset(_stem(w) for w in words)


def highlights(text: str, terms: frozenset[str]) -> list[tuple[int, int]]:
    """[start, end) offsets (Unicode code points) of the words of `text` matching `terms`."""
    if not terms:
        return []
    # Stemming is the expensive part; a word can only share a stem whose first letters it has
    # (Snowball rewrites suffixes), so most words are ruled out without it.
    heads = tuple({t[:3] for t in terms})
    return [
        (m.start(), m.end())
        for m in _WORD.finditer(text)
        if m.group().casefold().startswith(heads) and _stem(m.group()) in terms
    ]


@dataclass(frozen=True)
class QueryTerms:
    """A query's terms under each field's analyzer: `languages` maps a field to its BM25
    language (Scene.analyzer_of), `default` covers the rest."""

    query: str
    languages: Mapping[str, str] = dataclass_field(default_factory=dict)
    default: str = "english"
    _by_language: dict[str, frozenset[str]] = dataclass_field(default_factory=dict, compare=False)

    @classmethod
    def for_scene(cls, query: str, scene: Scene) -> QueryTerms:
        """The query's terms as `scene` analyses each of its fields."""
        languages = {f: scene.analyzer_of(f) for f in scene.bm25_fields or ()}
        return cls(query, languages, scene.language)

    def of(self, language: str) -> frozenset[str]:
        """The query's terms under `language`'s analyzer."""
        if language not in self._by_language:
            if language == "english":
                found = query_terms(self.query)
            else:
                from functions.search.segmentation import terms

                found = frozenset(t for t, _, _ in terms(self.query, language))
            self._by_language[language] = found
        return self._by_language[language]

    def highlights(self, name: str, text: str) -> list[tuple[int, int]]:
        """[start, end) offsets (code points) of the query's terms in field `name`'s text."""
        language = self.languages.get(name, self.default)
        if language == "english":
            return highlights(text, self.of(language))
        from functions.search.segmentation import marks

        return marks(text, self.of(language), language)


Terms = frozenset[str] | QueryTerms  # English stems, or terms per field language


def _marker(terms: Terms) -> Callable[[str, str], list[tuple[int, int]]]:
    if isinstance(terms, QueryTerms):
        return terms.highlights
    return lambda _name, text: highlights(text, terms)


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when one is near, "…" appended."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 1)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + _ELLIPSIS


def snippet(text: str, terms: Terms, chars: int, name: str = "") -> Snippet:
    """A window of about `chars` characters around the first matched term, offsets relative
    to the window (which gains a leading/trailing "…" when it cuts the text); `name` is the
    field the text comes from (its analyzer segments it)."""
    marks = _marker(terms)(name, text)
    if len(text) <= chars:
        return Snippet(text=text, highlights=marks)
    first = marks[0][0] if marks else 0
    start = max(0, first - chars // 4)
    if start:
        space = text.rfind(" ", 0, start)
        start = space + 1 if space >= 0 and start - space < 30 else start
    end = min(len(text), start + chars)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start + chars // 2 else end
    body = text[start:end]
    prefix = _ELLIPSIS if start else ""
    suffix = _ELLIPSIS if end < len(text) else ""
    shift = len(prefix) - start
    inside = [(a + shift, b + shift) for a, b in marks if a >= start and b <= end]
    return Snippet(text=prefix + body + suffix, highlights=inside)


def summarize(
    document: Mapping[str, Any], params: SummaryParams, terms: Terms
) -> tuple[dict[str, Any], dict[str, list[tuple[int, int]]], Snippet | None]:
    """The hit's document as configured, the query terms in each shown text field (offsets
    into the shown, possibly truncated, value), and its snippet (None when not configured)."""
    mark = _marker(terms)
    shown: dict[str, Any] = {"id": document.get("id")}
    marks: dict[str, list[tuple[int, int]]] = {}
    for name in params.fields:
        value = document.get(name)
        limit = params.truncate.get(name)
        if isinstance(value, str):
            value = truncate(value, limit) if limit else value
            if found := mark(name, value):
                marks[name] = found
        shown[name] = value
    field = params.snippet_field
    if field is None or not isinstance(document.get(field), str):
        return shown, marks, None
    result = snippet(str(document[field]), terms, params.snippet_chars, field)
    return shown, marks, result.model_copy(update={"field": field})
