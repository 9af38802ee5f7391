"""Vectors and filterable fields: the `VectorStore` protocol and its Milvus implementation."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from functions.core.errors import IndexNotReady, InvalidRequest, StoreUnavailable
from functions.core.retries import RetryPolicy

VECTOR_FIELD = "vector"
TEXT_FIELD = "text"  # the searchable text; Milvus derives the BM25 sparse vector from it
SPARSE_FIELD = "sparse"
TEXT_MAX_BYTES = 65_535
# English-leaning analysis for BM25: words, lower-cased, stemmed, stop words removed.
ANALYZER = {
    "tokenizer": "standard",
    "filter": [
        "lowercase",
        {"type": "stemmer", "language": "english"},
        {"type": "stop", "stop_words": ["_english_"]},
    ],
}
ID_MAX_LENGTH = 512
FILTER_VALUE_MAX_LENGTH = 256
FILTER_MAX_VALUES = 64
# Milvus Lite 2.5 answers UNIMPLEMENTED to aliases (and renames), so batch indexing
# (indexing/batch/aliases.py) keeps a Lite file's aliases in this collection: {id: alias, target}.
LITE_ALIASES = "mmsearch_lite_aliases"
# Calls that change nothing, so a failed one is safely retried.
READS = frozenset(
    {"search", "hybrid_search", "get", "query", "has_collection", "describe_collection"}
)


@dataclass(frozen=True)
class VectorRecord:
    """One document as the vector store sees it."""

    id: str
    vector: Sequence[float] | np.ndarray
    fields: Mapping[str, list[str]] = field(default_factory=dict)
    text: str = ""


@dataclass(frozen=True)
class Match:
    """One hit: document id, the matcher's score (cosine, or BM25), and any stored fields
    asked for (`vector` included when asked)."""

    id: str
    score: float
    fields: Mapping[str, Any] = field(default_factory=dict)


class VectorStore(Protocol):
    """What search and indexing need from a vector database."""

    def has_collection(self, collection: str) -> bool:
        """Whether the collection exists."""

    def ensure_collection(self, collection: str, dim: int, array_fields: Sequence[str]) -> None:
        """Create the collection if absent (idempotent)."""

    def upsert(self, collection: str, records: Sequence[VectorRecord]) -> None:
        """Insert or replace records by id."""

    def build_index(self, collection: str) -> None:
        """Flush, build the ANN index if needed and load the collection for search."""

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        limit: int,
        filters: Mapping[str, list[str]],
        *,
        nprobe: int | None = None,
        ef: int | None = None,
        output_fields: Sequence[str] = (),
    ) -> list[Match]:
        """Nearest neighbours by cosine similarity, best first, AND-ing `filters`."""

    def search_text(
        self,
        collection: str,
        text: str,
        limit: int,
        filters: Mapping[str, list[str]],
        *,
        output_fields: Sequence[str] = (),
    ) -> list[Match]:
        """BM25 over the stored text, best first, AND-ing `filters`."""

    def search_hybrid(
        self,
        collection: str,
        vector: np.ndarray,
        text: str,
        limit: int,
        filters: Mapping[str, list[str]],
        *,
        candidates: int,
        rrf_k: int = 60,
        nprobe: int | None = None,
        output_fields: Sequence[str] = (),
    ) -> list[Match]:
        """Dense and BM25 fused by reciprocal rank fusion in the store, in one call."""

    def fetch_fields(
        self, collection: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Stored fields (e.g. `vector`) of `ids`; absent ids are left out."""

    def schema_current(self, collection: str, dim: int | None = None) -> bool:
        """Whether an existing collection has every field this version writes (and vectors
        of `dim` dimensions, when given)."""

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
        retries: int = 2,
        retry_backoff_s: float = 0.1,
        index_type: str = "IVF_FLAT",
        nlist: int | None = None,
        nprobe: int = 32,
        alias_ttl_s: float = 1.0,
    ) -> None:
        self._uri = uri
        self._token = token
        self._timeout = timeout_s
        self._reads = RetryPolicy(retries, retry_backoff_s, timeout_s)
        self._index_type = index_type
        self._nlist = nlist
        self._nprobe = nprobe
        self._client: Any = None
        self._lock = threading.Lock()
        self._array_fields: dict[str, tuple[str, ...]] = {}
        # Milvus Lite only (a file path): resolving a name costs ~2 ms, so it is kept a moment.
        self._lite = "://" not in uri
        self._alias_ttl_s = alias_ttl_s
        self._targets: dict[str, tuple[str, float]] = {}

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
        if method in READS:
            return self._reads.run(lambda left: self._attempt(method, left, args, kwargs))
        return self._attempt(method, self._timeout, args, kwargs)

    def _attempt(self, method: str, timeout: float, args: Any, kwargs: Any) -> Any:
        client = self._connect()
        if self._lite and args:
            args = (self._lite_target(client, args[0]), *args[1:])
        try:
            # retry_times=0: pymilvus' own retries (75 by default) would outlast the timeout.
            return getattr(client, method)(*args, timeout=timeout, retry_times=0, **kwargs)
        except Exception as exc:
            if "not exist" in str(exc) or "not found" in str(exc).lower():
                raise IndexNotReady(f"collection {args[0]!r} does not exist yet") from exc
            raise StoreUnavailable(f"Milvus {method} failed: {_short(exc)}") from exc

    def _lite_target(self, client: Any, name: str) -> str:
        now = time.monotonic()
        cached = self._targets.get(name)
        if cached is None or cached[1] <= now:
            cached = (lite_alias_target(client, name), now + self._alias_ttl_s)
            self._targets[name] = cached
        return cached[0]

    def close(self) -> None:
        """Release the connection; pymilvus shares it among every client of the same URI."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def has_collection(self, collection: str) -> bool:
        return bool(self._call("has_collection", collection))

    def ensure_collection(self, collection: str, dim: int, array_fields: Sequence[str]) -> None:
        from pymilvus import DataType, Function, FunctionType

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
        schema.add_field(
            TEXT_FIELD,
            DataType.VARCHAR,
            max_length=TEXT_MAX_BYTES,
            enable_analyzer=True,
            analyzer_params=ANALYZER,
        )
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="text_bm25",
                function_type=FunctionType.BM25,
                input_field_names=[TEXT_FIELD],
                output_field_names=[SPARSE_FIELD],
            )
        )
        self._call("create_collection", collection, schema=schema, consistency_level="Strong")

    def schema_current(self, collection: str, dim: int | None = None) -> bool:
        description = self._call("describe_collection", collection)
        fields = {f["name"]: f for f in description["fields"]}
        if SPARSE_FIELD not in fields:
            return False
        stored_dim = (fields[VECTOR_FIELD].get("params") or {}).get("dim")
        return dim is None or stored_dim is None or int(stored_dim) == dim

    def upsert(self, collection: str, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        rows = [
            {
                "id": r.id,
                VECTOR_FIELD: np.asarray(r.vector, dtype=np.float32).tolist(),
                TEXT_FIELD: _clip_utf8(r.text, TEXT_MAX_BYTES),
                **r.fields,
            }
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
            params.add_index(SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            self._call("create_index", collection, params)
        self._call("load_collection", collection)

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        limit: int,
        filters: Mapping[str, list[str]],
        *,
        nprobe: int | None = None,
        ef: int | None = None,
        output_fields: Sequence[str] = (),
    ) -> list[Match]:
        params: dict[str, int] = {"nprobe": nprobe or self._nprobe}
        if ef is not None:
            params["ef"] = ef
        result = self._call(
            "search",
            collection,
            [np.asarray(vector, dtype=np.float32).tolist()],
            anns_field=VECTOR_FIELD,
            limit=limit,
            filter=self._expression(collection, filters),
            output_fields=list(output_fields),
            search_params={"metric_type": "COSINE", "params": params},
        )
        return _matches(result[0])

    def search_text(
        self,
        collection: str,
        text: str,
        limit: int,
        filters: Mapping[str, list[str]],
        *,
        output_fields: Sequence[str] = (),
    ) -> list[Match]:
        result = self._call(
            "search",
            collection,
            [text],
            anns_field=SPARSE_FIELD,
            limit=limit,
            filter=self._expression(collection, filters),
            output_fields=list(output_fields),
            search_params={"metric_type": "BM25"},
        )
        return _matches(result[0])

    def search_hybrid(
        self,
        collection: str,
        vector: np.ndarray,
        text: str,
        limit: int,
        filters: Mapping[str, list[str]],
        *,
        candidates: int,
        rrf_k: int = 60,
        nprobe: int | None = None,
        output_fields: Sequence[str] = (),
    ) -> list[Match]:
        """Dense and BM25 searches fused by reciprocal rank fusion inside Milvus: one call,
        one result list (`candidates` hits from each side, `limit` fused ones back)."""
        from pymilvus import AnnSearchRequest, RRFRanker

        expression = self._expression(collection, filters) or None
        dense = AnnSearchRequest(
            [np.asarray(vector, dtype=np.float32).tolist()],
            VECTOR_FIELD,
            {"metric_type": "COSINE", "params": {"nprobe": nprobe or self._nprobe}},
            candidates,
            expr=expression,
        )
        lexical = AnnSearchRequest(
            [text], SPARSE_FIELD, {"metric_type": "BM25"}, candidates, expr=expression
        )
        result = self._call(
            "hybrid_search",
            collection,
            [dense, lexical],
            RRFRanker(rrf_k),
            limit=limit,
            output_fields=list(output_fields),
        )
        return _matches(result[0])

    def fetch_fields(
        self, collection: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 1000):
            rows = self._call(
                "get", collection, ids=list(ids[start : start + 1000]), output_fields=list(fields)
            )
            for row in rows:
                found[str(row["id"])] = {f: row.get(f) for f in fields}
        return found

    def _expression(self, collection: str, filters: Mapping[str, list[str]]) -> str:
        if not filters:
            return ""
        allowed = self._array_fields.get(collection) or self._describe_array_fields(collection)
        return filter_expression(filters, allowed)

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


def lite_alias_target(client: Any, name: str) -> str:
    """The collection a Milvus Lite alias points at, or `name` itself when it is no alias."""
    if name == LITE_ALIASES or not client.has_collection(LITE_ALIASES):
        return name
    rows = client.get(LITE_ALIASES, ids=[name], output_fields=["target"])
    return str(rows[0]["target"]) if rows else name


def _matches(hits: Any) -> list[Match]:
    return [
        Match(id=str(hit["id"]), score=float(hit["distance"]), fields=dict(hit.get("entity") or {}))
        for hit in hits
    ]


def _clip_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def _short(exc: BaseException) -> str:
    text = str(exc)
    # gRPC's own text names addresses and internals: say what happened instead.
    if "DEADLINE_EXCEEDED" in text or "Deadline Exceeded" in text:
        return "no answer in time"
    if "UNAVAILABLE" in text:
        return "unreachable"
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
