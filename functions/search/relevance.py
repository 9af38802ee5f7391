"""Calibrated relevance: what share of hits at a raw match score were relevant.

Raw scores mean different things per mode (cosine ~0.5, BM25 ~11, RRF ~0.03). `mmsearch eval
--calibrate` fits, per scene and match mode, a monotone (isotonic) map from the raw score to
the share of relevant hits among the labelled sets' top 10s, and a weak-match threshold per
scene; they are stored as data beside this module (relevance.json) and read once.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.core.pipeline_config import MatchParams

DEFAULT_TABLES = Path(__file__).with_name("relevance.json")


def mode_of(params: MatchParams) -> str:
    """The calibration key of a match experiment: its space and how it scores."""
    kind: str = params.kind
    if kind == "hybrid" and params.fusion == "rrf":
        kind = f"rrf:{params.rrf_k}"
    elif kind == "hybrid":
        kind = f"weighted:{params.dense_weight:g}:{params.normalization}"
    if params.space == "image":
        return "image"
    if params.space == "both":
        return "text+image"
    return kind


@dataclass(frozen=True)
class Calibration:
    """A non-decreasing step map: scores at or above `scores[i]` have relevance `values[i]`;
    below the first knot, `values[0]` (linear between knots)."""

    scores: tuple[float, ...]
    values: tuple[float, ...]

    def __call__(self, score: float) -> float:
        if not self.scores:
            return 0.0
        i = bisect.bisect_right(self.scores, score)
        if i == 0:
            return self.values[0]
        if i == len(self.scores):
            return self.values[-1]
        low, high = self.scores[i - 1], self.scores[i]
        share = (score - low) / (high - low) if high > low else 0.0
        return self.values[i - 1] + share * (self.values[i] - self.values[i - 1])


@dataclass(frozen=True)
class RelevanceTables:
    """Calibrations per (scene, mode) and the weak-match threshold per scene."""

    calibrations: Mapping[tuple[str, str], Calibration] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_TABLES) -> RelevanceTables:
        """Read the fitted tables; a missing file means no calibration (relevance 0)."""
        if not path.exists():
            return cls()
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RelevanceTables:
        calibrations = {
            (scene, mode): Calibration(tuple(table["scores"]), tuple(table["values"]))
            for scene, modes in data.get("calibrations", {}).items()
            for mode, table in modes.items()
        }
        thresholds = {k: float(v) for k, v in data.get("thresholds", {}).items()}
        return cls(calibrations, thresholds)

    def relevance(self, scene: str, mode: str, score: float) -> float:
        """The calibrated relevance of a hit, in [0, 1]; 0 when the mode is not calibrated."""
        calibration = self.calibrations.get((scene, mode))
        return min(1.0, max(0.0, calibration(score))) if calibration else 0.0

    def weak(self, scene: str, relevances: Sequence[float]) -> bool:
        """True when no hit reaches the scene's threshold (no hits at all included)."""
        return not relevances or max(relevances) < self.thresholds.get(scene, 0.0)


def isotonic(points: Sequence[tuple[float, int]], bins: int = 24) -> Calibration:
    """Pool-adjacent-violators fit of relevance (0/1) on score, summarised as at most `bins`
    knots (block means at block score medians), non-decreasing."""
    tied: dict[float, list[float]] = {}  # equal scores form one starting block
    for score, label in points:
        entry = tied.setdefault(score, [0.0, 0.0])
        entry[0] += label
        entry[1] += 1
    blocks: list[list[float]] = []  # [sum of labels, count, sum of scores]
    for score, (labels, count) in sorted(tied.items()):
        blocks.append([labels, count, score * count])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2] + last[2]]
    knots = [(b[2] / b[1], b[0] / b[1]) for b in blocks]
    if len(knots) > bins:
        step = len(knots) / bins
        knots = [knots[int(i * step)] for i in range(bins)] + [knots[-1]]
    scores = tuple(round(s, 6) for s, _ in knots)
    values = tuple(round(v, 4) for _, v in knots)
    return Calibration(scores, values)
