"""Vectors and filterable fields: the `VectorStore` protocol and its Milvus implementation."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from functions.core.errors import IndexNotReady, InvalidRequest, StoreUnavailable

VECTOR_FIELD = "vector"
ID_MAX_LENGTH = 512
FILTER_VALUE_MAX_LENGTH = 256
FILTER_MAX_VALUES = 64


@dataclass(frozen=True)
class VectorRecord:
    """One document as the vector store sees it."""

    id: str
    vector: Sequence[float] | np.ndarray
    fields: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """One nearest neighbour: document id and cosine similarity."""

    id: str
    score: float


class VectorStore(Protocol):
    """What search and indexing need from a vector database."""

    def ensure_collection(self, collection: str, dim: int, array_fields: Sequence[str]) -> None:
        """Create the collection if absent (idempotent)."""

    def upsert(self, collection: str, records: Sequence[VectorRecord]) -> None:
        """Insert or replace records by id."""

    def build_index(self, collection: str) -> None:
        """Flush, build the ANN index if needed and load the collection for search."""

    def search(
        self, collection: str, vector: np.ndarray, limit: int, filters: Mapping[str, list[str]]
    ) -> list[Match]:
        """Nearest neighbours by cosine similarity, best first, AND-ing `filters`."""

    def count(self, collection: str) -> int:
        """Number of live records."""

    def missing_ids(self, collection: str, ids: Sequence[str]) -> list[str]:
        """The subset of `ids` the collection does not hold."""

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Remove records by id."""

    def drop(self, collection: str) -> None:
        """Remove the collection and everything in it."""


def filter_expression(filters: Mapping[str, list[str]], allowed: Sequence[str]) -> str:
    """A Milvus boolean expression for `filters`, values escaped, unknown fields refused."""
    clauses = []
    for name, values in sorted(filters.items()):
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise InvalidRequest(f"cannot filter on {name!r}; filterable fields: {known}")
        if not values or len(values) > FILTER_MAX_VALUES:
            raise InvalidRequest(f"filter {name!r} needs 1 to {FILTER_MAX_VALUES} values")
        literals = ", ".join(_string_literal(v) for v in values)
        clauses.append(f"ARRAY_CONTAINS_ANY({name}, [{literals}])")
    return " and ".join(clauses)


def _string_literal(value: str) -> str:
    if len(value) > FILTER_VALUE_MAX_LENGTH:
        raise InvalidRequest(f"filter values are limited to {FILTER_VALUE_MAX_LENGTH} characters")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidRequest("filter values must not contain control characters or surrogates")
    return _quote(value)


def _quote(value: str) -> str:
    # Milvus string literals: double quotes, backslash escapes; nothing else is special.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def auto_nlist(rows: int) -> int:
    """IVF list count sized to the corpus: about 4*sqrt(n), a power of two in [16, 4096]."""
    target = 4 * math.sqrt(max(rows, 1))
    return int(min(4096, max(16, 2 ** round(math.log2(target)))))


class MilvusVectorStore:
    """Milvus through pymilvus: Milvus Lite (a file path), a server or Zilliz Cloud (a URI)."""

    def __init__(
        self,
        uri: str,
        token: str | None = None,
        *,
        timeout_s: float = 3.0,
        index_type: str = "IVF_FLAT",
        nlist: int | None = None,
        nprobe: int = 32,
    ) -> None:
        self._uri = uri
        self._token = token
        self._timeout = timeout_s
        self._index_type = index_type
        self._nlist = nlist
        self._nprobe = nprobe
        self._client: Any = None
        self._lock = threading.Lock()
        self._array_fields: dict[str, tuple[str, ...]] = {}

    def _connect(self) -> Any:
        # Connect lazily so a process can start (and answer 503) while Milvus is down.
        with self._lock:
            if self._client is None:
                from pymilvus import MilvusClient

                try:
                    self._client = MilvusClient(
                        uri=self._uri, token=self._token or "", timeout=self._timeout
                    )
                except Exception as exc:
                    raise StoreUnavailable(f"Milvus is unreachable: {_short(exc)}") from exc
            return self._client

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        client = self._connect()
        try:
            return getattr(client, method)(*args, timeout=self._timeout, **kwargs)
        except Exception as exc:
            if "not exist" in str(exc) or "not found" in str(exc).lower():
                raise IndexNotReady(f"collection {args[0]!r} does not exist yet") from exc
            raise StoreUnavailable(f"Milvus {method} failed: {_short(exc)}") from exc

    def close(self) -> None:
        """Release the connection; pymilvus shares it among every client of the same URI."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def has_collection(self, collection: str) -> bool:
        return bool(self._call("has_collection", collection))

    def ensure_collection(self, collection: str, dim: int, array_fields: Sequence[str]) -> None:
        from pymilvus import DataType

        self._array_fields[collection] = tuple(array_fields)
        if self.has_collection(collection):
            return
        client = self._connect()
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LENGTH)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
        for name in array_fields:
            schema.add_field(
                name,
                DataType.ARRAY,
                element_type=DataType.VARCHAR,
                max_capacity=FILTER_MAX_VALUES,
                max_length=FILTER_VALUE_MAX_LENGTH,
            )
        self._call("create_collection", collection, schema=schema, consistency_level="Strong")

    def upsert(self, collection: str, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        rows = [
            {"id": r.id, VECTOR_FIELD: np.asarray(r.vector, dtype=np.float32).tolist(), **r.fields}
            for r in records
        ]
        self._call("upsert", collection, rows)

    def build_index(self, collection: str) -> None:
        self._call("flush", collection)
        if not self._call("list_indexes", collection):
            params = self._connect().prepare_index_params()
            index_params: dict[str, int] = {}
            if self._index_type == "IVF_FLAT":
                index_params["nlist"] = self._nlist or auto_nlist(self.count(collection))
            params.add_index(
                VECTOR_FIELD, index_type=self._index_type, metric_type="COSINE", params=index_params
            )
            self._call("create_index", collection, params)
        self._call("load_collection", collection)

    def search(
        self, collection: str, vector: np.ndarray, limit: int, filters: Mapping[str, list[str]]
    ) -> list[Match]:
        allowed = self._array_fields.get(collection) or self._describe_array_fields(collection)
        expression = filter_expression(filters, allowed) if filters else ""
        result = self._call(
            "search",
            collection,
            [np.asarray(vector, dtype=np.float32).tolist()],
            anns_field=VECTOR_FIELD,
            limit=limit,
            filter=expression,
            search_params={"metric_type": "COSINE", "params": {"nprobe": self._nprobe}},
        )
        return [Match(id=str(hit["id"]), score=float(hit["distance"])) for hit in result[0]]

    def _describe_array_fields(self, collection: str) -> tuple[str, ...]:
        from pymilvus import DataType

        description = self._call("describe_collection", collection)
        names = tuple(f["name"] for f in description["fields"] if f["type"] == DataType.ARRAY)
        self._array_fields[collection] = names
        return names

    def count(self, collection: str) -> int:
        return self._count(collection, "")

    def _query(self, collection: str, expression: str, field: str) -> list[dict[str, Any]]:
        rows = self._call(
            "query",
            collection,
            filter=expression,
            output_fields=[field],
            consistency_level="Strong",
        )
        return list(rows)

    def _count(self, collection: str, expression: str) -> int:
        return int(self._query(collection, expression, "count(*)")[0]["count(*)"])

    def missing_ids(self, collection: str, ids: Sequence[str]) -> list[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 1000):
            chunk = list(ids[start : start + 1000])
            expression = f"id in [{', '.join(_quote(i) for i in chunk)}]"
            # pymilvus 2.5 cannot decode an empty query result of a collection with ARRAY
            # fields, so count first and fetch ids only when the answer is partial.
            present = self._count(collection, expression)
            if present == len(chunk):
                found.update(chunk)
            elif present:
                found.update(self._query_ids(collection, expression))
        return [i for i in ids if i not in found]

    def _query_ids(self, collection: str, expression: str) -> list[str]:
        try:
            rows = self._query(collection, expression, "id")
        except StoreUnavailable as exc:
            # The same decoding bug: filtered counts can include deleted, uncompacted rows.
            if "Unsupported data type" in str(exc):
                return []
            raise
        return [str(r["id"]) for r in rows]

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 1000):
            self._call("delete", collection, ids=list(ids[start : start + 1000]))

    def drop(self, collection: str) -> None:
        if self.has_collection(collection):
            self._call("drop_collection", collection)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
