"""The serving pipeline's configuration: scenes -> layers -> experiments, from one YAML file.

Each scene runs the layers qp -> match -> rank -> summary; each layer holds experiments with a
traffic `ratio` (the ratios of a layer sum to 1) and typed `params`. The file is validated by
pydantic when loaded; a mistake fails with a message naming the line it is on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from functions.core.scenes import SCENES, Scene, current_scenes

LAYERS = ("qp", "match", "rank", "summary")
TEXT_FIELD = "text"  # the scene's searchable text, stored in Milvus for BM25
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# The packaged file is ~4 KB; a bound keeps any parse (pure-Python PyYAML) short.
MAX_CONFIG_BYTES = 64 * 1024


class ConfigError(ValueError):
    """The pipeline configuration is invalid; the message names the line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QpParams(_Strict):
    """Query processing before embedding."""

    query_prefix: str = Field("", max_length=200, description="Prepended to the query text.")


class MatchParams(_Strict):
    """Candidate generation: dense ANN, BM25, or both fused."""

    kind: Literal["dense", "bm25", "hybrid"] = "dense"
    space: Literal["text", "image", "both"] = Field(
        "text",
        description="text: the text encoder's vectors (captions, for images) and BM25; "
        "image: the image space (CLIP or tiny-image); both: the two fused by RRF.",
    )
    candidates: int = Field(100, ge=1, le=16384, description="Hits per matcher before ranking.")
    nprobe: int | None = Field(None, ge=1, le=65536, description="IVF lists probed.")
    ef: int | None = Field(None, ge=1, le=32768, description="HNSW search breadth.")
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = Field(60, ge=1, le=10000, description="Reciprocal rank fusion constant.")
    dense_weight: float = Field(0.5, ge=0, le=1, description="Weighted fusion: dense share.")
    normalization: Literal["minmax", "tmm"] = Field(
        "minmax",
        description="Weighted fusion: per-query min-max, or theoretical min (cosine -1, BM25 0) "
        "to the observed max (Bruch et al. 2023).",
    )
    cjk_queries: Literal["lexical", "as_configured"] = Field(
        "lexical",
        description="A Chinese or Japanese query on a dense experiment over text, in a scene "
        "with lexical fields analysed for those languages: lexical matches BM25 over them "
        "(BM25 only when the query is all Chinese/Japanese, else hybrid), since the packaged "
        "encoder reads English; as_configured: the experiment as it is (a multilingual encoder).",
    )
    model: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        description="An extra exported model (its manifest name) that embeds the query; its "
        "vectors are in the scene's collection for that model (mmsearch index --model). "
        "None: the default model.",
    )


class RankParams(_Strict):
    """Ranking of the candidates: normalise, boost, cut, de-duplicate, diversify."""

    normalize: Literal["none", "minmax"] = "none"
    boosts: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="field -> value -> score added when a hit has it."
    )
    min_score: float | None = Field(None, description="Drop hits scoring below (after boosts).")
    dedupe_field: str | None = Field(None, description="Keep the best hit per value.")
    mmr_lambda: float | None = Field(
        None, ge=0, le=1, description="MMR trade-off (1 = relevance only); None: no MMR."
    )
    mmr_pool: int = Field(
        30, ge=1, le=1000, description="MMR re-orders the best max(pool, top_k) hits."
    )


class SummaryParams(_Strict):
    """What each hit carries back: fields, truncation and a highlighted snippet."""

    fields: tuple[str, ...] = Field(min_length=1)
    truncate: dict[str, int] = Field(default_factory=dict, description="field -> max chars.")
    snippet_field: str | None = None
    snippet_chars: int = Field(240, ge=20, le=5000)


P = TypeVar("P", QpParams, MatchParams, RankParams, SummaryParams)


class Experiment(_Strict, Generic[P]):
    ratio: float = Field(ge=0, le=1)
    params: P


class Layer(_Strict, Generic[P]):
    """Experiments of one layer; users are bucketed by SHA-256(user_id + salt)."""

    salt: str = Field(min_length=1, max_length=128)
    experiments: dict[str, Experiment[P]] = Field(min_length=1)

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> Layer[P]:
        total = sum(e.ratio for e in self.experiments.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"experiment ratios sum to {total:g}, not 1")
        return self


class SceneConfig(_Strict):
    qp: Layer[QpParams]
    match: Layer[MatchParams]
    rank: Layer[RankParams]
    summary: Layer[SummaryParams]

    def layer(self, name: str) -> Layer[Any]:
        layer: Layer[Any] = getattr(self, name)
        return layer


class PipelineConfig(_Strict):
    scenes: dict[str, SceneConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_exist(self) -> PipelineConfig:
        # Messages start with the dotted path of the offending entry (mapped to a line).
        declared = current_scenes()
        for name, scene_config in self.scenes.items():
            if name not in declared:
                if name in SCENES:
                    continue  # a packaged scene this deployment's scene file leaves out
                known = ", ".join(sorted(declared))
                raise ValueError(f"scenes.{name}: unknown scene {name!r}; known: {known}")
            _check_fields(f"scenes.{name}", declared[name], scene_config)
        return self


def _check_fields(path: str, scene: Scene, config: SceneConfig) -> None:
    for name, matching in config.match.experiments.items():
        space = matching.params.space
        where = f"{path}.match.experiments.{name}.params.space"
        if scene.kind == "text" and space != "text":
            raise ValueError(f"{where}: scene {scene.name!r} has no image space")
        if scene.query == "image" and space != "image":
            raise ValueError(f"{where}: scene {scene.name!r} searches by image: space image")
        if matching.params.model is not None and space != "text":
            raise ValueError(
                f"{path}.match.experiments.{name}.params.model: model names a text encoder, "
                "for space text only (the image space has its own model)"
            )
    stored = {*scene.array_filter_fields, TEXT_FIELD}
    for name, experiment in config.rank.experiments.items():
        params = experiment.params
        where = f"{path}.rank.experiments.{name}.params"
        for key, field in [
            *((f"boosts.{f}", f) for f in params.boosts),
            *([("dedupe_field", params.dedupe_field)] if params.dedupe_field else []),
        ]:
            if field not in stored:
                raise ValueError(
                    f"{where}.{key}: {field!r} is not stored beside the vectors "
                    f"(one of: {', '.join(sorted(stored))})"
                )
    for name, summary in config.summary.experiments.items():
        shown = summary.params
        named = [("fields", f) for f in shown.fields]
        named += [(f"truncate.{f}", f) for f in shown.truncate]
        named += [("snippet_field", shown.snippet_field)] if shown.snippet_field else []
        for key, field in named:
            if field not in scene.document_fields:
                raise ValueError(
                    f"{path}.summary.experiments.{name}.params.{key}: unknown field {field!r} "
                    f"(documents have: {', '.join(scene.document_fields)})"
                )


class _NoAliasLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """SafeLoader that refuses anchors and aliases: a 463-byte "billion laughs" document
    expands to millions of nodes; a configuration never needs them."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&, *) are not allowed", event.start_mark
            )
        node: yaml.Node | None = super().compose_node(parent, index)
        return node


def _load_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its data, parsed once."""
    size = len(text.encode("utf-8"))
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {size:,} bytes; the limit is {MAX_CONFIG_BYTES:,}")
    loader = _NoAliasLoader(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def parse_config(text: str, source: str = "pipeline config") -> PipelineConfig:
    """Validate YAML `text`; raise `ConfigError` naming the line of the first problem."""
    node, data = _load_yaml(text, source)
    lines = _key_lines(node) if node is not None else {}
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        location: tuple[Any, ...] = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if not location and ": " in message:  # a cross-field check names its own path
            dotted, message = message.split(": ", 1)
            location = tuple(dotted.split("."))
        line = _line_of(location, lines)
        where = ".".join(str(p) for p in location) or "top level"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}, line {line}: {where}: {message}{more}") from None


def _key_lines(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """1-based line of every mapping key and sequence item, by path."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines.update(_key_lines(value, child))
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            lines.update(_key_lines(value, (*path, index)))
    return lines


def _line_of(location: tuple[Any, ...], lines: Mapping[tuple[Any, ...], int]) -> int:
    # Pydantic locations can name a generic's internals; the longest known prefix wins.
    path = tuple(str(p) if not isinstance(p, int) else p for p in location)
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1
