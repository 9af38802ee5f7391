"""Vectors and filterable fields: the `VectorStore` protocol and its Milvus implementation."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from functions.core.errors import (
    IndexNotReady,
    SchemaMismatch,
    StoreUnavailable,
    UnsupportedByStore,
)
from functions.core.limits import FILTER_MAX_VALUES as FILTER_MAX_VALUES
from functions.core.limits import FILTER_VALUE_MAX_LENGTH as FILTER_VALUE_MAX_LENGTH
from functions.core.limits import ID_MAX_LENGTH as ID_MAX_LENGTH
from functions.core.stores.aliases import LITE_ALIASES as LITE_ALIASES
from functions.core.stores.aliases import lite_alias_target
from functions.core.stores.analyzers import (
    ENGLISH,
    SPARSE_PREFIX,
    LexicalField,
    add_lexical_fields,
    is_lexical_field,
    lexical_current,
    main_lexical,
)
from functions.core.stores.analyzers import SPARSE_FIELD as SPARSE_FIELD
from functions.core.stores.analyzers import TEXT_FIELD as TEXT_FIELD
from functions.core.stores.filters import Filters, keyword_filters, quote
from functions.core.stores.fusion import reciprocal_rank_fusion
from functions.core.stores.retries import RetryPolicy

VECTOR_FIELD = "vector"
ANALYZER = ENGLISH  # the main text's analyzer unless a scene names another language
TEXT_MAX_BYTES = 65_535
# The primary key Milvus holds: a document id with `%`, `'` and `\` percent-encoded (see
# `stored_id`), up to 4 UTF-8 bytes a character. A collection whose key is shorter was written
# before the encoding and is rebuilt by the next index run.
STORED_ID_MAX_BYTES = 4 * ID_MAX_LENGTH
# Scene field types (functions.core.scenes) as Milvus stores them; datetimes as epoch seconds.
MILVUS_TYPES = {
    "keyword_list": "ARRAY",
    "keyword": "VARCHAR",
    "integer": "INT64",
    "datetime": "INT64",
    "float": "DOUBLE",
    "boolean": "BOOL",
}
# Calls that change nothing, so a failed one is safely retried.
READS = frozenset(
    {"search", "hybrid_search", "get", "query", "has_collection", "describe_collection"}
)
# HNSW build parameters (Milvus servers and Zilliz; Milvus Lite has no HNSW).
HNSW_BUILD = {"M": 16, "efConstruction": 200}
# Milvus 2.5 derives BM25 vectors from text in the server; older servers ignore the function.
BM25_SINCE = (2, 5)
# What Milvus says when BM25 has no statistics to score with: a collection (or every
# segment's text) is empty, so its average document length is 0/0.
_EMPTY_BM25 = "Invalid sparse row: NaN or Inf"
_STORED_ESCAPES = re.compile("%(25|27|5C)")
_UNESCAPED = {"25": "%", "27": "'", "5C": "\\"}
# How Milvus says a collection is absent, or present without an index or not loaded.
_NOT_INDEXED = ("not exist", "not found", "not loaded", "metric type not match")
# Transport failures first: gRPC's resolver says "Domain name not found", which is not a
# missing collection but an unreachable store.
_UNREACHABLE = ("unavailable", "domain name", "dns", "failed to connect", "deadline exceeded")
_WITHOUT_RETRY_TIMES = frozenset({"get_collection_stats"})


@dataclass(frozen=True)
class VectorRecord:
    """One document as the vector store sees it."""

    id: str
    vector: Sequence[float] | np.ndarray
    fields: Mapping[str, Any] = field(default_factory=dict)  # Scene.filter_values
    text: str = ""
    texts: Mapping[str, str] = field(default_factory=dict)  # Scene.bm25_texts: own analysers


# Filters as checked by the request's one pass (functions.core.stores.filters), or, from code,
# {field: [keywords]} on arrays (`keyword_filters`); the store checks only its own schema.
FilterSpec = Mapping[str, list[str]] | Filters


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

    def ensure_collection(
        self,
        collection: str,
        dim: int,
        array_fields: Sequence[str],
        scalar_fields: Mapping[str, str] | None = None,
        lexical: Sequence[LexicalField] = (),
    ) -> None:
        """Create the collection if absent (idempotent); `scalar_fields` (name -> scene field
        type) sit beside the arrays; `lexical` (Scene.lexical_fields) are its analysed texts
        (default: one English text). An existing collection that cannot hold them is refused
        (`SchemaMismatch`)."""

    def upsert(self, collection: str, records: Sequence[VectorRecord]) -> None:
        """Insert or replace records by id."""

    def build_index(self, collection: str) -> None:
        """Flush, build the ANN index if needed and load the collection for search."""

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        limit: int,
        filters: FilterSpec,
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
        filters: FilterSpec,
        *,
        output_fields: Sequence[str] = (),
        sparse_field: str = SPARSE_FIELD,
    ) -> list[Match]:
        """BM25 over one stored text (its analyzer analyses `text`), best first, AND-ing
        `filters`."""

    def search_hybrid(
        self,
        collection: str,
        vector: np.ndarray,
        text: str,
        limit: int,
        filters: FilterSpec,
        *,
        candidates: int,
        rrf_k: int = 60,
        nprobe: int | None = None,
        ef: int | None = None,
        output_fields: Sequence[str] = (),
        sparse_fields: Sequence[str] = (SPARSE_FIELD,),
    ) -> list[Match]:
        """Dense and BM25 (over each of `sparse_fields`) fused by reciprocal rank fusion in
        the store, in one call."""

    def fetch_fields(
        self, collection: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Stored fields (e.g. `vector`) of `ids`; absent ids are left out."""

    def schema_current(
        self, collection: str, dim: int | None = None, lexical: Sequence[LexicalField] = ()
    ) -> bool:
        """Whether an existing collection has every field this version writes (and vectors
        of `dim` dimensions, and the analysed texts `lexical` with their analyzers, when
        given)."""

    def filter_schema(self, collection: str) -> dict[str, str]:
        """Filterable fields the collection holds: name -> Milvus type name."""

    def count(self, collection: str) -> int:
        """Number of live records."""

    def missing_ids(self, collection: str, ids: Sequence[str]) -> list[str]:
        """The subset of `ids` the collection does not hold."""

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Remove records by id."""

    def drop(self, collection: str) -> None:
        """Remove the collection and everything in it."""


_quote = quote  # the escaping lives in functions.core.stores.filters


def stored_id(document_id: str) -> str:
    """The primary key Milvus holds for `document_id`: `%`, `'` and `\\` percent-encoded,
    nothing else changed. Milvus Lite 2.5.1 splices keys into SQL unescaped on upsert (a `'`
    fails with "internal error") and into `id in ['...']` when a hybrid search fetches its
    hits (a `\\` breaks it); pymilvus' `get` and `delete` by ids quote the same way."""
    return document_id.replace("%", "%25").replace("'", "%27").replace("\\", "%5C")


def document_id(stored: str) -> str:
    """The document id behind a stored primary key (the inverse of `stored_id`)."""
    return _STORED_ESCAPES.sub(lambda m: _UNESCAPED[m.group(1)], stored)


def ids_expression(ids: Sequence[str]) -> str:
    """A filter selecting the documents `ids` by their stored keys."""
    return f"id in [{', '.join(_quote(stored_id(i)) for i in ids)}]"


class _NoBM25Statistics(Exception):
    """BM25 found no text to score: nothing can match lexically (not an outage)."""


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
        # Milvus Lite only (a file path): resolving a name costs ~2 ms, so it is kept a moment.
        self._lite = "://" not in uri
        self._alias_ttl_s = alias_ttl_s
        self._targets: dict[str, tuple[str, float]] = {}
        self._bm25: bool | None = None

    def _connect(self) -> Any:
        # Connect lazily so a process can start (and answer 503) while Milvus is down.
        if self._client is not None:  # connected: no lock (every search passes here)
            return self._client
        with self._lock:
            if self._client is None:
                from functions.core.stores.milvus_client import milvus_client

                try:
                    self._client = milvus_client(self._uri, self._token or "", self._timeout)
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
            retries = {} if method in _WITHOUT_RETRY_TIMES else {"retry_times": 0}
            return getattr(client, method)(*args, timeout=timeout, **retries, **kwargs)
        except Exception as exc:
            text = str(exc)
            if method in ("search", "hybrid_search") and _EMPTY_BM25 in text:
                raise _NoBM25Statistics from exc
            lowered = text.lower()
            if not any(sign in lowered for sign in _UNREACHABLE) and any(
                sign in lowered for sign in _NOT_INDEXED
            ):
                raise IndexNotReady(f"collection {args[0]!r} is not indexed yet") from exc
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

    def ensure_collection(
        self,
        collection: str,
        dim: int,
        array_fields: Sequence[str],
        scalar_fields: Mapping[str, str] | None = None,
        lexical: Sequence[LexicalField] = (),
    ) -> None:
        from pymilvus import DataType

        wanted = {**dict.fromkeys(array_fields, "keyword_list"), **(scalar_fields or {})}
        if self.has_collection(collection):
            self._check_holds(collection, wanted)
            if lexical and not self.schema_current(collection, lexical=lexical):
                raise SchemaMismatch(
                    f"collection {collection!r} was built for other BM25 fields or analyzers: "
                    "re-index the scene to rebuild it"
                )
            return
        client = self._connect()
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=STORED_ID_MAX_BYTES)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dim)
        for name in array_fields:
            schema.add_field(
                name,
                DataType.ARRAY,
                element_type=DataType.VARCHAR,
                max_capacity=FILTER_MAX_VALUES,
                max_length=FILTER_VALUE_MAX_LENGTH,
            )
        for name, kind in (scalar_fields or {}).items():
            extra = {"max_length": FILTER_VALUE_MAX_LENGTH} if kind == "keyword" else {}
            schema.add_field(name, getattr(DataType, MILVUS_TYPES[kind]), **extra)
        add_lexical_fields(
            schema,
            tuple(lexical) or (main_lexical(),),
            max_bytes=TEXT_MAX_BYTES,
            bm25=self.supports_bm25(),
        )
        self._create(collection, schema)

    def _create(self, collection: str, schema: Any) -> None:
        if self._lite:
            self._call("create_collection", collection, schema=schema, consistency_level="Strong")
            return
        # A server searches and queries loaded collections only, and loads indexed ones: a
        # FLAT index (nothing to train) lets a run query what it wrote before `build_index`
        # puts the real index in its place.
        self._call(
            "create_collection",
            collection,
            schema=schema,
            index_params=self._index_params("FLAT", sparse_fields=_sparse_fields(schema)),
            consistency_level="Strong",
        )

    def supports_bm25(self) -> bool:
        """Whether this Milvus derives BM25 vectors from text (Milvus Lite 2.5, servers 2.5+,
        Zilliz Cloud); asked once."""
        if self._bm25 is None:
            self._bm25 = self._lite or _version(self._server_version()) >= BM25_SINCE
        return self._bm25

    def _server_version(self) -> str:
        try:
            return str(self._connect().get_server_version(timeout=self._timeout))
        except Exception as exc:
            raise StoreUnavailable(f"Milvus get_server_version failed: {_short(exc)}") from exc

    def schema_current(
        self, collection: str, dim: int | None = None, lexical: Sequence[LexicalField] = ()
    ) -> bool:
        description = self._call("describe_collection", collection)
        fields = {f["name"]: f for f in description["fields"]}
        key_bytes = int((fields["id"].get("params") or {}).get("max_length", 0))
        if key_bytes < STORED_ID_MAX_BYTES:
            return False  # written before ids were encoded (`stored_id`)
        if SPARSE_FIELD not in fields and (TEXT_FIELD not in fields or self.supports_bm25()):
            return False
        if lexical and not lexical_current(fields, tuple(lexical)):
            return False
        stored_dim = (fields[VECTOR_FIELD].get("params") or {}).get("dim")
        return dim is None or stored_dim is None or int(stored_dim) == dim

    def upsert(self, collection: str, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        rows = [
            {
                "id": stored_id(r.id),
                VECTOR_FIELD: np.asarray(r.vector, dtype=np.float32).tolist(),
                TEXT_FIELD: _clip_utf8(r.text, TEXT_MAX_BYTES),
                **{name: _clip_utf8(text, TEXT_MAX_BYTES) for name, text in r.texts.items()},
                **r.fields,
            }
            for r in records
        ]
        self._call("upsert", collection, rows)

    def build_index(self, collection: str) -> None:
        self._call("flush", collection)
        indexes = list(self._call("list_indexes", collection))
        if indexes and not self._lite and self._vector_index_type(collection) != self._index_type:
            # The placeholder FLAT index of a new server collection (`_create`), or a changed
            # MMSEARCH_INDEX_TYPE: a server drops an index only from a released collection.
            self._call("release_collection", collection)
            self._call("drop_index", collection, VECTOR_FIELD)
            indexes = [name for name in indexes if name != VECTOR_FIELD]
        if VECTOR_FIELD not in indexes:
            params = self._index_params(self._index_type, rows=self._row_count(collection))
            if not indexes:
                fields = self._call("describe_collection", collection)["fields"]
                for name in _sparse_fields(f["name"] for f in fields):
                    params.add_index(name, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            self._call("create_index", collection, params)
        self._call("load_collection", collection)

    def _index_params(
        self, index_type: str, *, rows: int = 0, sparse_fields: Sequence[str] = ()
    ) -> Any:
        params = self._connect().prepare_index_params()
        values: dict[str, int] = {}
        if index_type == "IVF_FLAT":
            values["nlist"] = self._nlist or auto_nlist(rows)
        elif index_type == "HNSW":
            values.update(HNSW_BUILD)
        params.add_index(VECTOR_FIELD, index_type=index_type, metric_type="COSINE", params=values)
        for name in sparse_fields:
            params.add_index(name, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        return params

    def _row_count(self, collection: str) -> int:
        """Rows written (deleted ones included until compaction); needs no loaded collection."""
        stats = self._call("get_collection_stats", collection)
        return int(stats.get("row_count", 0))

    def _vector_index_type(self, collection: str) -> str:
        described = self._call("describe_index", collection, VECTOR_FIELD)
        return str((described or {}).get("index_type", ""))

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        limit: int,
        filters: FilterSpec,
        *,
        nprobe: int | None = None,
        ef: int | None = None,
        output_fields: Sequence[str] = (),
    ) -> list[Match]:
        result = self._search(
            collection,
            [np.asarray(vector, dtype=np.float32).tolist()],
            anns_field=VECTOR_FIELD,
            limit=limit,
            filter=self._expression(collection, filters),
            output_fields=list(output_fields),
            search_params={
                "metric_type": "COSINE",
                "params": self._dense_params(limit, nprobe, ef),
            },
        )
        return _matches(result[0]) if result else []

    def _dense_params(self, limit: int, nprobe: int | None, ef: int | None) -> dict[str, int]:
        params = {"nprobe": nprobe or self._nprobe}
        if ef is not None or self._index_type == "HNSW":
            params["ef"] = max(ef or 0, limit)  # HNSW refuses an ef below the hits asked for
        return params

    def _search(self, collection: str, *args: Any, method: str = "search", **kwargs: Any) -> Any:
        """A search call; an empty collection (or one not indexed yet and still empty) has no
        hits rather than an error: None."""
        try:
            return self._call(method, collection, *args, **kwargs)
        except _NoBM25Statistics:
            return None
        except IndexNotReady:
            if self.has_collection(collection) and self._row_count(collection) == 0:
                return None
            raise

    def search_text(
        self,
        collection: str,
        text: str,
        limit: int,
        filters: FilterSpec,
        *,
        output_fields: Sequence[str] = (),
        sparse_field: str = SPARSE_FIELD,
    ) -> list[Match]:
        self._need_bm25()
        result = self._search(
            collection,
            [text],
            anns_field=sparse_field,
            limit=limit,
            filter=self._expression(collection, filters),
            output_fields=list(output_fields),
            search_params={"metric_type": "BM25"},
        )
        return _matches(result[0]) if result else []

    def _need_bm25(self) -> None:
        if not self.supports_bm25():
            raise UnsupportedByStore(
                f"BM25 needs Milvus {'.'.join(map(str, BM25_SINCE))} or later; "
                "this Milvus serves dense matching only"
            )

    def search_hybrid(
        self,
        collection: str,
        vector: np.ndarray,
        text: str,
        limit: int,
        filters: FilterSpec,
        *,
        candidates: int,
        rrf_k: int = 60,
        nprobe: int | None = None,
        ef: int | None = None,
        output_fields: Sequence[str] = (),
        sparse_fields: Sequence[str] = (SPARSE_FIELD,),
    ) -> list[Match]:
        """Dense and BM25 searches fused by reciprocal rank fusion inside Milvus: one call,
        one result list (`candidates` hits from each side, `limit` fused ones back); one BM25
        search per analysed text in `sparse_fields`."""
        from pymilvus import AnnSearchRequest, RRFRanker

        self._need_bm25()
        expression = self._expression(collection, filters) or None
        dense_params = self._dense_params(candidates, nprobe, ef)
        dense = AnnSearchRequest(
            [np.asarray(vector, dtype=np.float32).tolist()],
            VECTOR_FIELD,
            {"metric_type": "COSINE", "params": dense_params},
            candidates,
            expr=expression,
        )
        lexical = [
            AnnSearchRequest([text], name, {"metric_type": "BM25"}, candidates, expr=expression)
            for name in sparse_fields
        ]
        try:
            result = self._call(
                "hybrid_search",
                collection,
                [dense, *lexical],
                RRFRanker(rrf_k),
                limit=limit,
                output_fields=list(output_fields),
            )
        except _NoBM25Statistics:
            # A text with nothing to score (an empty collection, or one analysed text empty in
            # every document, e.g. images without Chinese captions): each list apart, each
            # such text an empty list, fused as Milvus would rank them.
            dense_hits = self.search(
                collection,
                vector,
                candidates,
                filters,
                nprobe=nprobe,
                ef=ef,
                output_fields=output_fields,
            )
            lexical_hits = [
                self.search_text(
                    collection,
                    text,
                    candidates,
                    filters,
                    output_fields=output_fields,
                    sparse_field=n,
                )
                for n in sparse_fields
            ]
            return reciprocal_rank_fusion([dense_hits, *lexical_hits], rrf_k)[:limit]
        except IndexNotReady:
            if self.has_collection(collection) and self._row_count(collection) == 0:
                return []
            raise
        return _matches(result[0])

    def fetch_fields(
        self, collection: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 1000):
            # Not pymilvus' `get(ids=...)`: it quotes ids with `'` and escapes nothing.
            expression = ids_expression(ids[start : start + 1000])
            for row in self._rows(collection, expression, ["id", *fields]):
                found[document_id(str(row["id"]))] = {f: row.get(f) for f in fields}
        return found

    def _check_holds(self, collection: str, wanted: Mapping[str, str]) -> None:
        """Raise `SchemaMismatch` unless the collection stores every field of `wanted`
        (name -> scene field type) as that type."""
        held = self.filter_schema(collection)
        wrong = {n: k for n, k in wanted.items() if MILVUS_TYPES[k] != held.get(n)}
        if wrong:
            shown = ", ".join(f"{n} ({k})" for n, k in sorted(wrong.items()))
            raise SchemaMismatch(
                f"collection {collection!r} cannot hold the scene's filterable fields {shown}: "
                "it was built for another schema; `mmsearch migrate --scene <scene>` rebuilds "
                "it while searches go on (or re-index the scene in full)"
            )

    def filter_schema(self, collection: str) -> dict[str, str]:
        """Filterable fields the collection holds: name -> Milvus type name (ARRAY, DOUBLE,
        INT64, BOOL, VARCHAR)."""
        description = self._call("describe_collection", collection)
        return {
            f["name"]: getattr(f["type"], "name", str(f["type"]))
            for f in description["fields"]
            if f["name"] not in ("id", VECTOR_FIELD) and not is_lexical_field(f["name"])
        }

    def _expression(self, collection: str, filters: FilterSpec) -> str:
        if not filters:
            return ""
        if not isinstance(filters, Filters):
            filters = keyword_filters(filters)
        # Not a second check of the request: whether this collection holds the fields.
        self._check_holds(collection, filters.fields)
        return filters.expression()

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

    def _rows(
        self, collection: str, expression: str, fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        # pymilvus 2.5 cannot decode an empty query result of a collection with ARRAY fields.
        if self._count(collection, expression) == 0:
            return []
        rows = self._call(
            "query",
            collection,
            filter=expression,
            output_fields=list(fields),
            consistency_level="Strong",
        )
        return list(rows)

    def _count(self, collection: str, expression: str) -> int:
        return int(self._query(collection, expression, "count(*)")[0]["count(*)"])

    def missing_ids(self, collection: str, ids: Sequence[str]) -> list[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 1000):
            chunk = list(ids[start : start + 1000])
            expression = ids_expression(chunk)
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
        return [document_id(str(r["id"])) for r in rows]

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 1000):
            # A filter of our own: pymilvus' `delete(ids=...)` quotes with `'`, escaping nothing.
            self._call("delete", collection, filter=ids_expression(ids[start : start + 1000]))

    def drop(self, collection: str) -> None:
        if self.has_collection(collection):
            self._call("drop_collection", collection)


def _matches(hits: Any) -> list[Match]:
    return [
        Match(
            id=document_id(str(hit["id"])),
            score=float(hit["distance"]),
            fields=dict(hit.get("entity") or {}),
        )
        for hit in hits
    ]


def _sparse_fields(names: Any) -> list[str]:
    """The BM25 sparse vectors among field names (or a pymilvus schema's fields)."""
    names = [getattr(n, "name", n) for n in getattr(names, "fields", names)]
    return [n for n in names if n == SPARSE_FIELD or n.startswith(SPARSE_PREFIX)]


def _version(text: str) -> tuple[int, int]:
    """(major, minor) from a server's version text ("v2.3.5-lite", "Zilliz Cloud ...
    (Compatible with Milvus 2.5)"); unreadable text counts as current."""
    found = re.search(r"(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else (99, 0)


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
