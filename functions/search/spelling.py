"""Did you mean: query words corrected against the corpus's own vocabulary (SymSpell).

Indexing counts the words of the embedded texts (`count_terms`) and stores them in the
document store beside the scene's documents (`save_vocabulary`); search loads them once per
scene (`VocabularySource`) and suggests a query whose unknown words are replaced by the most
frequent corpus word within two edits.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from symspellpy import SymSpell, Verbosity

from functions.core.models.normalize import UNSPACED
from functions.core.stores.document_store import DocumentStore

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
VOCABULARY_ID = "terms"
MIN_WORD = 4  # shorter words have too many neighbours within two edits
MAX_TERMS = 200_000
# Below this share of words known to the corpus a query is a weak match whatever its scores
# (another language, gibberish): 1 of 2,470 judged queries of the qa sets falls below it
# (README). A corpus with fewer words than MIN_VOCABULARY (captions) does not cover its
# language well enough to judge by.
MIN_COVERAGE = 0.5
MIN_VOCABULARY = 5_000


def spaced_words(text: str) -> list[str]:
    """The words of `text` that spaces delimit. A run of Chinese or Japanese is no word (a
    segmenter finds those), so it is neither counted, corrected, nor judged unknown: a
    Chinese query was a weak match whenever it was not exactly a stored headword."""
    return [w for w in _WORD.findall(text) if not UNSPACED.search(w)]


def vocabulary_store(store: str) -> str:
    """The document-store collection holding a corpus's vocabulary."""
    return f"{store}__vocabulary"


def count_terms(texts: Iterable[str]) -> Counter[str]:
    """Lower-cased alphabetic words and how often each occurs."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w.casefold() for w in spaced_words(text))
    return counts


def save_vocabulary(documents: DocumentStore, store: str, counts: Mapping[str, int]) -> None:
    """Replace the corpus's stored vocabulary (one document: [[term, count], ...])."""
    terms = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TERMS]
    documents.upsert(
        vocabulary_store(store), [{"id": VOCABULARY_ID, "terms": [[t, c] for t, c in terms]}]
    )


class Speller:
    """Suggestions from one corpus's vocabulary."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self._known = dict(counts)
        self._symspell = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        for term, count in self._known.items():
            if len(term) >= MIN_WORD:
                self._symspell.create_dictionary_entry(term, count)

    def coverage(self, query: str) -> float:
        """The share of the query's words that occur in the corpus (1.0 for no words, or
        for a corpus too small to judge by)."""
        words = [w.casefold() for w in spaced_words(query)]
        if len(self._known) < MIN_VOCABULARY:
            return 1.0
        return sum(w in self._known for w in words) / len(words) if words else 1.0

    def suggest(self, query: str) -> str | None:
        """The query with its unknown words corrected, or None when nothing changes."""
        changed = False

        def fix(match: re.Match[str]) -> str:
            nonlocal changed
            word = match.group()
            lower = word.casefold()
            if len(lower) < MIN_WORD or lower in self._known or UNSPACED.search(word):
                return word
            # One edit for words under 7 letters, two above: "perro" is not "person".
            allowed = 1 if len(lower) < 7 else 2
            found = self._symspell.lookup(lower, Verbosity.TOP, max_edit_distance=allowed)
            if not found:
                return word
            changed = True
            term: str = found[0].term
            return term.capitalize() if word[:1].isupper() else term

        suggestion = _WORD.sub(fix, query)
        return suggestion if changed and suggestion != query else None


class VocabularySource:
    """Loads a store's vocabulary once (re-read after `max_age_s`) and builds its Speller;
    None where indexing stored none."""

    def __init__(self, documents: DocumentStore, max_age_s: float = 300.0) -> None:
        self._documents = documents
        self._max_age_s = max_age_s
        self._cache: dict[str, tuple[float, Speller | None]] = {}
        self._lock = threading.Lock()

    def speller(self, store: str) -> Speller | None:
        with self._lock:
            cached = self._cache.get(store)
            if cached and time.monotonic() - cached[0] < self._max_age_s:
                return cached[1]
        found: dict[str, dict[str, Any]] = self._documents.get(
            vocabulary_store(store), [VOCABULARY_ID]
        )
        row = found.get(VOCABULARY_ID)
        speller = Speller({str(t): int(c) for t, c in row["terms"]}) if row else None
        with self._lock:
            self._cache[store] = (time.monotonic(), speller)
        return speller
