"""`mmsearch index --mode upsert` and `mmsearch delete`: writes by id that cost only their own
size, done in this process or, when a running `mmsearch serve` holds the home, through its
API (offline/remote.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.core.settings import Settings
from offline.remote import RemoteWriter, running_server

# In-process writes flush once per call: larger than the API's bound, fewer flushes.
LOCAL_BATCH = 500


@dataclass(frozen=True)
class DeltaReport:
    """What an upsert or delete run did, and where (`via`: "local" or the server's URL)."""

    scene: str
    via: str
    input: int
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    missing: int = 0
    seconds: float = 0.0


def upsert(
    settings: Settings,
    scene_name: str,
    documents: list[dict[str, Any]],
    progress: Callable[[int], None] | None = None,
) -> DeltaReport:
    """Upsert validated `documents` (dicts with unique ids) into a text scene."""
    url = running_server(settings.home)
    if url is not None:
        totals = RemoteWriter(url).upsert(scene_name, documents, progress)
        return DeltaReport(
            scene_name, url, len(documents), totals.written, totals.unchanged, 0, 0, totals.seconds
        )
    return _local(
        settings,
        scene_name,
        lambda writer, scene: _upsert_local(writer, scene, documents, progress),
    )


def delete(settings: Settings, scene_name: str, ids: list[str]) -> DeltaReport:
    """Delete `ids` (unique) from a scene."""
    url = running_server(settings.home)
    if url is not None:
        totals = RemoteWriter(url).delete(scene_name, ids)
        return DeltaReport(
            scene_name, url, len(ids), 0, 0, totals.deleted, totals.missing, totals.seconds
        )

    def run(writer: Any, scene: Any) -> DeltaReport:
        report = writer.delete(scene, ids)
        return DeltaReport(
            scene.name, "local", len(ids), 0, 0, report.deleted, len(report.missing), report.seconds
        )

    return _local(settings, scene_name, run)


def read_ids(path: Path) -> list[str]:
    """One id per line (blank lines skipped), duplicates dropped, order kept."""
    text = path.read_text(encoding="utf-8")
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def _upsert_local(
    writer: Any, scene: Any, documents: list[dict[str, Any]], progress: Any
) -> DeltaReport:
    from functions.documents.service import validate_documents

    written = unchanged = 0
    seconds = 0.0
    for start in range(0, len(documents), LOCAL_BATCH):
        batch = documents[start : start + LOCAL_BATCH]
        report = writer.upsert(scene, validate_documents(scene, batch))
        written, unchanged = written + report.written, unchanged + report.unchanged
        seconds += report.seconds
        if progress:
            progress(len(batch))
    return DeltaReport(scene.name, "local", len(documents), written, unchanged, 0, 0, seconds)


def _local(
    settings: Settings, scene_name: str, run: Callable[[Any, Any], DeltaReport]
) -> DeltaReport:
    """Open the home's stores in this process (no server holds them) and run one write."""
    from functions.core.models.text_encoder import TextEncoder
    from functions.core.scenes import get_scene
    from functions.documents.service import build_writer
    from offline.local_mongo import local_stores

    batch = settings.model_copy(update={"store_timeout_s": settings.batch_timeout_s})
    with local_stores(batch) as opened:
        encoder = TextEncoder.load(opened.resolved_model_dir, spin=False)
        writer = build_writer(opened, encoder)
        try:
            return run(writer, get_scene(scene_name))
        finally:
            writer.close()
