"""Training pairs for fine-tuning: read from JSON lines or a BEIR folder, split by query.

A query's pairs all land on one side of the split, so validation measures retrieval for
queries the model never saw. Validation is scored against the whole corpus of the input.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from functions.core.scenes import QA
from indexing.corpus import read_corpus
from offline.evaluate import Qrels, read_qrels, read_queries


@dataclass(frozen=True)
class Pair:
    """One query with a relevant text and, optionally, a text that should rank below it."""

    query: str
    positive: str
    negative: str | None = None


@dataclass(frozen=True)
class RetrievalSet:
    """Queries, a corpus and which documents are relevant to which query (ids are strings)."""

    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: Qrels


@dataclass(frozen=True)
class TrainingData:
    """Pairs to train on, the held-out queries, and the corpus the pairs come from."""

    train: list[Pair]
    validation: RetrievalSet
    train_queries: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def describe(self) -> dict[str, int | str]:
        return {
            "source": self.source,
            "train_queries": len(self.train_queries),
            "train_pairs": len(self.train),
            "validation_queries": len(self.validation.qrels),
            "corpus_docs": len(self.validation.corpus),
        }


class PairsError(ValueError):
    """The pairs input cannot be used; the message says why in one line."""


def read_training_data(path: Path, validation: float = 0.2, seed: int = 13) -> TrainingData:
    """Pairs from a BEIR folder (query -> text of each relevant document) or a JSON-lines file
    of `{"query", "positive"[, "negative"]}`, with a `validation` share of the queries held out."""
    if not 0 < validation < 1:
        raise PairsError(f"the validation share must be between 0 and 1, not {validation}")
    if path.is_dir():
        queries, corpus, qrels, negatives = _read_beir(path)
    elif path.is_file():
        queries, corpus, qrels, negatives = _read_jsonl(path)
    else:
        raise PairsError(f"{path} is neither a BEIR folder nor a JSON-lines file")
    # Split by query text: the same claim under two ids must not sit on both sides.
    by_text: dict[str, list[str]] = {}
    for q in sorted(qrels):
        by_text.setdefault(queries[q], []).append(q)
    texts = sorted(by_text)
    if len(texts) < 2:
        raise PairsError(f"{path}: {len(texts)} queries with a relevant text; at least 2 needed")
    random.Random(seed).shuffle(texts)
    held = max(1, round(len(texts) * validation))
    held_out = [q for t in texts[:held] for q in by_text[t]]
    kept = [q for t in texts[held:] for q in by_text[t]]
    pairs = [
        Pair(queries[q], corpus[d], negatives.get((q, d)))
        for q in kept
        for d in sorted(qrels[q])
        if d in corpus
    ]
    return TrainingData(
        train=pairs,
        validation=RetrievalSet(
            {q: queries[q] for q in held_out}, corpus, {q: qrels[q] for q in held_out}
        ),
        train_queries={q: queries[q] for q in kept},
        source=str(path),
    )


Read = tuple[dict[str, str], dict[str, str], Qrels, dict[tuple[str, str], str]]


def _read_beir(folder: Path) -> Read:
    corpus = {d.id: QA.embedding_text(d.model_dump()) for d in read_corpus(folder).documents}
    queries = read_queries(folder)
    qrels = {
        q: {d: g for d, g in rel.items() if d in corpus}
        for q, rel in read_qrels(folder).items()
        if q in queries
    }
    return queries, corpus, {q: r for q, r in qrels.items() if r}, {}


def _read_jsonl(path: Path) -> Read:
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    qrels: Qrels = {}
    negatives: dict[tuple[str, str], str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            query, positive = str(row["query"]).strip(), str(row["positive"]).strip()
        except (ValueError, KeyError, TypeError) as exc:
            raise PairsError(f"{path}, line {number}: not a {{query, positive}} object") from exc
        if not query or not positive:
            raise PairsError(f"{path}, line {number}: empty query or positive")
        q, d = _text_id(query), _text_id(positive)
        queries[q], corpus[d] = query, positive
        qrels.setdefault(q, {})[d] = 1
        if negative := str(row.get("negative") or "").strip():
            corpus[_text_id(negative)] = negative
            negatives[(q, d)] = negative
    return queries, corpus, qrels, negatives


def _text_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def batches(pairs: Sequence[Pair], size: int, rng: random.Random) -> list[list[Pair]]:
    """Shuffled batches in which no text appears twice: with in-batch negatives, a repeated
    query or positive would be scored as its own negative."""
    pending = list(pairs)
    rng.shuffle(pending)
    out: list[list[Pair]] = []
    while pending:
        batch: list[Pair] = []
        seen: set[str] = set()
        rest: list[Pair] = []
        for pair in pending:
            texts = _texts(pair)
            if len(batch) < size and not texts & seen:
                batch.append(pair)
                seen |= texts
            else:
                rest.append(pair)
        out.append(batch)
        pending = rest
    return out


def _texts(pair: Pair) -> set[str]:
    return {pair.query, pair.positive, *([pair.negative] if pair.negative else [])}


def with_negatives(
    pairs: Iterable[Pair], ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], skip: int
) -> list[Pair]:
    """Each pair without a negative gets the best-ranked text of its row in `ranked` that is
    neither relevant nor among the first `skip` (likely unjudged positives)."""
    out = []
    for pair, candidates, good in zip(pairs, ranked, relevant, strict=True):
        if pair.negative is None:
            hard = next((t for t in candidates[skip:] if t not in good), None)
            pair = Pair(pair.query, pair.positive, hard)
        out.append(pair)
    return out
