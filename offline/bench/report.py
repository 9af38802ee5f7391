"""The benchmark table: results as Markdown, with each goal and how far off it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WALL_GOAL_S = 1800.0  # the full suite, 1M build cached
FULL_SCALE = (100_000, 1_000_000)


@dataclass(frozen=True)
class Goal:
    """One goal of the bench table. `target` None: the target is a figure of the same run
    (a peer's); `strict`: the value must beat the target, not just reach it."""

    label: str
    value: float | None
    target: float | None
    lower: bool
    strict: bool = False
    shown: str | None = None  # the measured cell, when more than the value
    unmeasured: str = "not measured in this run"  # why there is no value
    note: str = ""  # said after the status (e.g. the run cannot be compared)

    def status(self) -> str:
        if self.value is None:
            return "—"
        if self.target is None:
            return "no peer figure in this run to compare with"
        if self.lower:
            met = self.value < self.target if self.strict else self.value <= self.target
        else:
            met = self.value > self.target if self.strict else self.value >= self.target
        if met:
            verdict = "met"
        else:
            gap = abs(self.value - self.target)
            share = f" ({gap / self.target * 100:.0f}%)" if self.target else ""
            verdict = f"missed by {_number(gap)}{share}"
        return f"{verdict}; {self.note}" if self.note else verdict

    def row(self) -> str:
        measured = self.unmeasured if self.value is None else self.shown or _number(self.value)
        sign = ("<" if self.strict else "≤") if self.lower else (">" if self.strict else "≥")
        target = "—" if self.target is None else f"{sign} {_number(self.target)}"
        return f"| {self.label} | {measured} | {target} | {self.status()} |"


def _number(value: float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"


def lookup(results: dict[str, Any], path: str) -> Any:
    """Follow a dotted path; `scale@N` picks the scale row for N documents."""
    value: Any = results
    for part in path.split("."):
        if part.startswith("scale@"):
            size = int(part.split("@")[1])
            value = next((row for row in value.get("scale", []) if row["docs"] == size), None)
        else:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def goals(results: dict[str, Any]) -> list[Goal]:
    """Every goal (issue 19's and the earlier ones) with this run's figure."""
    peer = results.get("peer") or {}
    peer_ok = bool(peer) and "error" not in peer
    txtai_p50 = peer.get("query_p50_ms") if peer_ok else None
    txtai_index = peer.get("index_docs_per_s") if peer_ok else None
    rows = [
        Goal("preprocess cold start (s)", lookup(results, "cold_start_s.preprocess"), 1.0, True),
        Goal(
            "encode speedup vs sentence-transformers (CPU)",
            results.get("encode_speedup"),
            1.3,
            False,
        ),
    ]
    for kind, label in (("dense", "dense only"), ("default", "served default")):
        value = lookup(results, f"in_process.{kind}.p50_ms")
        served = (
            lookup(results, f"in_process.{kind}.experiments.match") if kind == "default" else None
        )
        rows.append(
            Goal(
                f"in-process query p50, {label}{f' ({served})' if served else ''}, vs txtai's "
                "p50 in the same run (ms)",
                value,
                txtai_p50,
                True,
                strict=True,
            )
        )
    rows.append(
        Goal(
            "index docs/s vs txtai's (same 10k glosses, same model)",
            results.get("index_docs_per_s"),
            txtai_index,
            False,
            strict=True,
        )
    )
    rows.append(
        Goal(
            "warm end-to-end p50 at 100k docs over HTTP, served default (ms)",
            lookup(results, "scale@100000.search_ms.p50"),
            15.0,
            True,
        )
    )
    rows.append(
        Goal(
            "overhead ratio (HTTP e2e p50 / (encode p50 + match p50))",
            results.get("overhead_ratio"),
            1.3,
            True,
        )
    )
    million = lookup(results, "scale@1000000")
    if million is not None:
        texts = SCALE_CORPORA.get(million.get("texts"), "")
        memory = (
            f"server RSS {million.get('server_rss_mb')} MB incl. Milvus Lite, MongoDB-wire "
            f"{million.get('mongo_rss_mb')} MB, Milvus Lite disk {million.get('milvus_disk_mb')} MB"
        )
        realistic = million.get("texts") == "bigram"
        rows.append(
            Goal(
                "1M docs (bigram texts) hybrid p50 over HTTP (ms), memory reported",
                million["search_ms"]["p50"],
                30.0,
                True,
                shown=f"{_number(million['search_ms']['p50'])} ({memory})",
                note="" if realistic else f"corpus: {texts or 'unknown'}, not the goal's",
            )
        )
    else:
        rows.append(
            Goal(
                "1M docs (bigram texts) hybrid p50 over HTTP (ms), memory reported",
                None,
                30.0,
                True,
            )
        )
    rows.append(_index_goal(results))
    rows.append(_wall_goal(results))
    rows.append(_gpu_goal(results))
    return rows


def _index_goal(results: dict[str, Any]) -> Goal:
    alone = results.get("encoder_alone") or {}
    rates = alone.get("docs_per_s") or []
    ratio = results.get("index_to_encoder")
    shown = None
    if ratio is not None and rates:
        shown = (
            f"{_number(ratio)} (index {results.get('index_docs_per_s')} docs/s; encoder alone "
            f"{' / '.join(_number(r) for r in rates)} docs/s"
            f"{' before / after' if len(rates) > 1 else ''})"
        )
    return Goal("indexing end to end / encoder alone (docs/s)", ratio, 0.9, False, shown=shown)


def _wall_goal(results: dict[str, Any]) -> Goal:
    steps = results.get("step_seconds") or {}
    total = round(sum(steps.values()), 1) if steps else None
    plan = results.get("plan") or {}
    missing = []
    if plan:
        if not set(FULL_SCALE) <= set(plan.get("scale", [])):
            missing.append(
                "scale rows "
                + ", ".join(f"{s:,}" for s in FULL_SCALE if s not in plan.get("scale", []))
            )
        if not plan.get("peers"):
            missing.append("peers")
        if not plan.get("quality"):
            missing.append("quality")
    elif results.get("quick"):
        missing.append("quick suite")
    million = lookup(results, "scale@1000000")
    notes = []
    if "finished" not in results:
        notes.append("run not finished: the steps so far")
    if missing:
        notes.append("partial suite, not comparable: without " + ", ".join(missing))
    if million is not None:
        first = million.get("first_build_s")
        if million.get("cached"):
            notes.append(f"1M build cached (first build {first} s)" if first else "1M build cached")
        else:
            notes.append(f"1M build not cached: built in this run ({million.get('build_s')} s)")
    return Goal(
        "full bench wall time, sum of step seconds (s)",
        total,
        WALL_GOAL_S,
        True,
        note="; ".join(notes),
    )


def _gpu_goal(results: dict[str, Any]) -> Goal:
    label = "GPU batch embedding throughput / sentence-transformers float16, same GPU"
    gpu = results.get("gpu_encode")
    if not gpu:
        return Goal(label, None, 1.0, False)
    if not gpu.get("measured"):
        return Goal(label, None, 1.0, False, unmeasured=f"not measured ({gpu.get('reason')})")
    rates = gpu["docs_per_s"]
    shown = (
        f"{_number(gpu['vs_sentence_transformers_float16'])} ({gpu['device']}: ours "
        f"{rates[gpu['best']]} docs/s ({gpu['best']}), sentence-transformers float16 "
        f"{rates['sentence_transformers_float16']} docs/s)"
    )
    return Goal(label, gpu["vs_sentence_transformers_float16"], 1.0, False, shown=shown)


def _goal_rows(results: dict[str, Any]) -> list[str]:
    rows = ["| goal | measured | target | status |", "|---|---|---|---|"]
    return rows + [goal.row() for goal in goals(results)]


SCALE_CORPORA = {
    None: "real texts repeated, distinct ids",  # results from before bigram texts
    "bigram": "real 10k + distinct texts sampled from a word bigram model of WordNet, SciFact "
    "and climate-fever; vectors: a real one plus noise",
}


def _scale_rows(results: dict[str, Any]) -> list[str]:
    rows = [
        "| docs | corpus | e2e p50 / p95 / p99 ms | match p50 ms | qps (8 clients) "
        "| server RSS MB (incl. Milvus Lite) | MongoDB-wire RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results.get("scale", []):
        kind = "real texts" if not row["synthetic"] else SCALE_CORPORA.get(row.get("texts"), "")
        ms = row["search_ms"]
        rows.append(
            f"| {row['docs']:,} | {kind} | {ms['p50']} / {ms['p95']} / {ms['p99']} | "
            f"{row['match_p50_ms']} | {row['qps']} | {row['server_rss_mb']} | "
            f"{row.get('mongo_rss_mb')} |"
        )
    return rows


def _in_process_rows(in_process: dict[str, Any]) -> list[str]:
    rows = []
    for kind, label in (("dense", "dense only"), ("default", "served default")):
        figures = in_process.get(kind)
        if not figures:
            continue
        stages = figures.get("stage_p50_ms", {})
        split = ", ".join(f"{k} {v}" for k, v in stages.items())
        if figures.get("outside_stages_p50_ms") is not None:
            split += f"; outside the stages {figures['outside_stages_p50_ms']}"
        match = (figures.get("experiments") or {}).get("match")
        rows.append(
            f"| mmsearch in-process, {label} ({match}; SearchService.search, no HTTP, "
            f"{in_process.get('queries')} queries, {in_process.get('query_threads')} threads) "
            f"| | {figures['p50_ms']} (stages p50: {split}) |"
        )
    return rows


GOAL_NOTES = (
    "How the goals are measured. In-process p50: `offline/bench/in_process.py` calls "
    "`SearchService.search` wired as the composed server wires it, top 10, the same 200 queries "
    "(5 untimed warm-ups) and thread count as txtai's workload, which times "
    "`Embeddings.search` in its process; dense only forces the dense match experiment, the served "
    "default is what the pipeline gives traffic. Index docs/s: `mmsearch index` (embedding, both "
    "stores, index build, verification) on the 10k glosses, against txtai's `index` on the same "
    "documents. Encoder alone: the encoder `mmsearch index` loads (same threads, no spinning) "
    "embedding the same documents' texts in the indexer's 1,000-text calls and 32-text batches, "
    "in its own process, before and after the index run (mean used). Wall time: the sum of the "
    "step seconds (corpus preparation aside)."
)


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    encode = results.get("encode_docs_per_s", {})
    lines = [
        f"Run {results.get('started')} on {results.get('cores')} cores; "
        f"{results.get('docs'):,} documents (WordNet glosses); "
        f"{'quick' if results.get('quick') else 'full'} suite; "
        f"scale rows: {', '.join(format(r['docs'], ',') for r in results.get('scale', []))}; "
        f"peers {'measured' if results.get('peer') else 'not measured in this run'}.",
        "",
        *_goal_rows(results),
        "",
        GOAL_NOTES,
        "",
        "| measure | value |",
        "|---|---|",
        f"| encode docs/s: ONNX / sentence-transformers (same texts, batch, threads) | "
        f"{encode.get('onnx')} / {encode.get('sentence_transformers')} "
        f"(x{results.get('encode_speedup')}) |",
        f"| single-query encode p50 ms | {results.get('encode_single_p50_ms')} |",
        f"| index docs/s (embed + both stores + index build) | {results.get('index_docs_per_s')} |",
    ]
    alone = results.get("encoder_alone")
    if alone:
        lines.append(
            f"| encoder alone docs/s (same texts, {alone.get('chunk')}-text embed calls, batch "
            f"{alone.get('batch_size')}, threads {alone.get('threads') or 'auto'}, own process) | "
            f"{' / '.join(str(r) for r in alone.get('docs_per_s', []))} |"
        )
    for name in ("preprocess", "search", "summary"):
        lines.append(
            f"| {name}: import / init / cold start to first answer (s) | "
            f"{lookup(results, f'import_s.{name}')} / {lookup(results, f'init_s.{name}')} / "
            f"{lookup(results, f'cold_start_s.{name}')} |"
        )
    ms = results.get("search_ms", {})
    stages = results.get("stage_p50_ms", {})
    qps = results.get("qps", {})
    lines += [
        f"| search over HTTP p50 / p95 / p99 ms | {ms.get('p50')} / {ms.get('p95')} / "
        f"{ms.get('p99')} |",
        "| stage p50 ms: preprocess / match / rank / summary | "
        + " / ".join(str(stages.get(s)) for s in ("preprocess", "match", "rank", "summary"))
        + " |",
        f"| sustained qps, 8 clients (p99 ms under load) | {qps.get('qps')} "
        f"({(qps.get('latency_ms') or {}).get('p99')}) |",
        f"| overhead ratio | {results.get('overhead_ratio')} |",
        "",
        *_scale_rows(results),
    ]
    peer = results.get("peer")
    if peer:
        lines += [
            "",
            "| peer (same corpus, same model) | index docs/s | query p50 ms |",
            "|---|---|---|",
        ]
        in_process = round(
            sum(stages.get(s, 0.0) for s in ("preprocess", "match", "rank", "summary")), 3
        )
        lines.append(
            f"| mmsearch (ONNX + Milvus Lite + MongoDB-wire; HTTP e2e, in-process stages) | "
            f"{results.get('index_docs_per_s')} | {ms.get('p50')} (stages {in_process}) |"
        )
        lines += _in_process_rows(results.get("in_process") or {})
        if "error" in peer:
            lines.append(f"| {peer.get('peer')} | failed: {peer['error'][:120]} | |")
        else:
            lines.append(
                f"| {peer['peer']} (in-process, {peer.get('backend')}) | "
                f"{peer['index_docs_per_s']} | {peer['query_p50_ms']} |"
            )
    if results.get("engines"):
        from offline.bench.engines import engines_table

        lines += ["", engines_table(results["engines"])]
    quality = results.get("quality")
    if quality:
        by_match = quality["by_match"]
        lines += [
            "",
            f"| quality on {quality['dataset']} ({quality['docs']:,} docs, "
            f"{quality['queries']} queries; rank: {quality['rank']}) | nDCG@10 | Recall@100 "
            "| MRR@10 |",
            "|---|---|---|---|",
            *(
                f"| {kind} | {m['ndcg@10']} | {m['recall@100']} | {m['mrr@10']} |"
                for kind, m in by_match.items()
            ),
        ]
    if quality and "search_s" in quality:
        lines += [
            "",
            f"Quality step: index {quality['index_s']} s "
            f"({'reused' if quality.get('index_cached') else 'built in this run'}; first build "
            f"{quality.get('first_index_s')} s), searches "
            + ", ".join(f"{k} {v} s" for k, v in quality["search_s"].items())
            + f"; hit ids with and without documents fetched compared on "
            f"{quality.get('verified_queries')} queries per kind: "
            + (
                "identical."
                if not quality.get("ids_differ_with_documents")
                else f"differ on {', '.join(quality['ids_differ_with_documents'][:10])}."
            ),
        ]
    if results.get("step_seconds"):
        steps = ", ".join(f"{k} {v:g} s" for k, v in results["step_seconds"].items())
        total = sum(results["step_seconds"].values())
        lines += ["", f"Time per step: {steps} (sum {total:,.1f} s)."]
    return "\n".join(lines) + "\n"
