"""The benchmark table: results as Markdown, with each goal and how far off it is."""

from __future__ import annotations

from typing import Any

# (label, how to read it from the results, goal, True if lower is better)
GOALS: list[tuple[str, str, float, bool]] = [
    ("preprocess cold start (s)", "cold_start_s.preprocess", 1.0, True),
    ("encode speedup vs sentence-transformers", "encode_speedup", 1.3, False),
    ("warm end-to-end p50 at 100k docs (ms)", "scale@100000.search_ms.p50", 20.0, True),
    ("overhead ratio (e2e p50 / (encode p50 + match p50))", "overhead_ratio", 1.5, True),
]


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


def _goal_rows(results: dict[str, Any]) -> list[str]:
    rows = ["| goal | measured | target | status |", "|---|---|---|---|"]
    for label, path, target, lower in GOALS:
        value = lookup(results, path)
        if value is None:
            rows.append(f"| {label} | not measured in this run | {target} | — |")
            continue
        met = value <= target if lower else value >= target
        gap = (value - target) / target * 100
        status = "met" if met else f"missed by {abs(gap):.0f}%"
        rows.append(f"| {label} | {value} | {'≤' if lower else '≥'} {target} | {status} |")
    return rows


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
        "| measure | value |",
        "|---|---|",
        f"| encode docs/s: ONNX / sentence-transformers (same texts, batch, threads) | "
        f"{encode.get('onnx')} / {encode.get('sentence_transformers')} "
        f"(x{results.get('encode_speedup')}) |",
        f"| single-query encode p50 ms | {results.get('encode_single_p50_ms')} |",
        f"| index docs/s (embed + both stores + index build) | {results.get('index_docs_per_s')} |",
    ]
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
    if results.get("step_seconds"):
        steps = ", ".join(f"{k} {v:g} s" for k, v in results["step_seconds"].items())
        lines += ["", f"Time per step: {steps}."]
    return "\n".join(lines) + "\n"
