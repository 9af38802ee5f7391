"""Labelled sets, fusion replay and calibration fitting (offline/eval_sets.py, tuning.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from functions.core.pipeline_config import parse_config
from functions.core.settings import Settings
from functions.core.stores.vector_store import Match
from functions.search.config_source import DEFAULT_CONFIG
from functions.search.matching import weighted_fusion
from functions.search.relevance import RelevanceTables, isotonic
from offline import eval_sets
from offline.demo_corpus import WORDNET_DIR, read_synsets
from offline.eval_sets import BLANK, LabelledSet, masked_example, split_of
from offline.evaluate import collect_runs, score_run
from offline.tuning import Mode, replay, weak_threshold

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
needs_wordnet = pytest.mark.skipif(not WORDNET_DIR.is_dir(), reason="apt-get install wordnet-base")


@needs_wordnet
def test_a_masked_example_blanks_the_word_and_its_inflections() -> None:
    synsets = read_synsets()
    run = next(s for s in synsets.values() if s.pos == "verb" and s.words[0] == "run")
    assert masked_example(run, "Don't run--you'll be out of breath") == (
        f"Don't {BLANK}--you'll be out of breath"
    )
    assert masked_example(run, "She runs every single morning") == (
        f"She {BLANK} every single morning"
    )
    assert masked_example(run, "nothing of the word here at all") is None


@needs_wordnet
def test_wordnet_set_queries_never_appear_in_their_answer_documents(tmp_path: Path) -> None:
    labelled = eval_sets.wordnet_set(tmp_path, corpus_size=300, queries=60)
    records = {
        r["id"]: r
        for r in map(json.loads, (labelled.corpus / "corpus.jsonl").read_text().splitlines())
    }
    assert len(records) == 300 and len(labelled.queries) == 60
    for query_id, query in labelled.queries.items():
        (answer,) = labelled.qrels[query_id]
        assert answer in records
        _, masked = query.split(": ", 1)
        # The example the query came from was taken out of the answer's text.
        words = [w for w in masked.split() if w != BLANK and len(w) > 3]
        assert not all(w in records[answer]["answer"] for w in words), (query, answer)
        assert BLANK in query
    parts = {split_of(q) for q in labelled.queries}
    assert parts == {"dev", "test"}
    assert labelled.split("dev").queries.keys().isdisjoint(labelled.split("test").queries)


@pytest.mark.skipif(
    not (eval_sets.SHARED_DATA / "climate-fever").is_dir(), reason="needs ../shared/data"
)
def test_climate_fever_ids_are_renamed_and_every_judgement_survives(tmp_path: Path) -> None:
    original = eval_sets.read_beir("climate-fever", eval_sets.SHARED_DATA / "climate-fever")
    renamed = eval_sets.climate_fever(tmp_path)
    assert renamed.queries == original.queries
    assert sum(map(len, renamed.qrels.values())) == sum(map(len, original.qrels.values()))
    corpus = (renamed.corpus / "corpus.jsonl").read_text()
    assert "'" not in "".join(json.loads(line)["id"] for line in corpus.splitlines())


def test_tuxpaint_judgements_name_stamps_that_exist() -> None:
    from indexing.image_corpus import TUXPAINT_STAMPS, tuxpaint_corpus

    if not TUXPAINT_STAMPS.is_dir():
        pytest.skip("apt-get install tuxpaint-stamps-default")
    ids = {d.id for d in tuxpaint_corpus(TUXPAINT_STAMPS)}
    judged = json.loads(eval_sets.JUDGED_TUXPAINT.read_text())["queries"]
    assert len(judged) >= 40
    for query in judged:
        assert query["relevant"] and set(query["relevant"]) <= ids, query["query"]


def test_replayed_fusions_equal_what_the_served_experiments_return(settings: Settings) -> None:
    """The tuning replays fusions from the dense and BM25 runs; the served hybrid experiments
    (RRF inside Milvus, convex in ours) must rank exactly as the replay does."""
    queries = {
        "q1": "forgot my password",
        "q2": "money back for an order",
        "q3": "how long until my parcel arrives",
        "q4": "pay with paypal",
    }
    labelled = LabelledSet(
        "small", "qa", FIXTURES / "qa_small.jsonl", queries, {q: {"qa-000": 1} for q in queries}
    )
    config = parse_config(DEFAULT_CONFIG.read_text())
    runs = collect_runs(
        settings, labelled, config, ["dense", "bm25", "hybrid_rrf", "hybrid_weighted"], top_k=30
    ).runs
    weighted = config.scenes["qa"].match.experiments["hybrid_weighted"].params
    for served, mode in (
        ("hybrid_rrf", Mode("rrf", rrf_k=60)),
        (
            "hybrid_weighted",
            Mode(
                "convex", dense_weight=weighted.dense_weight, normalization=weighted.normalization
            ),
        ),
    ):
        replayed = replay(runs["dense"], runs["bm25"], mode)
        # Milvus may order BM25 ties differently from one call to the next, which moves RRF
        # ranks; compare RRF on the queries whose BM25 scores are all distinct.
        compared = [
            q
            for q in queries
            if mode.kind != "rrf" or len({s for _, s in runs["bm25"][q]}) == len(runs["bm25"][q])
        ]
        assert len(compared) >= 2
        for query in compared:
            got, again = runs[served][query], dict(replayed[query])
            # Same scores position by position and per document (ties may swap places).
            assert [round(s, 5) for _, s in got] == [round(s, 5) for _, s in replayed[query]]
            assert all(again[d] == pytest.approx(s, abs=1e-5) for d, s in got), served


def test_theoretical_min_max_keeps_an_absent_bm25_side_at_zero() -> None:
    dense = [Match("a", 0.6), Match("b", 0.2)]
    fused = weighted_fusion(dense, [], 0.7, "tmm")
    assert [m.id for m in fused] == ["a", "b"]
    assert fused[0].score == pytest.approx(0.7)  # the top dense hit scales to 1
    assert fused[1].score == pytest.approx(0.7 * (0.2 + 1) / (0.6 + 1))


def test_isotonic_calibration_recovers_shares_and_never_falls() -> None:
    points = [(s / 100, int(s % 10 < s // 10)) for s in range(100)]  # share rises with score
    calibration = isotonic(points)
    values = [calibration(s / 100) for s in range(100)]
    assert values == sorted(values)
    assert calibration(0.0) < 0.1 and calibration(0.99) > 0.8
    tables = RelevanceTables.from_json(
        {
            "calibrations": {"qa": {"dense": {"scores": [0.2, 0.6], "values": [0.1, 0.9]}}},
            "thresholds": {"qa": 0.3},
        }
    )
    assert tables.relevance("qa", "dense", 0.4) == pytest.approx(0.5)
    assert tables.relevance("qa", "bm25", 9.0) == 0.0  # not calibrated
    assert tables.weak("qa", [0.2, 0.1]) and not tables.weak("qa", [0.5])
    assert tables.weak("qa", [])  # no hits at all


def test_weak_threshold_calls_at_most_a_tenth_of_found_queries_weak() -> None:
    found = [(v / 100, True) for v in range(20, 120, 10)]  # 0.2 .. 1.1, ten queries
    threshold = weak_threshold([*found, (0.05, False)], junk=[0.1])
    assert sum(r < threshold for r, _ in found) <= 1
    assert 0.1 < threshold <= 0.3


def test_score_run_gives_perfect_ndcg_for_a_perfect_run() -> None:
    metrics = score_run({"q": ["a", "b"]}, {"q": {"a": 1}}, docs=2)
    assert metrics.ndcg_at_10 == 1.0
