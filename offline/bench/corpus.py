"""The benchmark's corpus and queries: real WordNet glosses (the demo corpus's source)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offline.demo_corpus import ensure_demo_corpus

QUERIES = 500
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
WORDNET_ALL = "wordnet-all.jsonl"


def bench_corpus(work_dir: Path, docs: int) -> tuple[Path, Path, list[dict[str, Any]]]:
    """`docs` records spread evenly over all of WordNet, and queries from records left out.

    A query is the first dozen words of a held-out gloss: a description a user might type.
    """
    everything = ensure_demo_corpus(work_dir / WORDNET_ALL)
    with everything.open(encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    if docs > len(records):
        raise ValueError(f"the benchmark corpus has {len(records)} real documents, not {docs}")
    step = len(records) / docs
    chosen = {int(i * step) for i in range(docs)}
    documents = [records[i] for i in sorted(chosen)]
    held_out = [r for i, r in enumerate(records) if i not in chosen]
    stride = max(1, len(held_out) // QUERIES)
    queries = [" ".join(str(r["answer"]).split(";")[0].split()[:12]) for r in held_out[::stride]]
    corpus_file = work_dir / f"corpus-{docs}.jsonl"
    corpus_file.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents))
    queries_file = work_dir / "queries.txt"
    queries_file.write_text("\n".join(q for q in queries[:QUERIES] if q) + "\n")
    return corpus_file, queries_file, documents


# Texts the scale rows' synthetic documents are modelled on: every WordNet gloss (the bench
# corpus's source), SciFact abstracts and climate-fever passages.
MODEL_SOURCES = ("scifact-train", "climate-fever")
END = "\n"  # the boundary between texts; never emitted inside one


@dataclass(frozen=True)
class BigramModel:
    """A word-level bigram model of real texts: sampled texts are distinct, and their word
    and word-pair frequencies follow the texts it was fitted on (unlike copies of a few texts,
    whose every posting list is as many times denser as there are copies)."""

    words: list[str]  # index 0 is END
    segments: np.ndarray  # int64 (vocabulary + 1,): a word's successors' range
    successors: np.ndarray  # int64: word ids, grouped by predecessor
    cumulative: np.ndarray  # float64: predecessor id + cumulative probability (in (w, w+1])
    lengths: np.ndarray  # int64: the fitted texts' lengths in words

    @classmethod
    def fit(cls, texts: Iterable[str]) -> BigramModel:
        """Count word pairs (words split on white space, so punctuation stays attached as it
        appears), with END before and after each text."""
        vocabulary: dict[str, int] = {END: 0}
        chain, lengths = [0], []
        for text in texts:
            ids = [vocabulary.setdefault(w, len(vocabulary)) for w in text.split()]
            if ids:
                lengths.append(len(ids))
                chain += ids
                chain.append(0)
        size = len(vocabulary)
        flat = np.asarray(chain, dtype=np.int64)
        pairs, counts = np.unique(flat[:-1] * size + flat[1:], return_counts=True)
        source, target = pairs // size, pairs % size  # sorted by source, then target
        segments = np.zeros(size + 1, dtype=np.int64)
        segments[1:] = np.cumsum(np.bincount(source, minlength=size))
        spans = np.diff(segments)
        totals = np.add.reduceat(counts, segments[:-1]).astype(np.float64)
        within = np.cumsum(counts) - np.repeat(np.cumsum(totals) - totals, spans)
        cumulative = source + within / np.repeat(totals, spans)
        cumulative[segments[1:] - 1] = np.arange(1, size + 1)  # exact segment ends
        words = sorted(vocabulary, key=vocabulary.__getitem__)
        return cls(words, segments, target, cumulative, np.asarray(lengths, dtype=np.int64))

    def _step(self, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # u in (0, 1]: state + u falls inside the state's own segment of `cumulative`.
        keys = state + (1.0 - rng.random(len(state)))
        order = np.argsort(keys)  # sorted keys: searchsorted walks the array once
        found = np.empty(len(keys), dtype=np.int64)
        found[order] = np.searchsorted(self.cumulative, keys[order])
        return self.successors[found]

    def sample(self, count: int, rng: np.random.Generator) -> list[str]:
        """`count` texts, each a walk from a text's start to its end: in expectation each word
        occurs as often per text as in the fitted texts, and texts are as long on average
        (walks are cut at four times the longest fitted text's length)."""
        state = np.zeros(count, dtype=np.int64)
        active = np.arange(count)
        rows, words = [], []
        for _ in range(4 * int(self.lengths.max(initial=0))):
            step = self._step(state[active], rng)
            going = step != 0  # END closes the text
            active, step = active[going], step[going]
            if not len(active):
                break
            state[active] = step
            rows.append(active)
            words.append(step)
        row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        order = np.argsort(row, kind="stable")  # by text, each text's words in order
        vocabulary = np.asarray(self.words, dtype=object)
        flat = vocabulary[np.concatenate(words)[order]] if words else vocabulary[:0]
        bounds = np.concatenate(([0], np.cumsum(np.bincount(row, minlength=count))))
        return [" ".join(flat[bounds[i] : bounds[i + 1]]) for i in range(count)]


def wordnet_records(work_dir: Path) -> list[str]:
    """The lines of every WordNet record (`bench_corpus` writes them into its work folder)."""
    return (work_dir / WORDNET_ALL).read_text(encoding="utf-8").splitlines()


def real_texts(records: Iterable[dict[str, Any]], field: str) -> Iterator[str]:
    """One field of bench records (WordNet: question, answer)."""
    return (str(r.get(field) or "") for r in records)


def beir_texts(folder: Path, field: str) -> Iterator[str]:
    """One field of a BEIR corpus (title or text), if the folder is there."""
    corpus = folder / "corpus.jsonl"
    if not corpus.exists():
        return iter(())
    with corpus.open(encoding="utf-8") as fh:
        return iter([str(json.loads(line).get(field) or "") for line in fh])


def distinct_samples(
    model: BigramModel, count: int, rng: np.random.Generator, seen: set[int]
) -> list[str]:
    """`count` sampled texts, none of them in `seen` (hashes, updated) nor repeated."""
    texts = model.sample(count, rng)
    for i, text in enumerate(texts):
        while hash(text) in seen:
            text = model.sample(1, rng)[0]
        seen.add(hash(text))
        texts[i] = text
    return texts
