"""Scenes: what a corpus looks like, which text is embedded and which fields can filter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from functions.core.errors import UnknownScene


@dataclass(frozen=True)
class Scene:
    """One searchable corpus and how its documents map to vectors and filters."""

    name: str
    text_fields: tuple[str, ...]
    array_filter_fields: tuple[str, ...] = ()
    document_fields: tuple[str, ...] = ()
    corpus: str = ""  # where the documents live; scenes searching one corpus share it
    kind: Literal["text", "image"] = "text"
    query: Literal["text", "image"] = "text"  # what a request searches with

    @property
    def store(self) -> str:
        """The name of this scene's corpus in both stores."""
        return self.corpus or self.name

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

# Images, searched by text (t2i) or by an image (i2i): one corpus, its captions in the text
# space (text encoder, BM25) and its pixels in the image space (CLIP or the tiny-image
# descriptor).
IMAGE_FIELDS = ("id", "name", "url", "thumbnail_url", "caption", "captions", "tags")
T2I = Scene(
    name="t2i",
    text_fields=("caption",),
    array_filter_fields=("tags",),
    document_fields=IMAGE_FIELDS,
    corpus="images",
    kind="image",
)
I2I = replace(T2I, name="i2i", query="image")

SCENES: dict[str, Scene] = {scene.name: scene for scene in (QA, T2I, I2I)}


def get_scene(name: str) -> Scene:
    """Look up a scene by name or raise `UnknownScene`."""
    try:
        return SCENES[name]
    except KeyError:
        known = ", ".join(sorted(SCENES))
        raise UnknownScene(f"unknown scene {name!r}; known scenes: {known}") from None
