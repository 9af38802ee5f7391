"""Scenes: what a corpus looks like, which text is embedded and which fields can filter.

Scenes are declared in YAML (`functions/core/scenes.yaml`, or the file named by
MMSEARCH_SCENES_FILE): a new corpus needs configuration, not code. `get_scene` reads the
file named now (re-read when it changes); `QA`, `T2I` and `I2I` are the packaged scenes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from functions.core.errors import InvalidRequest, UnknownScene
from functions.core.limits import (
    DEFAULT_MAX_RESULTS,
    FILTER_MAX_VALUES,
    FILTER_VALUE_MAX_LENGTH,
    MAX_RESULTS_CEILING,
)
from functions.core.stores.analyzers import (
    DEFAULT_LANGUAGE,
    SPARSE_FIELD,
    TEXT_FIELD,
    LexicalField,
    check_language,
    is_lexical_field,
    own_lexical,
)

SCENES_FILE_ENV = "MMSEARCH_SCENES_FILE"
PACKAGED_SCENES = Path(__file__).with_name("scenes.yaml")
MAX_SCENES_BYTES = 64 * 1024

FieldType = Literal[
    "keyword", "keyword_list", "integer", "float", "boolean", "datetime", "text", "image"
]
# Types that can sit beside a vector as a Milvus scalar (or array) field.
FILTERABLE_TYPES = frozenset({"keyword", "keyword_list", "integer", "float", "boolean", "datetime"})
_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_RESERVED = frozenset({"id", "vector", "text", "sparse", "_id", "_fingerprint"})


class InvalidDocument(InvalidRequest):
    """A document does not fit its scene's declared fields; the message names the field."""

    code = "invalid_document"


class SceneConfigError(ValueError):
    """The scene configuration is invalid; the message names the scene and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SceneField(_Strict):
    """One declared document field."""

    type: FieldType
    required: bool = False
    default: Any = Field(None, description="Stored when absent (filterable fields need one).")


@dataclass(frozen=True)
class SceneDocument:
    """A document checked against its scene, in the shape the indexer writes (`id`,
    `model_dump()`)."""

    id: str
    body: dict[str, Any]

    def model_dump(self) -> dict[str, Any]:
        return dict(self.body)


class Scene(_Strict):
    """One searchable corpus and how its documents map to vectors, BM25 text and filters."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    kind: Literal["text", "image", "both"] = "text"
    query: Literal["text", "image"] = "text"  # what a request searches with
    corpus: str = Field("", pattern=r"^([a-z][a-z0-9_]{0,31})?$")
    fields: dict[str, SceneField] = Field(min_length=1)
    embed_fields: tuple[str, ...] = ()
    embed_template: str | None = None
    bm25_fields: tuple[str, ...] | None = None  # None: the embedded text
    language: str = DEFAULT_LANGUAGE  # the BM25 analyzer of every field `analyzers` omits
    analyzers: dict[str, str] = Field(default_factory=dict)  # bm25 field -> its language
    filterable: tuple[str, ...] = ()
    returned: tuple[str, ...] = ()  # () : every declared field
    max_results: int = Field(DEFAULT_MAX_RESULTS, ge=1, le=MAX_RESULTS_CEILING)

    @property
    def vector_recipe(self) -> str:
        """What a document's vectors and their stored fields are made of, besides its content
        and the model: the embedded text, the analysed texts, the filter values. Part of every
        fingerprint, so a changed embed template re-embeds (it was taken for unchanged)."""
        recipe = {
            "embed_fields": self.embed_fields,
            "embed_template": self.embed_template,
            "bm25_fields": self.bm25_fields,
            "language": self.language,
            "analyzers": dict(sorted(self.analyzers.items())),
            "filterable": self.filterable,
        }
        return json.dumps(recipe, sort_keys=True)

    @model_validator(mode="before")
    @classmethod
    def _short_field_types(cls, data: Any) -> Any:
        # `price: float` is shorthand for `price: {type: float}`.
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            fields = {
                k: {"type": v} if isinstance(v, str) else v for k, v in data["fields"].items()
            }
            data = {**data, "fields": fields}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Scene:
        for name in self.fields:
            if name in _RESERVED or is_lexical_field(name) or not _matches(name):
                raise ValueError(f"fields.{name}: reserved or not a plain name ({_NAME})")
        if not self.embed_fields and not self.embed_template:
            raise ValueError("give embed_fields or embed_template (the text that is embedded)")
        for key, names in (
            ("embed_fields", self.embed_fields),
            ("embed_template", self.template_fields),
            ("bm25_fields", self.bm25_fields or ()),
            ("filterable", self.filterable),
            ("returned", self.returned),
        ):
            for name in names:
                if name not in self.fields:
                    raise ValueError(f"{key}: {name!r} is not a declared field")
        for name in self.filterable:
            field = self.fields[name]
            if field.type not in FILTERABLE_TYPES:
                raise ValueError(f"filterable: {name!r} is {field.type}, which cannot filter")
            if field.type != "keyword_list" and field.default is not None:
                coerce_value(name, field.type, field.default)
        if self.kind == "text" and self.query == "image":
            raise ValueError("query: a text scene is searched by text")
        self._check_languages()
        return self

    def _check_languages(self) -> None:
        check_language(self.language, "language")
        for name, language in self.analyzers.items():
            check_language(language, f"analyzers.{name}")
            if name not in (self.bm25_fields or ()):
                raise ValueError(f"analyzers: {name!r} is not one of bm25_fields")

    @property
    def lexical_fields(self) -> tuple[LexicalField, ...]:
        """The analysed texts BM25 searches: the collection's main `text` (the bm25 fields in
        the scene's `language` joined, or the embedded text), then one pair per field whose
        analyzer differs (`text__<field>`, `sparse__<field>`). An English-only scene has the
        main text alone, as before languages existed."""
        if self.bm25_fields is None:
            return (LexicalField(TEXT_FIELD, SPARSE_FIELD, self.language, None),)
        main = tuple(f for f in self.bm25_fields if self.analyzer_of(f) == self.language)
        own = tuple(
            own_lexical(f, self.analyzer_of(f))
            for f in self.bm25_fields
            if self.analyzer_of(f) != self.language
        )
        return (LexicalField(TEXT_FIELD, SPARSE_FIELD, self.language, main), *own)

    @property
    def searched_lexical_fields(self) -> tuple[LexicalField, ...]:
        """The analysed texts a BM25 query scores (a main text with no field is left out)."""
        return tuple(f for f in self.lexical_fields if f.sources is None or f.sources)

    def analyzer_of(self, field: str) -> str:
        """The language a bm25 field is analysed as."""
        return self.analyzers.get(field, self.language)

    @property
    def template_fields(self) -> tuple[str, ...]:
        """Fields the embed template names."""
        import string

        names = (p[1] for p in string.Formatter().parse(self.embed_template or "") if p[1])
        return tuple(dict.fromkeys(names))

    @property
    def store(self) -> str:
        """The name of this scene's corpus in both stores."""
        return self.corpus or self.name

    @property
    def text_fields(self) -> tuple[str, ...]:
        """Fields whose text is embedded."""
        return self.embed_fields or self.template_fields

    @property
    def array_filter_fields(self) -> tuple[str, ...]:
        """Filterable keyword lists (Milvus ARRAY fields)."""
        return tuple(f for f in self.filterable if self.fields[f].type == "keyword_list")

    @property
    def scalar_filter_fields(self) -> dict[str, str]:
        """Filterable single values (Milvus scalar fields), name -> declared type."""
        return {
            f: self.fields[f].type for f in self.filterable if self.fields[f].type != "keyword_list"
        }

    @property
    def filter_types(self) -> dict[str, str]:
        """Every filterable field, name -> declared type."""
        return {f: self.fields[f].type for f in self.filterable}

    @property
    def document_fields(self) -> tuple[str, ...]:
        """Fields a hit's document may carry back."""
        return ("id", *(self.returned or tuple(self.fields)))

    def embedding_text(self, document: Mapping[str, Any]) -> str:
        """The text that represents a document in vector space."""
        if self.embed_template:
            values = {f: _as_text(document.get(f)) for f in self.template_fields}
            return self.embed_template.format_map(values).strip()
        return _joined(document, self.embed_fields)

    def bm25_text(self, document: Mapping[str, Any]) -> str:
        """The main text BM25 scores: the embedded text unless `bm25_fields` names others
        (those in the scene's `language`; each other field has a text of its own)."""
        main = self.lexical_fields[0].sources
        return self.embedding_text(document) if main is None else _joined(document, main)

    def bm25_texts(self, document: Mapping[str, Any]) -> dict[str, str]:
        """The texts of the fields analysed apart (Milvus field name -> text)."""
        return {f.text: _joined(document, f.sources or ()) for f in self.lexical_fields if f.own}

    def filter_values(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Typed fields stored beside the vector so searches can filter on them (lists of
        text for keyword lists; datetimes as epoch seconds)."""
        values: dict[str, Any] = {}
        for name in self.filterable:
            field = self.fields[name]
            value = document.get(name)
            if field.type == "keyword_list":
                values[name] = [str(v) for v in value or []]
                continue
            if value is None:
                value = field.default
            if value is None:
                raise InvalidDocument(f"{name}: required (a filterable {field.type} field)")
            values[name] = milvus_value(field.type, coerce_value(name, field.type, value))
        return values

    def validate_document(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The document with each declared field checked and typed (a keyword list given as
        one string becomes a one-element list); `InvalidDocument` names the first bad field.
        Undeclared fields are kept as they are (stored, never indexed)."""
        if not isinstance(document, Mapping):
            raise InvalidDocument("a document is a JSON object")
        raw_id = document.get("id")
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)
        if not isinstance(raw_id, str) or not 1 <= len(raw_id) <= 512:
            raise InvalidDocument("id: a string of 1 to 512 characters")
        typed: dict[str, Any] = {**document, "id": raw_id}
        for name, field in self.fields.items():
            value = document.get(name)
            if value is None:
                if field.required:
                    raise InvalidDocument(f"{name}: required")
                typed.pop(name, None)
                continue
            typed[name] = coerce_value(name, field.type, value, filterable=name in self.filterable)
        self.filter_values(typed)  # a filterable field without a value or default fails here
        if (
            self.kind == "text"
            and self.text_fields
            and not any(_as_text(typed.get(f)).strip() for f in self.text_fields)
        ):
            # An empty text embeds near everything and would rank first for unrelated queries.
            fields = "/".join(self.text_fields)
            raise InvalidDocument(f"{fields}: no text to embed (give at least one)")
        return typed

    def document(self, raw: Mapping[str, Any]) -> SceneDocument:
        """`raw` validated (`validate_document`) as the indexer takes it."""
        typed = self.validate_document(raw)
        return SceneDocument(typed["id"], typed)

    def fingerprint(self) -> str:
        """A short hash of what the vector collection must hold (filterable fields and their
        types): stored with the collection, compared before writing."""
        shape = sorted((f, self.fields[f].type) for f in self.filterable)
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def coerce_value(name: str, kind: str, value: Any, *, filterable: bool = True) -> Any:
    """`value` as the declared type (datetimes as ISO 8601 text), else `InvalidDocument`;
    filterable text values must fit a Milvus field."""
    wrong = InvalidDocument(f"{name}: expected {kind}, got {type(value).__name__}")
    if kind in ("keyword", "text", "image"):
        if not isinstance(value, str):
            raise wrong
        if filterable and kind == "keyword" and len(value) > FILTER_VALUE_MAX_LENGTH:
            raise InvalidDocument(f"{name}: at most {FILTER_VALUE_MAX_LENGTH} characters")
        return value
    if kind == "keyword_list":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise InvalidDocument(f"{name}: expected a list of strings (or one string)")
        if filterable and len(items) > FILTER_MAX_VALUES:
            raise InvalidDocument(f"{name}: at most {FILTER_MAX_VALUES} values")
        if filterable and any(len(v) > FILTER_VALUE_MAX_LENGTH for v in items):
            raise InvalidDocument(f"{name}: values of at most {FILTER_VALUE_MAX_LENGTH} characters")
        return list(items)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
            raise wrong
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise wrong
        if abs(float(value)) == float("inf"):
            raise InvalidDocument(f"{name}: must be finite")
        return float(value)
    if kind == "datetime":
        parse_datetime(name, value)
        return value
    raise wrong


def parse_datetime(name: str, value: Any) -> int:
    """ISO 8601 text (a date, or a date and time; no zone means UTC) as epoch seconds."""
    if not isinstance(value, str):
        raise InvalidDocument(f"{name}: expected an ISO 8601 datetime string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidDocument(f"{name}: {value[:40]!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def milvus_value(kind: str, value: Any) -> Any:
    """A checked value as Milvus stores it (datetimes as epoch seconds)."""
    return parse_datetime("", value) if kind == "datetime" else value


def _matches(name: str) -> bool:
    import re

    return re.match(_NAME, name) is not None


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v).strip() for v in value if str(v).strip())
    return "" if value is None else str(value).strip()


def _joined(document: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    parts = (_as_text(document.get(f)) for f in fields)
    return " ".join(p for p in parts if p)


class SceneFile(_Strict):
    scenes: dict[str, dict[str, Any]] = Field(min_length=1)


def parse_scenes(text: str, source: str = "scenes") -> dict[str, Scene]:
    """Scenes from YAML text; `SceneConfigError` names the scene and key at fault."""
    if len(text.encode("utf-8")) > MAX_SCENES_BYTES:
        raise SceneConfigError(f"{source}: larger than {MAX_SCENES_BYTES:,} bytes")
    try:
        data = yaml.safe_load(text)
        declared = SceneFile.model_validate(data).scenes
    except (yaml.YAMLError, ValidationError) as exc:
        raise SceneConfigError(f"{source}: {_first_error(exc)}") from None
    scenes: dict[str, Scene] = {}
    for name, body in declared.items():
        try:
            scenes[name] = Scene.model_validate({"name": name, **(body or {})})
        except ValidationError as exc:
            raise SceneConfigError(f"{source}: scenes.{name}: {_first_error(exc)}") from None
    return scenes


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return str(exc).splitlines()[0]


class SceneRegistry:
    """The scenes of one file, re-read when its path or modification time changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, float] | None = None
        self._scenes: dict[str, Scene] = {}

    def scenes(self, path: Path | None = None) -> dict[str, Scene]:
        """The scenes declared in `path` (default: MMSEARCH_SCENES_FILE or the packaged file)."""
        path = path or Path(os.environ.get(SCENES_FILE_ENV) or PACKAGED_SCENES)
        try:
            key = (str(path), path.stat().st_mtime)
        except OSError as exc:
            raise SceneConfigError(f"{path}: cannot read the scene configuration ({exc})") from None
        with self._lock:
            if key != self._key:
                self._scenes = parse_scenes(path.read_text(encoding="utf-8"), str(path))
                self._key = key
            return self._scenes


_REGISTRY = SceneRegistry()


def current_scenes() -> dict[str, Scene]:
    """The scenes in force now (the file named by MMSEARCH_SCENES_FILE, else the packaged)."""
    return _REGISTRY.scenes()


def get_scene(name: str) -> Scene:
    """Look up a scene by name or raise `UnknownScene`."""
    scenes = current_scenes()
    try:
        return scenes[name]
    except KeyError:
        known = ", ".join(sorted(scenes))
        raise UnknownScene(f"unknown scene {name!r}; known scenes: {known}") from None


SCENES: dict[str, Scene] = parse_scenes(
    PACKAGED_SCENES.read_text(encoding="utf-8"), str(PACKAGED_SCENES)
)
QA = SCENES["qa"]
T2I = SCENES["t2i"]
I2I = SCENES["i2i"]
IMAGE_FIELDS = T2I.document_fields
