"""The txtai side of the benchmark, run inside the txtai venv (standalone: no mmsearch imports).

    python txtai_workload.py --corpus FILE.jsonl --queries FILE.txt --model PATH --json

Indexes the same text mmsearch embeds (`question + " " + answer`) with the same model, then
times queries. The last line printed is one JSON object with the measurements.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

TEXT_FIELDS = ("question", "answer")
TOP_K = 10
WARMUP_QUERIES = 5
ENCODE_BATCH = 32


def embedding_text(document: Mapping[str, Any]) -> str:
    """The text mmsearch embeds for a QA document: its non-empty parts, stripped, joined."""
    parts = (str(document.get(f) or "").strip() for f in TEXT_FIELDS)
    return " ".join(p for p in parts if p)


def read_corpus(path: Path) -> list[dict[str, Any]]:
    """The JSON-lines corpus, one document per non-blank line."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def read_queries(path: Path) -> list[str]:
    """One query per non-blank line."""
    return [q.strip() for q in path.read_text(encoding="utf-8").splitlines() if q.strip()]


def index_rows(documents: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, object) rows: txtai embeds "text" and stores the whole object, as mmsearch stores
    the document beside its vector."""
    for d in documents:
        yield str(d["id"]), {**d, "text": embedding_text(d)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="JSON lines: id, question, …")
    parser.add_argument("--queries", type=Path, required=True, help="one query per line")
    parser.add_argument("--model", type=Path, required=True, help="sentence-transformers folder")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps default")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    return parser.parse_args(argv)


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (1..99), interpolated like numpy's default."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Heavy imports here, so tests can import this module without txtai installed.
    import torch
    import txtai

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    documents = read_corpus(args.corpus)
    queries = read_queries(args.queries)
    if not documents or len(queries) < 2:
        print("need at least one document and two queries", file=sys.stderr)
        return 2
    # content=True: txtai keeps each document in SQLite and returns it with hits, as mmsearch
    # returns the stored document. method="transformers" pools as 1_Pooling/config.json says
    # (mean) and normalizes; maxlength=True truncates at sentence_bert_config's max_seq_length
    # (256), as mmsearch's tokenizer does, instead of the tokenizer's 512.
    embeddings = txtai.Embeddings(
        path=str(args.model),
        method="transformers",
        maxlength=True,
        content=True,
        encodebatch=ENCODE_BATCH,
    )
    started = time.perf_counter()
    embeddings.index(index_rows(documents))
    index_s = time.perf_counter() - started
    for q in queries[:WARMUP_QUERIES]:
        embeddings.search(q, TOP_K)
    latencies_ms = []
    for q in queries:
        started = time.perf_counter()
        embeddings.search(q, TOP_K)
        latencies_ms.append((time.perf_counter() - started) * 1000)
    result = {
        "peer": f"txtai {version('txtai')}",
        "index_docs_per_s": round(len(documents) / index_s, 1),
        "index_s": round(index_s, 2),
        "docs": len(documents),
        "query_p50_ms": round(percentile(latencies_ms, 50), 2),
        "query_p95_ms": round(percentile(latencies_ms, 95), 2),
        "queries": len(latencies_ms),
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "backend": str(embeddings.config.get("backend", "faiss")),
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
