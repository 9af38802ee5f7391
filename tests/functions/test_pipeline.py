"""The pipeline's parts without stores: configuration, bucketing, fusion, ranking, summaries."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from functions.core.errors import InvalidRequest
from functions.core.pipeline_config import (
    ConfigError,
    MatchParams,
    PipelineConfig,
    RankParams,
    SummaryParams,
    parse_config,
)
from functions.core.stores.fusion import reciprocal_rank_fusion
from functions.core.stores.vector_store import VECTOR_FIELD, Match
from functions.search.bucketing import assign, bucket
from functions.search.config_source import DEFAULT_CONFIG, FileConfig
from functions.search.matching import weighted_fusion
from functions.search.ranking import mmr, rank
from functions.search.summarize import highlights, query_terms, snippet, summarize, truncate

DEFAULT_TEXT = DEFAULT_CONFIG.read_text(encoding="utf-8")


def _config(text: str = DEFAULT_TEXT) -> PipelineConfig:
    return parse_config(text, "test.yaml")


def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


# --- configuration -------------------------------------------------------------------------

MMR_OFF = "ratio: 0.0\n          params: {mmr_lambda: 0.8}"  # the default rank layer's MMR arm


def test_the_packaged_configuration_is_valid_and_has_every_match_kind() -> None:
    config = _config()
    kinds = {e.params.kind for e in config.scenes["qa"].match.experiments.values()}
    assert kinds == {"dense", "bm25", "hybrid"}


@pytest.mark.parametrize(
    ("old", "new", "line_of", "says"),
    [
        (MMR_OFF, MMR_OFF.replace("0.0", "0.05"), "    rank:", "sum to 1.05"),
        ("mmr_lambda: 0.8", "mmr_lamda: 0.8", "mmr_lamda", "Extra inputs"),
        ("kind: bm25", "kind: bm26", "kind: bm26", "'dense', 'bm25' or 'hybrid'"),
        ("dedupe_field: text}", "dedupe_field: colour}", "dedupe_field: colour}", "colour"),
        ("snippet_field: answer", "snippet_field: answr", "snippet_field: answr", "answr"),
        ("  qa:\n", "  qb:\n", "  qb:", "unknown scene 'qb'"),
        ("      salt: qa-summary-1\n", "", "    summary:", "salt: Field required"),
    ],
)
def test_a_bad_configuration_fails_at_load_naming_its_line(
    old: str, new: str, line_of: str, says: str
) -> None:
    assert old in DEFAULT_TEXT
    broken = DEFAULT_TEXT.replace(old, new, 1)
    with pytest.raises(ConfigError) as failure:
        parse_config(broken, "pipeline.yaml")
    message = str(failure.value)
    assert f"pipeline.yaml, line {_line_of(broken, line_of)}:" in message
    assert says in message


def test_yaml_syntax_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("scenes: [unclosed", "x.yaml")


def test_file_config_reloads_on_change_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(DEFAULT_TEXT, encoding="utf-8")
    source = FileConfig(path, check_every_s=0, background=False)
    assert source.get().scenes["qa"].rank.experiments["mmr"].params.mmr_lambda == 0.8

    def rewrite(text: str) -> None:
        path.write_text(text, encoding="utf-8")
        stamp = time.time() + 5  # a distinct mtime even on coarse-grained file systems
        import os

        os.utime(path, (stamp, stamp))

    rewrite(DEFAULT_TEXT.replace("mmr_lambda: 0.8", "mmr_lambda: 0.6"))
    assert source.get().scenes["qa"].rank.experiments["mmr"].params.mmr_lambda == 0.6
    rewrite(DEFAULT_TEXT.replace(MMR_OFF, MMR_OFF.replace("0.0", "0.05"), 1))
    assert source.get().scenes["qa"].rank.experiments["mmr"].params.mmr_lambda == 0.6
    assert source.last_error is not None and "sum to 1.05" in source.last_error
    path.unlink()
    assert source.get().scenes["qa"].rank.experiments["mmr"].params.mmr_lambda == 0.6
    rewrite(DEFAULT_TEXT.replace("mmr_lambda: 0.8", "mmr_lambda: 0.5"))
    assert source.get().scenes["qa"].rank.experiments["mmr"].params.mmr_lambda == 0.5
    assert source.last_error is None


def test_an_invalid_file_at_start_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text("scenes: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1"):
        FileConfig(path)


# --- bucketing -----------------------------------------------------------------------------

SPLIT = DEFAULT_TEXT.replace(
    """        score:
          ratio: 1.0
          params: {}
        mmr:""",
    """        score:
          ratio: 0.2
          params: {}
        mmr:""",
).replace(
    """        mmr:
          ratio: 0.0
          params: {mmr_lambda: 0.8}""",
    """        mmr:
          ratio: 0.3
          params: {mmr_lambda: 0.8}
        plain:
          ratio: 0.5
          params: {}""",
)
assert SPLIT.count("ratio: 0.3") == 1 and SPLIT.count("ratio: 0.2") == 1


def test_bucketing_is_deterministic_and_splits_users_by_the_ratios() -> None:
    scene = _config(SPLIT).scenes["qa"]
    users = [f"user-{i}" for i in range(10_000)]
    first = [assign(scene, u)["rank"] for u in users]
    assert first == [assign(scene, u)["rank"] for u in users]
    counts = Counter(first)
    for name, ratio in {"score": 0.2, "mmr": 0.3, "plain": 0.5}.items():
        assert abs(counts[name] / len(users) - ratio) <= 0.02, counts


def test_layers_bucket_independently_and_anonymous_requests_at_random() -> None:
    assert bucket("alice", "salt-a") == bucket("alice", "salt-a")
    assert bucket("alice", "salt-a") != bucket("alice", "salt-b")
    scene = _config(SPLIT).scenes["qa"]
    rng = random.Random(1)
    anonymous = Counter(assign(scene, None, rng=rng)["rank"] for _ in range(2_000))
    assert set(anonymous) == {"score", "mmr", "plain"}


def test_debug_override_forces_experiments_and_refuses_unknown_names() -> None:
    scene = _config().scenes["qa"]
    forced = assign(scene, "u1", {"match": "bm25", "rank": "mmr"})
    assert forced["match"] == "bm25" and forced["rank"] == "mmr"
    assert assign(scene, "u1")["match"] == "hybrid"  # the only arm with traffic
    with pytest.raises(InvalidRequest, match="unknown experiment 'nope'"):
        assign(scene, "u1", {"rank": "nope"})
    with pytest.raises(InvalidRequest, match="unknown layer 'ranking'"):
        assign(scene, "u1", {"ranking": "mmr"})


# --- fusion --------------------------------------------------------------------------------


def _hits(*pairs: tuple[str, float]) -> list[Match]:
    return [Match(i, s) for i, s in pairs]


def test_reciprocal_rank_fusion_adds_one_over_k_plus_rank() -> None:
    dense = _hits(("a", 0.9), ("b", 0.8), ("c", 0.1))
    lexical = _hits(("c", 12.0), ("a", 3.0))
    fused = reciprocal_rank_fusion([dense, lexical], k=60)
    expected = {"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61}
    assert [m.id for m in fused] == ["a", "c", "b"]
    assert all(abs(m.score - expected[m.id]) < 1e-12 for m in fused)
    assert reciprocal_rank_fusion([[], []]) == []


def test_weighted_fusion_mixes_min_max_normalised_scores() -> None:
    dense = _hits(("a", 0.9), ("b", 0.5))
    lexical = _hits(("b", 10.0), ("c", 2.0))
    fused = {m.id: m.score for m in weighted_fusion(dense, lexical, dense_weight=0.25)}
    assert fused == pytest.approx({"a": 0.25, "b": 0.75, "c": 0.0})
    assert weighted_fusion([], [], 0.5) == []


# --- ranking -------------------------------------------------------------------------------

RANKERS = {
    "plain": RankParams(),
    "minmax": RankParams(normalize="minmax"),
    "boost": RankParams(boosts={"category": {"billing": 0.5}}),
    "min_score": RankParams(min_score=0.3),
    "dedupe": RankParams(dedupe_field="text"),
    "mmr": RankParams(mmr_lambda=0.5),
    "everything": RankParams(
        normalize="minmax",
        boosts={"category": {"billing": 0.1}},
        min_score=0.0,
        dedupe_field="text",
        mmr_lambda=0.7,
    ),
}


def _candidates(n: int) -> list[Match]:
    rng = np.random.default_rng(n)
    return [
        Match(
            f"d{i}",
            1.0 - i / 10,
            {
                "category": ["billing" if i % 2 else "shipping"],
                "text": f"text {i % 3}",
                VECTOR_FIELD: rng.normal(size=8).tolist(),
            },
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("name", sorted(RANKERS))
@pytest.mark.parametrize("n", [0, 1, 2, 7])
def test_every_ranker_handles_zero_one_and_fewer_hits_than_asked(name: str, n: int) -> None:
    ranked = rank(_candidates(n), RANKERS[name], top_k=10)
    assert len(ranked) <= n
    assert len({m.id for m in ranked}) == len(ranked)
    if name in {"plain", "minmax", "boost", "mmr"}:
        assert len(ranked) == n


def test_rank_applies_boosts_cuts_and_dedupes() -> None:
    hits = _candidates(6)
    boosted = rank(hits, RANKERS["boost"], top_k=3)
    assert [m.id for m in boosted] == ["d1", "d3", "d0"]  # 0.9+0.5, 0.7+0.5, 1.0
    assert [m.id for m in rank(hits, RANKERS["min_score"], top_k=10)] == [f"d{i}" for i in range(6)]
    assert [m.id for m in rank(hits, RankParams(min_score=0.75), top_k=10)] == ["d0", "d1", "d2"]
    assert [m.id for m in rank(hits, RANKERS["dedupe"], top_k=10)] == ["d0", "d1", "d2"]


def test_mmr_prefers_a_diverse_second_hit_and_reduces_to_relevance_at_lambda_one() -> None:
    near = [1.0, 0.0, 0.0]
    hits = [
        Match("a", 0.95, {VECTOR_FIELD: near}),
        Match("a-copy", 0.94, {VECTOR_FIELD: [0.999, 0.04, 0.0]}),
        Match("other", 0.90, {VECTOR_FIELD: [0.0, 1.0, 0.0]}),
    ]
    assert [m.id for m in mmr(hits, 2, 0.5)] == ["a", "other"]
    assert [m.id for m in mmr(hits, 3, 1.0)] == ["a", "a-copy", "other"]


def test_mmr_fetches_vectors_that_lexical_hits_lack() -> None:
    hits = [Match("x", 3.0), Match("y", 2.0), Match("z", 1.0)]
    store = {"x": np.array([1.0, 0]), "y": np.array([1.0, 0.01]), "z": np.array([0.0, 1])}
    asked: list[list[str]] = []

    def vectors(ids: list[str]) -> dict[str, np.ndarray]:
        asked.append(ids)
        return {i: store[i] for i in ids}

    assert [m.id for m in mmr(hits, 2, 0.5, vectors)] == ["x", "z"]
    assert asked == [["x", "y", "z"]]


# --- summaries -----------------------------------------------------------------------------


def test_highlights_mark_query_terms_by_stem_and_skip_stop_words() -> None:
    text = "Passwords are reset from the Settings page; résumé 👍 resetting works."
    terms = query_terms("How do I reset my password?")
    spans = highlights(text, terms)
    assert [text[a:b] for a, b in spans] == ["Passwords", "reset", "resetting"]
    assert highlights(text, query_terms("the of and")) == []


def test_snippet_offsets_point_into_the_snippet_text() -> None:
    text = "Intro words. " * 40 + "The refund arrives within five days. " + "Outro. " * 40
    cut = snippet(text, query_terms("refunds"), chars=80)
    assert len(cut.text) <= 82 and cut.text.startswith("…") and cut.text.endswith("…")
    assert [cut.text[a:b] for a, b in cut.highlights] == ["refund"]
    whole = snippet("short refund text", query_terms("refund"), chars=80)
    assert whole.text == "short refund text" and whole.highlights == [(6, 12)]


def test_summary_keeps_configured_fields_and_truncates_at_a_word() -> None:
    document = {
        "id": "q1",
        "question": "Where is my refund?",
        "answer": "word " * 100,
        "category": ["billing"],
        "secret": "x",
    }
    params = SummaryParams(
        fields=("question", "answer"),
        truncate={"answer": 50},
        snippet_field="answer",
        snippet_chars=40,
    )
    shown, marks, cut = summarize(document, params, query_terms("refund word"))
    assert set(shown) == {"id", "question", "answer"}
    assert len(shown["answer"]) <= 50 and shown["answer"].endswith("…")
    assert [shown["question"][a:b] for a, b in marks["question"]] == ["refund"]
    assert cut is not None and cut.field == "answer"
    assert truncate("abc", 10) == "abc"


def test_match_params_default_to_dense() -> None:
    assert MatchParams().kind == "dense"


def test_appconfig_source_polls_through_powertools_and_keeps_the_last_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS itself is stubbed (botocore's Stubber); powertools' provider and our parsing run."""
    import io

    import boto3
    from botocore.stub import Stubber

    from functions.search.config_source import AppConfig

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = boto3.client("appconfigdata", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response(
        "start_configuration_session",
        {"InitialConfigurationToken": "t0"},
        {
            "ApplicationIdentifier": "mmsearch",
            "EnvironmentIdentifier": "prod",
            "ConfigurationProfileIdentifier": "pipeline",
        },
    )
    bodies = [
        DEFAULT_TEXT,
        "",  # AppConfig's "no change since your token": powertools returns the last body
        DEFAULT_TEXT.replace("mmr_lambda: 0.8", "mmr_lambda: 0.3"),
        "scenes: {}\n",  # invalid: kept out
        "",
    ]
    for number, body in enumerate(bodies):
        stub.add_response(
            "get_latest_configuration",
            {
                "NextPollConfigurationToken": f"t{number + 1}",
                "Configuration": io.BytesIO(body.encode()),
            },
            {"ConfigurationToken": f"t{number}"},
        )
    with stub:
        source = AppConfig(
            "mmsearch", "prod", "pipeline", max_age_s=0, client=client, background=False
        )
        lam = lambda: source.get().scenes["qa"].rank.experiments["mmr"].params.mmr_lambda  # noqa: E731
        assert lam() == 0.8
        assert lam() == 0.3
        assert lam() == 0.3 and source.last_error and "line 1" in source.last_error
        assert lam() == 0.3  # the invalid body is still the latest: still refused
        stub.assert_no_pending_responses()
