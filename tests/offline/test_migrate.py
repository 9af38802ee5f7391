"""Schema migration (issue 17): a scene that gains a filterable field is refused with a 409
naming `mmsearch migrate`; the migration builds a new versioned collection from the stored
documents while searches answer from the old one, verifies it, switches the alias and drops
the old collection; a migration that fails midway leaves the old collection serving and the
alias where it was. Real Milvus Lite, the local MongoDB-wire server and the exported model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import SCENES_FILE_ENV, get_scene
from functions.core.settings import Settings
from functions.core.stores.aliases import open_aliases
from functions.core.stores.factory import collection_name, open_document_store, open_vector_store
from functions.documents import service as writes
from indexing.migrate import MigrationError, migrate
from tests.functions.test_api import Call, front_door, search_routes
from tests.offline.test_cli import mmsearch

SCENE = """
scenes:
  shop:
    kind: text
    fields:
      title: {{type: text, required: true}}
      brand: {{type: keyword, default: none}}
      price: {{type: float, default: 0}}
    embed_template: "{embed}"
    filterable: [{filterable}]
"""
BEFORE = {"embed": "{title}", "filterable": "price"}
BRAND_FILTERABLE = {"embed": "{title}", "filterable": "price, brand"}
BRAND_EMBEDDED = {"embed": "{title} by {brand}", "filterable": "price, brand"}
BRANDS = ["Acme", "Borealis", "Cobalt"]
ITEMS = ["kettle", "toaster", "desk lamp", "backpack", "headphones", "tent", "blender", "mug"]
UPSERT = "/v1/documents:batchUpsert"


def products(count: int = 30) -> list[dict[str, Any]]:
    return [
        {
            "id": f"p{n:02d}",
            "title": f"{BRANDS[n % 3]} {ITEMS[n % len(ITEMS)]} model {n}",
            "brand": BRANDS[n % 3],
            "price": 10.0 + n,
        }
        for n in range(count)
    ]


def declare(folder: Path, monkeypatch: pytest.MonkeyPatch, version: dict[str, str]) -> Path:
    """The shop scene as `version` declares it, in a file of its own (read when named)."""
    path = folder / f"scenes_{len(list(folder.glob('scenes_*.yaml')))}.yaml"
    path.write_text(SCENE.format(**version))
    monkeypatch.setenv(SCENES_FILE_ENV, str(path))
    return path


@pytest.fixture
def shop(
    settings: Settings, encoder: TextEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Call:
    """30 products written by id under the first schema; writes and search behind one door."""
    declare(tmp_path, monkeypatch, BEFORE)
    api = front_door(
        "lambda", writes.routes(writes.build_writer(settings, encoder)) + search_routes(settings)
    )
    status, body, _ = api("POST", UPSERT, {"scene": "shop", "documents": products()})
    assert (status, body["written"]) == (200, 30), body
    return api


def search(api: Call, filters: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = {"scene": "shop", "query": "a kettle for the kitchen", "top_k": 100}
    status, body, _ = api("POST", "/v1/search", {**request, "filters": filters})
    return status, body


def hit_ids(api: Call, filters: dict[str, Any] | None = None) -> list[str]:
    status, body = search(api, filters)
    assert status == 200, body
    return [hit["id"] for hit in body["hits"]]


def run_migration(
    settings: Settings, encoder: TextEncoder, progress: Callable[[int], None] | None = None
) -> Any:
    scene = get_scene("shop")
    return migrate(
        scene,
        collection_name(settings, scene),
        encoder=encoder,
        vectors=open_vector_store(settings),
        documents=open_document_store(settings),
        aliases=open_aliases(settings),
        batch_size=10,
        progress=progress,
        settle_s=1.2,  # past the search service's 1 s cache of alias targets
    )


def test_a_new_filterable_field_is_refused_then_migrated_while_search_answers(
    shop: Call,
    settings: Settings,
    encoder: TextEncoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = hit_ids(shop)
    assert sorted(before) == sorted(p["id"] for p in products())
    declare(tmp_path, monkeypatch, BRAND_FILTERABLE)
    changed = {**products()[0], "title": "Acme kettle, new edition"}
    status, body, _ = shop("POST", UPSERT, {"scene": "shop", "documents": [changed]})
    assert status == 409 and body["error"]["code"] == "schema_mismatch", body
    assert "mmsearch migrate --scene shop" in body["error"]["message"]
    status, body = search(shop, {"brand": "Acme"})
    assert status == 409 and "mmsearch migrate --scene" in body["error"]["message"], body

    during: list[list[str]] = []
    report = run_migration(settings, encoder, lambda _: during.append(hit_ids(shop)))

    alias = collection_name(settings, get_scene("shop"))
    assert (report.previous, report.collection) == (alias, f"{alias}__v1")
    assert (report.documents, report.copied, report.embedded) == (30, 30, 0)
    assert len(during) == 3 and all(sorted(found) == sorted(before) for found in during)
    aliases = open_aliases(settings)
    assert aliases.target(alias) == f"{alias}__v1"
    vectors = open_vector_store(settings)
    assert vectors.count(f"{alias}__v1") == 30
    assert open_document_store(settings).count("shop") == 30
    after = hit_ids(shop)
    assert sorted(after) == sorted(before) and len(set(after)) == len(after) == 30
    acme = hit_ids(shop, {"brand": "Acme"})
    assert sorted(acme) == sorted(p["id"] for p in products() if p["brand"] == "Acme")
    status, body, _ = shop("POST", UPSERT, {"scene": "shop", "documents": [changed]})
    assert (status, body["written"]) == (200, 1), body
    assert len(hit_ids(shop)) == 30


def test_a_changed_embedded_text_is_embedded_again_into_the_next_version(
    shop: Call,
    settings: Settings,
    encoder: TextEncoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    declare(tmp_path, monkeypatch, BRAND_FILTERABLE)
    run_migration(settings, encoder)
    declare(tmp_path, monkeypatch, BRAND_EMBEDDED)
    report = run_migration(settings, encoder)
    alias = collection_name(settings, get_scene("shop"))
    assert (report.previous, report.collection) == (f"{alias}__v1", f"{alias}__v2")
    assert (report.copied, report.embedded) == (0, 30)
    vectors = open_vector_store(settings)
    assert not vectors.has_collection(f"{alias}__v1")
    assert open_aliases(settings).target(alias) == f"{alias}__v2"
    assert len(hit_ids(shop, {"brand": "Cobalt"})) == 10


def test_a_migration_failing_midway_leaves_the_old_collection_serving_and_the_alias(
    shop: Call,
    settings: Settings,
    encoder: TextEncoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = hit_ids(shop)
    declare(tmp_path, monkeypatch, BRAND_FILTERABLE)
    alias = collection_name(settings, get_scene("shop"))
    batches = []

    def fail_on_the_second_batch(size: int) -> None:
        batches.append(size)
        if len(batches) == 2:
            raise RuntimeError("injected: the store went away mid-copy")

    with pytest.raises(MigrationError, match="keeps serving") as failed:
        run_migration(settings, encoder, fail_on_the_second_batch)
    assert "injected" in str(failed.value)
    aliases, vectors = open_aliases(settings), open_vector_store(settings)
    assert aliases.target(alias) is None  # still the collection `mmsearch index` wrote
    assert vectors.has_collection(alias) and vectors.count(alias) == 30
    assert not vectors.has_collection(f"{alias}__v1")
    assert sorted(hit_ids(shop)) == sorted(before)
    assert open_document_store(settings).count("shop") == 30
    # A second try (the cause gone) completes.
    assert run_migration(settings, encoder).collection == f"{alias}__v1"
    assert sorted(hit_ids(shop)) == sorted(before)


def test_the_cli_refuses_the_upsert_naming_migrate_then_migrates(
    tmp_path: Path, model_dir: Path
) -> None:
    import os

    env = {
        **os.environ,
        "MMSEARCH_HOME": str(tmp_path / "home"),
        "MMSEARCH_MODEL_DIR": str(model_dir),
    }
    corpus = tmp_path / "shop.jsonl"
    corpus.write_text("".join(json.dumps(p) + "\n" for p in products(12)))
    scenes = tmp_path / "scenes.yaml"
    scenes.write_text(SCENE.format(**BEFORE))
    env[SCENES_FILE_ENV] = str(scenes)
    indexed = mmsearch(env, "index", "--input", str(corpus), "--scene", "shop")
    assert indexed.returncode == 0, indexed.stderr
    scenes.write_text(SCENE.format(**BRAND_FILTERABLE))
    refused = mmsearch(env, "index", "--input", str(corpus), "--scene", "shop", "--mode", "upsert")
    assert refused.returncode == 2, refused.stderr
    assert "mmsearch migrate --scene shop" in " ".join(refused.stderr.split())
    migrated = mmsearch(env, "migrate", "--scene", "shop", "--json")
    assert migrated.returncode == 0, migrated.stderr
    report = json.loads(migrated.stdout.strip().splitlines()[-1])
    assert (report["documents"], report["copied"], report["embedded"]) == (12, 12, 0)
    again = mmsearch(env, "index", "--input", str(corpus), "--scene", "shop", "--mode", "upsert")
    assert again.returncode == 0, again.stderr
