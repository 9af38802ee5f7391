"""SageMaker processing entry point: `python -m indexing.batch.processing --scene qa
--collection NAME`, indexing every shard file SageMaker copied under the input folder with
the same code as the Lambda Map (`indexing.batch.shard`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from functions.core.models.text_encoder import DEVICES
from functions.core.stores.factory import open_document_store, open_vector_store
from indexing.batch.events import ShardResult
from indexing.batch.plan import text_scene
from indexing.batch.settings import BatchSettings, load_settings
from indexing.batch.shard import ShardIndexer, index_shard_file
from indexing.encoding import encode_batch_size, load_batch_encoder

INPUT_DIR = Path("/opt/ml/processing/input")


def process_folder(
    indexer: ShardIndexer, scene_name: str, collection: str, folder: Path
) -> list[ShardResult]:
    """Index each `*.jsonl` below `folder`, in name order; a re-run skips what is written."""
    scene = text_scene(scene_name)
    files = sorted(folder.rglob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no shard files (*.jsonl) under {folder}")
    return [index_shard_file(indexer, scene, collection, p, i) for i, p in enumerate(files)]


def open_indexer(settings: BatchSettings) -> ShardIndexer:
    """The shard indexer for the stores, model and device named by `settings`."""
    settings = settings.model_copy(update={"store_timeout_s": settings.batch_timeout_s})
    encoder = load_batch_encoder(
        settings.resolved_model_dir,
        settings.encoder_device,
        threads=settings.encoder_threads,
        float16=settings.encoder_float16,
    )
    return ShardIndexer(
        encoder,
        open_vector_store(settings),
        open_document_store(settings),
        encode_batch_size=encode_batch_size(encoder, settings.encode_batch_size),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m indexing.batch.processing")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--collection", required=True, help="the run's collection")
    parser.add_argument("--input-dir", type=Path, default=INPUT_DIR)
    parser.add_argument(
        "--device", choices=DEVICES, help="Where to embed (default: MMSEARCH_ENCODER_DEVICE)."
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.device:
        settings = settings.model_copy(update={"encoder_device": args.device})
    results = process_folder(open_indexer(settings), args.scene, args.collection, args.input_dir)
    for result in results:
        print(json.dumps(result.model_dump()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
