"""Fusion tuning and relevance calibration from raw dense and BM25 runs.

Served hybrid search fuses the dense and BM25 candidate lists (100 each) with the functions in
`functions/search/matching.py`; given both lists per query (as `mmsearch eval` collects them
through the real search path), any fusion can be replayed here exactly, without re-querying
(checked: replayed RRF k=60 equals Milvus' served RRF on every query of the WordNet set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from functions.core.stores.vector_store import Match
from functions.search.matching import reciprocal_rank_fusion, weighted_fusion
from functions.search.relevance import Calibration, isotonic
from offline.eval_sets import split_of
from offline.evaluate import Qrels, ScoredRun, score_run


@dataclass(frozen=True)
class Mode:
    """A way to rank: one matcher alone, or the two fused."""

    kind: str  # dense | bm25 | rrf | convex
    rrf_k: int = 60
    dense_weight: float = 0.5
    normalization: str = "minmax"

    @property
    def name(self) -> str:
        if self.kind == "rrf":
            return f"rrf(k={self.rrf_k})"
        if self.kind == "convex":
            return f"convex(w={self.dense_weight:g},{self.normalization})"
        return self.kind


SINGLE = (Mode("dense"), Mode("bm25"))


def candidate_modes() -> list[Mode]:
    """The fusions tried on the dev splits."""
    modes = [Mode("rrf", rrf_k=k) for k in (10, 60)]
    modes += [
        Mode("convex", dense_weight=w / 10, normalization=n)
        for n in ("minmax", "tmm")
        for w in range(1, 10)
    ]
    return modes


def replay(dense: ScoredRun, bm25: ScoredRun, mode: Mode) -> ScoredRun:
    """The run `mode` would have served, from the two raw runs."""
    out: ScoredRun = {}
    for query in dense.keys() | bm25.keys():
        d = [Match(id=i, score=s) for i, s in dense.get(query, [])]
        b = [Match(id=i, score=s) for i, s in bm25.get(query, [])]
        if mode.kind == "dense":
            fused = d
        elif mode.kind == "bm25":
            fused = b
        elif mode.kind == "rrf":
            fused = reciprocal_rank_fusion([d, b], mode.rrf_k)
        else:
            fused = weighted_fusion(d, b, mode.dense_weight, mode.normalization)
        out[query] = [(m.id, m.score) for m in fused]
    return out


def ndcg(run: ScoredRun, qrels: Qrels, part: str, docs: int) -> float:
    """nDCG@10 over the queries of one split."""
    judged = {q: r for q, r in qrels.items() if part == "all" or split_of(q) == part}
    ids = {q: [d for d, _ in run.get(q, [])] for q in judged}
    return score_run(ids, judged, docs).ndcg_at_10 if judged else 0.0


def margin(scores: Mapping[str, Mapping[str, float]], mode: str) -> float:
    """The mode's worst margin over the best single mode, across sets (negative: it loses)."""
    return min(row[mode] - max(row["dense"], row["bm25"]) for row in scores.values())


def choose(scores: Mapping[str, Mapping[str, float]], modes: Sequence[str]) -> str:
    """The mode with the best worst-case margin over the best single mode, then the best mean."""

    def key(mode: str) -> tuple[float, float]:
        mean = sum(row[mode] for row in scores.values()) / len(scores)
        return (round(margin(scores, mode), 3), mean)

    return max(modes, key=key)


def calibration_points(
    run: ScoredRun, qrels: Qrels, part: str = "dev", depth: int = 10
) -> list[tuple[float, int]]:
    """(score, relevant?) for the top `depth` hits of each judged query of `part`."""
    points = []
    for query, judged in qrels.items():
        if part != "all" and split_of(query) != part:
            continue
        for doc, score in run.get(query, [])[:depth]:
            points.append((score, int(judged.get(doc, 0) > 0)))
    return points


def fit(points: Iterable[tuple[float, int]]) -> Calibration:
    """The isotonic calibration of relevance on score."""
    return isotonic(list(points))


def weak_threshold(
    best: Sequence[tuple[float, bool]],
    junk: Sequence[float],
    floor: float = 0.05,
    false_alarms: float = 0.10,
) -> float:
    """The best-hit relevance below which a result is called weak: the highest value that
    calls at most `false_alarms` of the judged queries with a relevant hit in their top 3
    weak (`best`: (best relevance, found)), never below `floor`. `junk` (the unanswerable
    queries' best relevances) is for the report: what share of them falls below."""
    found = sorted(r for r, ok in best if ok)
    if not found:
        return floor
    value = found[int(false_alarms * len(found))]
    return max(floor, round(value - 1e-4, 4))
