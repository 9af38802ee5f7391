"""Reading corpora: JSON lines of QA documents, or BEIR folders, validated with line numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.core.limits import FILTER_MAX_VALUES, FILTER_VALUE_MAX_LENGTH, ID_MAX_LENGTH
from functions.core.scenes import InvalidDocument, Scene, SceneDocument


class QADocument(BaseModel):
    """One document of the `qa` scene."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=ID_MAX_LENGTH)
    question: str = ""
    answer: str = ""
    category: list[str] = Field(default_factory=list, max_length=FILTER_MAX_VALUES)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("category", mode="before")
    @classmethod
    def _one_category_as_list(cls, value: Any) -> Any:
        # `"category": "science"` is a common shape for a single keyword.
        return [value] if isinstance(value, str) else value

    @field_validator("category")
    @classmethod
    def _short_categories(cls, value: list[str]) -> list[str]:
        return short_filter_values(value, "categories")


def scene_document(scene: Scene, raw: Any) -> SceneDocument:
    """`raw` checked against the scene's declared fields (`InvalidDocument` names the bad
    one), absent text fields as "" and keyword lists as [] (as QADocument always stored them,
    so fingerprints, and therefore re-runs, agree with corpora indexed before)."""
    document = scene.document(raw)
    for name, field in scene.fields.items():
        if name not in document.body and field.type in ("text", "keyword_list"):
            document.body[name] = "" if field.type == "text" else []
    return document


def short_filter_values(values: list[str], what: str) -> list[str]:
    """`values` if each fits a Milvus filter field, else a ValueError naming `what`."""
    if any(len(v) > FILTER_VALUE_MAX_LENGTH for v in values):
        raise ValueError(f"{what} are limited to {FILTER_VALUE_MAX_LENGTH} characters")
    return values


@dataclass(frozen=True)
class InvalidRecord:
    """A line that could not be indexed, and why."""

    line: int
    reason: str


@dataclass
class Corpus:
    """Valid documents in input order, plus the lines that were refused."""

    documents: list[Any]  # QADocument, or SceneDocument when read for a declared scene
    invalid: list[InvalidRecord]


def corpus_file(path: Path) -> Path:
    """The JSON-lines file behind `path`: the file itself, or a BEIR folder's corpus.jsonl."""
    if path.is_dir():
        candidate = path / "corpus.jsonl"
        if not candidate.exists():
            raise FileNotFoundError(f"{path} is a folder without corpus.jsonl (BEIR format)")
        return candidate
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return path


def _from_beir(raw: dict[str, Any]) -> dict[str, Any]:
    # BEIR: {_id, title, text}; the title plays the question's part, the text the answer's.
    if "_id" not in raw:
        return raw
    return {"id": raw["_id"], "question": raw.get("title") or "", "answer": raw.get("text") or ""}


def iter_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | InvalidRecord]]:
    """(line number, raw record or the reason it is unreadable) for each non-blank line."""
    with corpus_file(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, InvalidRecord(number, f"not JSON: {exc.msg}")
                continue
            if not isinstance(raw, dict):
                yield number, InvalidRecord(number, "not a JSON object")
                continue
            yield number, _from_beir(raw)


def read_corpus(path: Path, scene: Scene | None = None) -> Corpus:
    """Validate every line (against `scene`'s declared fields, or as a QA document); duplicate
    ids are refused (the first occurrence is kept)."""
    documents: list[Any] = []
    invalid: list[InvalidRecord] = []
    seen: dict[str, int] = {}
    for number, raw in iter_records(path):
        if isinstance(raw, InvalidRecord):
            invalid.append(raw)
            continue
        try:
            document = (
                QADocument.model_validate(raw) if scene is None else scene_document(scene, raw)
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            invalid.append(InvalidRecord(number, f"{where}: {first['msg']}"))
            continue
        except InvalidDocument as exc:
            invalid.append(InvalidRecord(number, exc.message))
            continue
        if document.id in seen:
            invalid.append(
                InvalidRecord(number, f"duplicate id {document.id!r} (line {seen[document.id]})")
            )
            continue
        seen[document.id] = number
        documents.append(document)
    return Corpus(documents, invalid)
