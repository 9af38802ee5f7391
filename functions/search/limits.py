"""Request limits that a deployment tunes (`MMSEARCH_MAX_*`), checked before any store call.

The request schema holds the hard ceilings (documented in the OpenAPI schema; both come from
`functions.core.limits`); these are the configured limits at or below them. Filters are
checked here once, against the scene, into the `Filters` object the match layer and the
vector store trust."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.errors import InvalidRequest
from functions.core.http.schemas import SearchRequest
from functions.core.limits import FILTER_MAX_VALUES, MAX_FILTER_FIELDS, MAX_TOP_K
from functions.core.scenes import Scene
from functions.core.settings import Settings
from functions.core.stores.filters import Filters, compile_filters


@dataclass(frozen=True)
class SearchLimits:
    """Most hits one search may ask for, fields it may filter on, values one filter may list."""

    max_top_k: int = MAX_TOP_K
    max_filter_fields: int = MAX_FILTER_FIELDS
    max_filter_values: int = FILTER_MAX_VALUES

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchLimits:
        return cls(settings.max_top_k, settings.max_filter_fields, settings.max_filter_values)

    def check(self, request: SearchRequest) -> None:
        """Raise `InvalidRequest` naming the first limit `request` exceeds."""
        if request.top_k > self.max_top_k:
            raise InvalidRequest(f"top_k: at most {self.max_top_k}")

    def filters(self, scene: Scene, filters: Mapping[str, Any] | None) -> Filters:
        """The request's filters checked against `scene` and these limits (422 naming the
        field at fault)."""
        return compile_filters(
            scene,
            filters,
            max_fields=self.max_filter_fields,
            max_values=self.max_filter_values,
        )
