"""Fine-tuning: pairs split by query, batches without repeated texts, and the whole path a user
takes on a SciFact slice: train -> export (parity) -> index a second collection -> an A/B
experiment naming the trained model -> search."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import SecretStr

from functions.core.errors import ModelUnavailable, ServiceError
from functions.core.http.schemas import Debug, SearchRequest
from functions.core.models.manifest import ModelManifest
from functions.core.pipeline_config import ConfigError, parse_config
from functions.core.scenes import QA
from functions.core.settings import Settings
from functions.core.stores.factory import collection_name, model_collection, open_vector_store
from functions.preprocess.app import create_app as preprocess_app
from functions.preprocess.service import build_preprocessor
from functions.search.config_source import DEFAULT_CONFIG
from functions.search.service import build_search_service, dependencies
from indexing.corpus import QADocument
from indexing.indexer import Indexer
from offline.demo_corpus import most_familiar, read_wordnet
from offline.export import MIN_COSINE
from offline.local_mongo import LocalMongoServer
from offline.training_data import PairsError, batches, read_training_data
from tests.offline.test_cli import SCIFACT, mmsearch

TRAINED = "scifact-ft"
# The slice's corpus: 60 claims' 47 relevant abstracts padded with others. Every step of
# the path (train, export, index twice, eval) encodes it, so its size is the test's cost.
CORPUS_DOCS = 100


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 SciFact claims with their relevant abstracts, padded to 100 abstracts (BEIR layout).
    Where ../shared/data is not beside the checkout (a CI clone), the same shape is cut from
    WordNet (installed by `make system-deps`): a synset's words as the query, its gloss as
    the one relevant document."""
    out = tmp_path_factory.mktemp("scifact-slice")
    if not SCIFACT.exists():
        return _wordnet_slice(out)
    qrels: dict[str, list[str]] = {}
    for line in (SCIFACT / "qrels.tsv").read_text().splitlines()[1:]:
        query, doc, _ = line.split("\t")
        qrels.setdefault(query, []).append(doc)
    claims = sorted(qrels, key=int)[:60]
    wanted = {d for q in claims for d in qrels[q]}
    docs = [json.loads(x) for x in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    kept = [d for d in docs if d["_id"] in wanted]
    kept += [d for d in docs if d["_id"] not in wanted][: CORPUS_DOCS - len(kept)]
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in kept))
    queries = [json.loads(x) for x in (SCIFACT / "queries.jsonl").read_text().splitlines()]
    (out / "queries.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in queries if q["_id"] in claims)
    )
    rows = [f"{q}\t{d}\t1" for q in claims for d in qrels[q]]
    (out / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return out


def _wordnet_slice(out: Path) -> Path:
    records = most_familiar(read_wordnet(), CORPUS_DOCS)
    corpus = [{"_id": str(r["id"]), "title": "", "text": str(r["answer"])} for r in records]
    queries = [{"_id": f"q{i}", "text": str(r["question"])} for i, r in enumerate(records[:60])]
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    rows = [f"q{i}\t{r['id']}\t1" for i, r in enumerate(records[:60])]
    (out / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return out


def test_a_query_and_all_its_pairs_stay_on_one_side_of_the_split(scifact_slice: Path) -> None:
    data = read_training_data(scifact_slice, validation=0.25, seed=3)
    held_out = set(data.validation.queries.values())
    assert len(data.validation.qrels) == 15 and len(data.train_queries) == 45
    assert not held_out & {p.query for p in data.train}
    assert {p.query for p in data.train} == set(data.train_queries.values())
    assert len(data.validation.corpus) == CORPUS_DOCS  # scored against the whole corpus
    assert read_training_data(scifact_slice, 0.25, seed=3) == data  # seeded


def test_batches_never_hold_the_same_text_twice() -> None:
    from offline.training_data import Pair

    pairs = [Pair(f"q{i % 7}", f"d{i % 5}") for i in range(40)]
    out = batches(pairs, 4, random.Random(0))
    assert sorted(map(repr, (p for b in out for p in b))) == sorted(map(repr, pairs))
    for batch in out:
        texts = [t for p in batch for t in (p.query, p.positive)]
        assert len(texts) == len(set(texts)) and len(batch) <= 4


def test_jsonl_pairs_keep_their_negatives_and_bad_lines_are_named(tmp_path: Path) -> None:
    good = tmp_path / "pairs.jsonl"
    rows = [{"query": f"q{i}", "positive": f"p{i}", "negative": f"n{i}"} for i in range(10)]
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = read_training_data(good, validation=0.2)
    assert len(data.train) == 8 and all(p.negative == "n" + p.query[1:] for p in data.train)
    assert len(data.validation.corpus) == 20  # positives and negatives
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"query": "q"}) + "\n")
    with pytest.raises(PairsError, match="line 2"):
        read_training_data(bad)


def test_a_model_names_only_a_text_space_match() -> None:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["scenes"]["t2i"]["match"]["experiments"]["image"]["params"]["model"] = TRAINED
    with pytest.raises(ConfigError, match="model names a text encoder"):
        parse_config(yaml.safe_dump(config))


def test_a_second_collection_of_a_scene_is_filled_though_the_documents_are_unchanged(
    indexer: Indexer, settings: Settings, qa_docs: list[QADocument]
) -> None:
    collection = collection_name(settings, QA)
    indexer.run(QA, collection, qa_docs)
    # Same documents, same model fingerprint (a fine-tune that kept the base weights).
    report = indexer.run(QA, model_collection(collection, TRAINED), qa_docs)
    assert (report.embedded, report.vectors) == (30, 30)
    assert indexer.run(QA, model_collection(collection, TRAINED), qa_docs).embedded == 0


def test_train_export_index_and_ab_search_with_the_trained_model(
    scifact_slice: Path, model_dir: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MMSEARCH_HOME": str(home), "MMSEARCH_MODEL_DIR": str(model_dir)}
    trained, exported = tmp_path / "trained" / TRAINED, home / "models" / TRAINED
    # Training time is pairs x sequence length (the 100 abstracts only cost encoding): 64
    # tokens train the same path as 128 in about half the time.
    args = ["--epochs", "1", "--batch-size", "8", "--max-seq-length", "64", "--validation", "0.25"]
    done = mmsearch(
        env, "train", "--pairs", str(scifact_slice), "--out", str(trained), *args, "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["data"]["validation_queries"] == 15 and report["data"]["train_pairs"] >= 45
    assert [e["epoch"] for e in report["epochs"]] == [1] and report["epochs"][0]["loss"] > 0
    assert 0 < report["before"]["ndcg@10"] <= 1 and report["device"].startswith("cpu")
    assert "nDCG@10" in (trained / "train_report.txt").read_text()

    done = mmsearch(env, "export", "--model", str(trained), "--out", str(exported))
    assert done.returncode == 0, done.stderr
    manifest = ModelManifest.read(exported)
    assert (manifest.name, manifest.source) == (TRAINED, str(trained))
    assert manifest.parity.min_cosine >= MIN_COSINE and manifest.revision

    for extra in ([], ["--model", str(exported)]):
        done = mmsearch(env, "index", "--input", str(scifact_slice), *extra)
        assert done.returncode == 0, done.stderr
        assert f"Milvus {CORPUS_DOCS}, MongoDB {CORPUS_DOCS}" in done.stderr
    assert "mmsearch_qa__scifact_ft" in done.stderr

    done = mmsearch(env, "eval", "--beir", str(scifact_slice), "--model", str(exported), "--json")
    assert done.returncode == 0, done.stderr
    scored = json.loads(done.stdout.splitlines()[-1])
    assert scored["model"].startswith(f"{TRAINED}@") and scored["queries"] == 60

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    matches = config["scenes"]["qa"]["match"]["experiments"]
    matches["hybrid"]["ratio"] = 0.5
    matches["trained"] = {"ratio": 0.5, "params": {"kind": "dense", "model": TRAINED}}
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(config))
    with LocalMongoServer(home / "mongo") as server:
        settings = Settings(
            home=home,
            model_dir=model_dir,
            extra_model_dirs=str(exported),
            mongo_uri=SecretStr(server.uri),
            pipeline_config=pipeline,
        )
        _check_ab_search(settings)


def _check_ab_search(settings: Settings) -> None:
    embedder, documents = dependencies(settings)
    service = build_search_service(settings, embedder, documents)
    query = "Vitamin D deficiency is linked to a higher risk of disease."

    def search(experiment: str | None = None, user: str | None = None) -> list[str]:
        debug = Debug(experiments={"match": experiment}) if experiment else None
        request = SearchRequest(scene="qa", query=query, top_k=5, user_id=user, debug=debug)
        response = service.search(request)
        assert experiment is None or response.experiments["match"] == experiment
        return [response.experiments["match"], *(h.id for h in response.hits)]

    arms = {search(user=f"user-{i}")[0] for i in range(24)}
    assert arms == {"hybrid", "trained"}  # users are split between the two arms
    assert len(search("trained")) == 6 and len(search("dense")) == 6

    client = TestClient(preprocess_app(settings, build_preprocessor(settings)))
    reply = client.post("/v1/embed", json={"texts": [query], "model": TRAINED}).json()
    assert (reply["model"], reply["dim"]) == (TRAINED, 384)
    unknown = client.post("/v1/embed", json={"texts": [query], "model": "nope"})
    # A model this deployment never loads: retrying cannot help, so a 4xx.
    assert unknown.status_code == 422 and "not loaded" in unknown.json()["error"]["message"]
    with pytest.raises(ModelUnavailable):
        build_preprocessor(settings).embed([query], "nope")

    # The trained arm reads its own collection: without the default one it still answers.
    open_vector_store(settings).drop(collection_name(settings, QA))
    assert model_collection(collection_name(settings, QA), TRAINED).endswith("__scifact_ft")
    assert len(search("trained")) == 6
    with pytest.raises(ServiceError):
        search("dense")
