"""Scenes: what a corpus looks like, which text is embedded and which fields can filter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.errors import UnknownScene


@dataclass(frozen=True)
class Scene:
    """One searchable corpus and how its documents map to vectors and filters."""

    name: str
    text_fields: tuple[str, ...]
    array_filter_fields: tuple[str, ...] = ()
    document_fields: tuple[str, ...] = ()

    def embedding_text(self, document: Mapping[str, Any]) -> str:
        """The text that represents a document in vector space."""
        parts = (str(document.get(f) or "").strip() for f in self.text_fields)
        return " ".join(p for p in parts if p)

    def filter_values(self, document: Mapping[str, Any]) -> dict[str, list[str]]:
        """Scalar fields stored beside the vector so searches can filter on them."""
        return {f: [str(v) for v in document.get(f) or []] for f in self.array_filter_fields}


QA = Scene(
    name="qa",
    text_fields=("question", "answer"),
    array_filter_fields=("category",),
    document_fields=("id", "question", "answer", "category"),
)

SCENES: dict[str, Scene] = {QA.name: QA}


def get_scene(name: str) -> Scene:
    """Look up a scene by name or raise `UnknownScene`."""
    try:
        return SCENES[name]
    except KeyError:
        known = ", ".join(sorted(SCENES))
        raise UnknownScene(f"unknown scene {name!r}; known scenes: {known}") from None
