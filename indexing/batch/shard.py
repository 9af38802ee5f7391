"""Embedding one shard into a run's own collection, with the indexer the CLI uses."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from functions.core.scenes import Scene
from indexing.batch.events import RunPlan, ShardRef, ShardResult
from indexing.batch.objects import ObjectStore
from indexing.corpus import Corpus, read_corpus
from indexing.indexer import Indexer


class ShardIndexer(Indexer):
    """The CLI's indexer, writing one shard at a time into a run's collection(s).

    MongoDB is shared by every run of a corpus while each run has its own vector collections,
    so a stored fingerprint only counts (and the document is skipped) when the document's
    vectors are already in *this* run's collections: a re-run shard embeds nothing again."""

    def index_shard(self, scene: Scene, collection: str, docs: Sequence[Any]) -> int:
        """Embed and write the shard's new or changed documents; returns how many."""
        collections = self.collections(collection)
        for name, dim in collections.items():
            self._vectors.ensure_collection(
                name,
                dim,
                scene.array_filter_fields,
                scene.scalar_filter_fields,
                scene.lexical_fields,
            )
        # The shard's own ids only: every stored fingerprint, read by each of 5,000 shards of a
        # 10M corpus, is ~25 billion rows (docs/indexing-at-scale.md).
        stored = self._documents.fingerprints(scene.store, [d.id for d in docs])
        embedded = 0
        for offset in range(0, len(docs), self._batch_size):
            batch = docs[offset : offset + self._batch_size]
            ids = [d.id for d in batch]
            absent = {i for name in collections for i in self._vectors.missing_ids(name, ids)}
            # Blank fingerprints still mark the document as stored, so it is replaced, not
            # inserted twice.
            seen = {i: "" if i in absent else stored[i] for i in ids if i in stored}
            prepared = self._prepare_batch(scene, collection, batch, seen)
            embedded += self._write_batch(scene, prepared)
        return embedded


def parse_corpus(data: bytes, scene: Scene | None = None) -> Corpus:
    """Validate JSON lines held in memory (against `scene`'s declared fields), exactly as
    `mmsearch index` validates a file."""
    with tempfile.TemporaryDirectory(prefix="mmsearch-corpus-") as folder:
        path = Path(folder) / "corpus.jsonl"
        path.write_bytes(data)
        return read_corpus(path, scene)


def shard_body(docs: Sequence[Any]) -> bytes:
    """A shard as JSON lines, readable by `read_corpus` (QA or declared-scene documents)."""
    lines = (json.dumps(d.model_dump(), ensure_ascii=False) + "\n" for d in docs)
    return "".join(lines).encode("utf-8")


def index_shard_file(
    indexer: ShardIndexer, scene: Scene, collection: str, path: Path, index: int = 0
) -> ShardResult:
    """Index one shard file (the SageMaker processing job's unit of work)."""
    start = time.perf_counter()
    corpus = read_corpus(path, scene)
    if corpus.invalid:
        first = corpus.invalid[0]
        raise ValueError(f"shard {path} has invalid line {first.line}: {first.reason}")
    embedded = indexer.index_shard(scene, collection, corpus.documents)
    docs = len(corpus.documents)
    return ShardResult(
        index=index,
        docs=docs,
        embedded=embedded,
        skipped=docs - embedded,
        seconds=round(time.perf_counter() - start, 3),
    )


def embed_shard(
    plan: RunPlan, shard: ShardRef, objects: ObjectStore, indexer: ShardIndexer, scene: Scene
) -> ShardResult:
    """Fetch one shard of the run from S3 and index it (the Lambda Map's unit of work)."""
    data = objects.read(plan.bucket, shard.key)
    with tempfile.TemporaryDirectory(prefix="mmsearch-shard-") as folder:
        path = Path(folder) / "shard.jsonl"
        path.write_bytes(data)
        return index_shard_file(indexer, scene, plan.collection, path, shard.index)
