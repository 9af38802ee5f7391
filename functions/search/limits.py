"""Request limits that a deployment tunes (`MMSEARCH_MAX_*`), checked before any store call.

The request schema holds the hard ceilings (documented in the OpenAPI schema); these are the
configured limits at or below them."""

from __future__ import annotations

from dataclasses import dataclass

from functions.core.errors import InvalidRequest
from functions.core.schemas import SearchRequest
from functions.core.settings import Settings


@dataclass(frozen=True)
class SearchLimits:
    """Most hits one search may ask for, fields it may filter on, values one filter may list."""

    max_top_k: int = 100
    max_filter_fields: int = 4
    max_filter_values: int = 64

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchLimits:
        return cls(settings.max_top_k, settings.max_filter_fields, settings.max_filter_values)

    def check(self, request: SearchRequest) -> None:
        """Raise `InvalidRequest` naming the first limit `request` exceeds."""
        if request.top_k > self.max_top_k:
            raise InvalidRequest(f"top_k: at most {self.max_top_k}")
        filters = request.filters or {}
        if len(filters) > self.max_filter_fields:
            raise InvalidRequest(f"filters: at most {self.max_filter_fields} fields")
        for name, value in filters.items():
            count = 1 if isinstance(value, str) else len(value)
            if not 1 <= count <= self.max_filter_values:
                raise InvalidRequest(f"filters.{name}: give 1 to {self.max_filter_values} values")
