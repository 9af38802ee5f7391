"""The benchmark's corpus and queries: real WordNet glosses (the demo corpus's source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from offline.demo_corpus import ensure_demo_corpus

QUERIES = 500


def bench_corpus(work_dir: Path, docs: int) -> tuple[Path, Path, list[dict[str, Any]]]:
    """`docs` records spread evenly over all of WordNet, and queries from records left out.

    A query is the first dozen words of a held-out gloss: a description a user might type.
    """
    everything = ensure_demo_corpus(work_dir / "wordnet-all.jsonl")
    with everything.open(encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    if docs > len(records):
        raise ValueError(f"the benchmark corpus has {len(records)} real documents, not {docs}")
    step = len(records) / docs
    chosen = {int(i * step) for i in range(docs)}
    documents = [records[i] for i in sorted(chosen)]
    held_out = [r for i, r in enumerate(records) if i not in chosen]
    stride = max(1, len(held_out) // QUERIES)
    queries = [" ".join(str(r["answer"]).split(";")[0].split()[:12]) for r in held_out[::stride]]
    corpus_file = work_dir / f"corpus-{docs}.jsonl"
    corpus_file.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents))
    queries_file = work_dir / "queries.txt"
    queries_file.write_text("\n".join(q for q in queries[:QUERIES] if q) + "\n")
    return corpus_file, queries_file, documents
