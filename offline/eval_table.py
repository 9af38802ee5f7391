"""`mmsearch eval`: every mode on every labelled set, the served default checked against the
best single mode, and (with --calibrate) the relevance tables fitted on the dev splits."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from functions.core.pipeline_config import MatchParams, PipelineConfig, SceneConfig
from functions.core.settings import Settings
from functions.search.relevance import DEFAULT_TABLES, RelevanceTables, mode_of
from offline import eval_sets
from offline.demo_corpus import WORDNET_DIR
from offline.eval_sets import LabelledSet
from offline.evaluate import SetRuns, collect_runs
from offline.tuning import (
    SINGLE,
    Mode,
    calibration_points,
    candidate_modes,
    fit,
    ndcg,
    replay,
    weak_threshold,
)

SET_NAMES = ("scifact-train", "climate-fever", "wordnet", "tuxpaint")
# Queries no corpus answers: gibberish, punctuation, emoji, another language. Their hits are
# irrelevant by construction; they set the weak-match threshold beside the judged misses.
JUNK_QUERIES = (
    "qwpzlkxj vbnmt",
    "zzkrrtq plo",
    "?!?! ... ;;",
    "--- *** ///",
    "🙂🙃🎉",
    "🐘🐘🐘",
    "¿dónde está la biblioteca municipal?",
    "un animal grande con trompa",
    "wie spät ist es jetzt",
    "aaaaaaaa bbbbbbbb",
)


def served_experiment(scene: SceneConfig) -> str:
    """The match experiment with the most traffic."""
    experiments = scene.match.experiments
    return max(experiments, key=lambda name: experiments[name].ratio)


def single_experiments(scene: SceneConfig, space: str = "text") -> dict[str, str]:
    """{dense|bm25: the scene's first text-space match experiment of that kind}."""
    found: dict[str, str] = {}
    for name, experiment in scene.match.experiments.items():
        params = experiment.params
        if params.space == space and params.kind in ("dense", "bm25"):
            found.setdefault(params.kind, name)
    return found


def mode_for(params: MatchParams) -> Mode:
    """The replayable mode of a text-space match experiment."""
    if params.kind != "hybrid":
        return Mode(params.kind)
    if params.fusion == "rrf":
        return Mode("rrf", rrf_k=params.rrf_k)
    return Mode("convex", dense_weight=params.dense_weight, normalization=params.normalization)


def load_sets(names: Sequence[str], work: Path, wordnet_size: int) -> list[LabelledSet]:
    """The named labelled sets that can be built here (missing sources are skipped)."""
    sets: list[LabelledSet] = []
    for name in names:
        if name == "scifact-train" and (eval_sets.SHARED_DATA / name).is_dir():
            sets.append(eval_sets.read_beir(name, eval_sets.SHARED_DATA / name))
        elif name == "climate-fever" and (eval_sets.SHARED_DATA / name).is_dir():
            sets.append(eval_sets.climate_fever(work))
        elif name == "wordnet" and WORDNET_DIR.is_dir():
            queries = min(600, wordnet_size // 4)
            sets.append(eval_sets.wordnet_set(work, corpus_size=wordnet_size, queries=queries))
        elif name == "tuxpaint":
            from indexing.image_corpus import TUXPAINT_STAMPS

            if TUXPAINT_STAMPS.is_dir():
                sets.append(eval_sets.tuxpaint_set(work))
    return sets


@dataclass
class Table:
    """nDCG@10 per set (and split) per mode, with the served mode named per scene."""

    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    served: dict[str, str] = field(default_factory=dict)  # set -> served mode name
    docs: dict[str, int] = field(default_factory=dict)
    queries: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        modes = list(dict.fromkeys(m for row in self.rows.values() for m in row))
        width = max(len(m) for m in modes) + 2
        lines = ["set".ljust(24) + "".join(m.rjust(width) for m in modes) + "  served"]
        for name, row in self.rows.items():
            cells = "".join((f"{row[m]:.4f}" if m in row else "-").rjust(width) for m in modes)
            lines.append(name.ljust(24) + cells + f"  {self.served[name]}")
        return "\n".join(lines)

    def violations(self, tolerance: float = 0.005) -> list[str]:
        """Sets where the served mode loses to the best single mode by more than tolerance."""
        out = []
        for name, row in self.rows.items():
            best = max(row["dense"], row["bm25"])
            if row[self.served[name]] < best - tolerance:
                out.append(f"{name}: served {row[self.served[name]]:.4f} < best single {best:.4f}")
        return out


def evaluate_all(
    settings: Settings,
    config: PipelineConfig,
    sets: Sequence[LabelledSet],
    *,
    splits: Sequence[str] = ("dev", "test"),
    keep: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[Table, list[SetRuns]]:
    """Run dense and BM25 (and the served experiment) through the real search path on each
    set, replay every candidate fusion, and tabulate nDCG@10 per split."""
    table, collected = Table(), []
    for labelled in sets:
        scene = config.scenes[labelled.scene]
        singles = single_experiments(scene)
        served = served_experiment(scene)
        names = [singles["dense"], singles["bm25"]]
        names += [served] if served not in names else []
        runs = collect_runs(
            settings, labelled, config, names, keep=keep, progress=progress, junk=JUNK_QUERIES
        )
        collected.append(runs)
        dense, bm25 = runs.runs[singles["dense"]], runs.runs[singles["bm25"]]
        served_mode = mode_for(scene.match.experiments[served].params)
        for part in splits:
            key = f"{labelled.name}/{part}"
            row = {
                m.name: ndcg(replay(dense, bm25, m), labelled.qrels, part, runs.docs)
                for m in (*SINGLE, *candidate_modes())
            }
            row["served (real path)"] = ndcg(runs.runs[served], labelled.qrels, part, runs.docs)
            row.setdefault(served_mode.name, row["served (real path)"])
            table.rows[key] = row
            table.served[key] = served_mode.name
            table.docs[key] = runs.docs
            table.queries[key] = sum(
                1 for q in labelled.qrels if part == "all" or eval_sets.split_of(q) == part
            )
    return table, collected


def calibrate(
    config: PipelineConfig,
    collected: Sequence[SetRuns],
    path: Path = DEFAULT_TABLES,
) -> dict[str, object]:
    """Fit relevance tables per (scene, mode) on the dev splits of every set of that scene and
    a weak-match threshold per scene (from the judged dev queries; the junk queries' share
    below it is reported as `junk_weak`); write them to `path`."""
    by_scene: dict[str, list[SetRuns]] = {}
    for runs in collected:
        by_scene.setdefault(runs.labelled.scene, []).append(runs)
    calibrations: dict[str, dict[str, dict[str, list[float]]]] = {}
    thresholds: dict[str, float] = {}
    junk_weak: dict[str, tuple[int, int]] = {}
    for scene_name, scene_runs in by_scene.items():
        scene = config.scenes[scene_name]
        singles = single_experiments(scene)
        served = served_experiment(scene)
        modes: dict[str, Mode] = {}
        for experiment in scene.match.experiments.values():
            if experiment.params.space == "text":
                modes.setdefault(mode_of(experiment.params), mode_for(experiment.params))
        tables = calibrations.setdefault(scene_name, {})
        for key, mode in modes.items():
            points = []
            for runs in scene_runs:
                run = replay(runs.runs[singles["dense"]], runs.runs[singles["bm25"]], mode)
                points += calibration_points(run, runs.labelled.qrels, "dev")
            calibration = fit(points)
            tables[key] = {"scores": list(calibration.scores), "values": list(calibration.values)}
        # The threshold, for the served mode: judged dev queries vs the junk queries.
        served_key = mode_of(scene.match.experiments[served].params)
        fitted = RelevanceTables.from_json({"calibrations": {scene_name: tables}})
        best: list[tuple[float, bool]] = []
        junk_best: list[float] = []
        served_mode = mode_for(scene.match.experiments[served].params)
        for runs in scene_runs:
            dense, bm25 = singles["dense"], singles["bm25"]
            run = replay(runs.runs[dense], runs.runs[bm25], served_mode)
            for query, judged in runs.labelled.qrels.items():
                if eval_sets.split_of(query) != "dev":
                    continue
                hits = run.get(query, [])
                top = max(
                    (fitted.relevance(scene_name, served_key, s) for _, s in hits[:10]), default=0.0
                )
                best.append((top, any(d in judged for d, _ in hits[:3])))
            if dense in runs.junk and bm25 in runs.junk:
                junk_run = replay(runs.junk[dense], runs.junk[bm25], served_mode)
                junk_best += [
                    max((fitted.relevance(scene_name, served_key, s) for _, s in h), default=0.0)
                    for h in junk_run.values()
                ]
        thresholds[scene_name] = weak_threshold(best, junk_best)
        junk_weak[scene_name] = sum(r < thresholds[scene_name] for r in junk_best), len(junk_best)
    data: dict[str, object] = {
        "about": "Fitted by `mmsearch eval --calibrate` on the dev splits (isotonic regression "
        "of relevant-or-not on the raw match score, top 10 hits per query); thresholds: the "
        "highest best-hit relevance that calls at most 10% of the dev queries with a relevant "
        "hit in their top 3 weak.",
        "calibrations": calibrations,
        "thresholds": thresholds,
        "junk_weak": junk_weak,
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data
