"""Collection aliases: the name readers use, switched in one step to a finished collection.
Read (`lite_alias_target`, which `MilvusVectorStore` resolves names through) and written
(`switch_alias`, by batch indexing and schema migration) here, in one place.

Milvus servers (and Zilliz Cloud) have native aliases. Milvus Lite 2.5.1 answers
UNIMPLEMENTED to `create_alias`, `describe_alias` and `rename_collection`, so for a Lite file
the aliases live in a one-row-per-alias collection (`LITE_ALIASES`); a one-row upsert is the
atomic switch. pymilvus is imported only when a client is opened (no torch here, ever).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from functions.core.errors import StoreUnavailable
from functions.core.limits import ID_MAX_LENGTH
from functions.core.settings import Settings

# Milvus Lite's aliases: {id: alias, target} rows (a vector too: Milvus wants one per schema).
LITE_ALIASES = "mmsearch_lite_aliases"


def lite_alias_target(client: Any, name: str) -> str:
    """The collection a Milvus Lite alias points at, or `name` itself when it is no alias."""
    if name == LITE_ALIASES or not client.has_collection(LITE_ALIASES):
        return name
    rows = client.get(LITE_ALIASES, ids=[name], output_fields=["target"])
    return str(rows[0]["target"]) if rows else name


class AliasConflict(Exception):
    """A real collection already holds the alias's name (e.g. one `mmsearch index` wrote)."""


class CollectionAliases(Protocol):
    """Where a Milvus deployment keeps its aliases."""

    # Whether an alias may share its name with a real collection (and win): then a switch
    # that replaces such a collection points first and drops after, with no gap for readers.
    shadows_collections: bool

    def target(self, alias: str) -> str | None:
        """The collection `alias` points at; None when it is no alias."""

    def point(self, alias: str, collection: str) -> None:
        """Create `alias` or move it to `collection`, atomically for readers."""

    def has_collection(self, name: str) -> bool:
        """Whether `name` is a collection (or, on servers, an alias)."""

    def drop_collection(self, name: str) -> None:
        """Drop a real collection by name."""


class NativeAliases:
    """Milvus server / Zilliz Cloud aliases through pymilvus."""

    shadows_collections = False

    def __init__(self, client: Any) -> None:
        self._client = client

    def target(self, alias: str) -> str | None:
        from pymilvus import MilvusException

        try:
            described = self._client.describe_alias(alias)
        except MilvusException as exc:
            if "not" in str(exc).lower():  # "alias not found" / "does not exist"
                return None
            raise StoreUnavailable(f"Milvus describe_alias failed: {exc}") from exc
        return str(described["collection_name"])

    def point(self, alias: str, collection: str) -> None:
        if self.target(alias) is None:
            self._client.create_alias(collection, alias)
        else:
            self._client.alter_alias(collection, alias)

    def has_collection(self, name: str) -> bool:
        return bool(self._client.has_collection(name))

    def drop_collection(self, name: str) -> None:
        self._client.drop_collection(name)


class LiteAliases:
    """Aliases of a Milvus Lite file, kept in the `LITE_ALIASES` collection."""

    shadows_collections = True  # readers resolve a name through `LITE_ALIASES` first

    def __init__(self, client: Any) -> None:
        self._client = client

    def target(self, alias: str) -> str | None:
        found = lite_alias_target(self._client, alias)
        return None if found == alias else found

    def point(self, alias: str, collection: str) -> None:
        self._ensure_table()
        row = {"id": alias, "target": collection, "vector": [0.0, 0.0]}
        self._client.upsert(LITE_ALIASES, [row])

    def has_collection(self, name: str) -> bool:
        return bool(self._client.has_collection(name))

    def drop_collection(self, name: str) -> None:
        self._client.drop_collection(name)

    def _ensure_table(self) -> None:
        from pymilvus import DataType

        if self._client.has_collection(LITE_ALIASES):
            return
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LENGTH)
        schema.add_field("target", DataType.VARCHAR, max_length=ID_MAX_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants one vector
        index = self._client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="L2")
        self._client.create_collection(
            LITE_ALIASES, schema=schema, index_params=index, consistency_level="Strong"
        )


def open_aliases(settings: Settings) -> CollectionAliases:
    """The alias keeper for the Milvus named by `settings`."""
    from functions.core.stores.milvus_client import milvus_client

    uri = settings.resolved_milvus_uri
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    client = milvus_client(uri, token, settings.batch_timeout_s)
    return LiteAliases(client) if "://" not in uri else NativeAliases(client)


@dataclass(frozen=True)
class AliasSwitch:
    """What a switch did: the collection before (dropped afterwards) and whether a real
    collection of the alias's name had to go."""

    previous: str | None
    replaced_collection: bool


def switch_alias(
    aliases: CollectionAliases,
    alias: str,
    collection: str,
    *,
    replace_collection: bool,
    settle_s: float = 0.0,
) -> AliasSwitch:
    """Point `alias` at `collection`; then, `settle_s` later (readers that cache a name's
    target let it expire), drop what it pointed at before: never before the switch, so
    readers always have a whole index. Re-running a done switch changes nothing."""
    previous = aliases.target(alias)
    replaced = previous is None and aliases.has_collection(alias)
    if replaced and not replace_collection:
        raise AliasConflict(
            f"{alias!r} is a collection, not an alias (written by `mmsearch index`?); "
            'start the run with "replace_collection": true to drop it and put an alias'
            " of that name in its place (searches fail for the moment in between)"
        )
    if replaced and not aliases.shadows_collections:
        aliases.drop_collection(alias)  # a server refuses an alias named like a collection
    if previous != collection:
        aliases.point(alias, collection)
    # What readers may still resolve to: the previous target, and on Lite the shadowed
    # collection of the alias's own name (dropped by that name, which the keeper does not
    # resolve).
    stale = [n for n in (previous, alias if replaced else None) if n and n != collection]
    if not aliases.shadows_collections:
        stale = [n for n in stale if n != alias]
    if stale and settle_s > 0:
        time.sleep(settle_s)
    for name in stale:
        if aliases.has_collection(name):
            aliases.drop_collection(name)
    return AliasSwitch(previous if previous != collection else None, replaced)
