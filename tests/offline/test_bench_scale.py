"""The scale rows' corpus: real documents, then distinct texts sampled from a bigram model of
real texts (word frequencies as in those texts), every document once in both stores, and a
build cached under a key that changes with anything it depends on."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pymongo import MongoClient

from functions.core.settings import Settings
from functions.core.stores.factory import open_vector_store
from offline.bench.corpus import BigramModel, distinct_samples
from offline.bench.scale import build_replicated, cache_key
from tests.offline.test_cli import FIXTURE

REAL = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
ANSWERS = [str(d["answer"]) for d in REAL]


def _frequencies(texts: list[str]) -> Counter[str]:
    return Counter(w for t in texts for w in t.split())


def test_sampled_texts_are_reproducible_distinct_and_made_of_the_fitted_words() -> None:
    model = BigramModel.fit(ANSWERS)
    first = model.sample(300, np.random.default_rng(7))
    assert first == model.sample(300, np.random.default_rng(7))
    distinct = distinct_samples(model, 3000, np.random.default_rng(7), set())
    assert len(set(distinct)) == 3000 and all(distinct)
    assert set(_frequencies(distinct)) <= set(_frequencies(ANSWERS))
    starts = {a.split()[0] for a in ANSWERS}
    assert {t.split()[0] for t in distinct} <= starts  # a text starts as real texts start


def test_sampled_word_frequencies_follow_the_fitted_texts() -> None:
    model = BigramModel.fit(ANSWERS)
    sampled = _frequencies(model.sample(20_000, np.random.default_rng(3)))
    real = _frequencies(ANSWERS)
    total_s, total_r = sum(sampled.values()), sum(real.values())
    distance = sum(abs(sampled[w] / total_s - real[w] / total_r) for w in real | sampled) / 2
    assert distance < 0.05
    lengths = [len(a.split()) for a in ANSWERS]
    mean = np.mean([len(t.split()) for t in model.sample(5000, np.random.default_rng(3))])
    assert abs(mean - np.mean(lengths)) < 0.05 * np.mean(lengths)


def test_scale_corpus_holds_the_real_then_distinct_synthetic_documents_once_in_both_stores(
    settings: Settings,
) -> None:
    documents = REAL[:7]
    base = np.eye(7, 384, dtype=np.float32)
    vectors = open_vector_store(settings)
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_uri.get_secret_value())
    database = client[settings.mongo_database]
    collection = f"{settings.collection_prefix}scale"
    questions = BigramModel.fit(str(d["question"]) for d in REAL)
    models = (questions, BigramModel.fit(ANSWERS))
    build_replicated(vectors, database, collection, documents, base, 2_503, models)

    expected = {d["id"] for d in documents} | {f"syn{i:07d}" for i in range(7, 2_503)}
    assert vectors.count(collection) == 2_503
    assert not vectors.missing_ids(collection, sorted(expected))
    stored = list(database[collection].find({}, {"_id": 1, "answer": 1, "category": 1}))
    assert {d["_id"] for d in stored} == expected
    assert len({d["answer"] for d in stored}) == 2_503  # every text distinct
    synthetic = next(d for d in stored if d["_id"] == "syn0000010")
    assert synthetic["category"] == documents[10 % 7]["category"]
    hits = vectors.search(collection, base[3], 5, {})
    # A synthetic document's vector is real document `index % 7`'s plus noise.
    assert all(h.id == documents[3]["id"] or int(h.id[3:]) % 7 == 3 for h in hits)


def test_the_cache_key_changes_with_what_the_build_depends_on(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus-7.jsonl"
    corpus.write_text(FIXTURE.read_text())
    key = cache_key(corpus, 1_000_000, "model-sha")
    assert key == cache_key(corpus, 1_000_000, "model-sha")
    assert key != cache_key(corpus, 100_000, "model-sha")
    assert key != cache_key(corpus, 1_000_000, "another-model")
    corpus.write_text(FIXTURE.read_text() + "\n")
    assert key != cache_key(corpus, 1_000_000, "model-sha")
