"""Facets: counts per value of filterable fields over the match layer's candidates."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from functions.core.errors import InvalidRequest
from functions.core.http.schemas import FacetCount
from functions.core.scenes import Scene
from functions.core.stores.vector_store import Match

FACET_MAX_VALUES = 100  # values returned per field, most frequent first


def facet_fields(scene: Scene, requested: Sequence[str] | None) -> list[str]:
    """The requested facet fields, each filterable (stored beside the vectors), else a 422."""
    fields = list(dict.fromkeys(requested or []))
    for name in fields:
        if name not in scene.filterable:
            known = ", ".join(scene.filterable) or "none"
            raise InvalidRequest(f"facets: cannot count {name!r}; filterable fields: {known}")
    return fields


def count_facets(
    scene: Scene, candidates: Sequence[Match], fields: Sequence[str]
) -> dict[str, list[FacetCount]]:
    """Field -> [{value, count}] over `candidates` (one count per candidate and value),
    most frequent first, ties by value."""
    counts: dict[str, list[FacetCount]] = {}
    unique = list({m.id: m for m in reversed(candidates)}.values())
    for name in fields:
        kind = scene.fields[name].type
        tally: Counter[Any] = Counter()
        for match in unique:
            value = match.fields.get(name)
            values = _values(value)
            tally.update(set(_shown(kind, v) for v in values))
        ordered = sorted(tally.items(), key=lambda item: (-item[1], str(item[0])))
        counts[name] = [FacetCount(value=v, count=c) for v, c in ordered[:FACET_MAX_VALUES]]
    return counts


def _values(value: Any) -> list[Any]:
    """A stored field's values: pymilvus returns an ARRAY field as a protobuf repeated
    container, not a list."""
    if value is None:
        return []
    if isinstance(value, str | int | float | bool):
        return [value]
    return list(value)


def _shown(kind: str, value: Any) -> Any:
    if kind == "datetime":
        return datetime.fromtimestamp(int(value), UTC).isoformat().replace("+00:00", "Z")
    return value
