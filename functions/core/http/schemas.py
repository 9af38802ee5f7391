"""Request and response bodies of the public API (they cross process boundaries)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

from functions.core.limits import (
    DEFAULT_MAX_RESULTS,
    FACET_FIELDS_CEILING,
    FIELD_NAME_MAX_LENGTH,
    FILTER_FIELDS_CEILING,
    FILTER_MAX_VALUES,
    FILTER_VALUE_MAX_LENGTH,
    ID_MAX_LENGTH,
    MAX_EMBED_IMAGES,
    MAX_EMBED_TEXTS,
    MAX_FORCED_EXPERIMENTS,
    MAX_GET_IDS,
    MAX_TOP_K,
    MODEL_NAME_MAX_LENGTH,
    PAGE_TOKEN_MAX_LENGTH,
    SCENE_NAME_MAX_LENGTH,
    USER_ID_MAX_LENGTH,
)

# Hard ceilings, documented in the OpenAPI schema; Settings may set lower limits.
FilterText = Annotated[str, Field(max_length=FILTER_VALUE_MAX_LENGTH)]
# Booleans first: a JSON true stays a boolean. Datetimes are ISO 8601 text.
FilterScalar = StrictBool | StrictInt | StrictFloat | FilterText
PageToken = Annotated[
    str, Field(min_length=1, max_length=PAGE_TOKEN_MAX_LENGTH, pattern=r"^[A-Za-z0-9_-]+$")
]
FieldName = Annotated[str, Field(min_length=1, max_length=FIELD_NAME_MAX_LENGTH)]
DocumentId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FilterRange(_Body):
    """A range on a number or datetime field; at least one bound."""

    gte: StrictInt | StrictFloat | FilterText | None = None
    gt: StrictInt | StrictFloat | FilterText | None = None
    lte: StrictInt | StrictFloat | FilterText | None = None
    lt: StrictInt | StrictFloat | FilterText | None = None


FilterValue = (
    FilterScalar | Annotated[list[FilterScalar], Field(max_length=FILTER_MAX_VALUES)] | FilterRange
)


class EmbedRequest(_Body):
    """Texts (or base64 images) to turn into vectors of the text or the image space."""

    texts: list[str] = Field(default_factory=list, max_length=MAX_EMBED_TEXTS)
    images: list[str] = Field(
        default_factory=list, max_length=MAX_EMBED_IMAGES, description="Base64 bytes."
    )
    space: Literal["text", "image"] = "text"
    model: str | None = Field(
        None,
        max_length=MODEL_NAME_MAX_LENGTH,
        description="Text space: the name of an extra loaded model; None: the default model.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> EmbedRequest:
        if bool(self.texts) == bool(self.images):
            raise ValueError(
                f"give either texts (1 to {MAX_EMBED_TEXTS}) or images (1 to {MAX_EMBED_IMAGES})"
            )
        if self.images and self.space != "image":
            raise ValueError("images embed only into the image space")
        if self.model is not None and self.space != "text":
            raise ValueError("model names a text encoder: use it with the text space")
        return self


class EmbedResponse(BaseModel):
    model: str
    dim: int
    vectors: list[list[float]]


class Debug(_Body):
    """Developer switches: force an experiment per layer (qp, match, rank, summary)."""

    experiments: dict[FieldName, FieldName] = Field(
        default_factory=dict, max_length=MAX_FORCED_EXPERIMENTS
    )


Weight = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class QueryWeights(_Body):
    """How much each part of a mixed query counts (image scenes); text and image not both 0."""

    text: Weight = 1.0
    image: Weight = 1.0
    negative: Weight = Field(0.5, description="How strongly negative_query pushes hits away.")

    @model_validator(mode="after")
    def _something_to_search(self) -> QueryWeights:
        if self.text == 0 and self.image == 0:
            raise ValueError("text and image cannot both weigh 0: nothing would be searched for")
        return self


class SearchRequest(_Body):
    """A query against one scene."""

    scene: str = Field("qa", min_length=1, max_length=SCENE_NAME_MAX_LENGTH)
    query: str = Field("", description="Free text; normalised before embedding.")
    query_image: str | None = Field(
        None,
        description="Base64 image bytes (scenes t2i and i2i, alone or with query): JPEG, PNG, "
        "WebP or GIF.",
    )
    negative_query: str | None = Field(
        None,
        description="Image scenes: text the hits should not look like ('like this picture, "
        "but not red'); weighed by weights.negative.",
    )
    weights: QueryWeights | None = Field(
        None,
        description="Image scenes: weights of the query's text, image and negative text. With "
        "CLIP their normalised vectors are summed into one query; otherwise the caption and "
        "pixel lists are fused by weighted reciprocal rank (see `composition`).",
    )
    top_k: int = Field(10, ge=1, le=MAX_TOP_K)
    user_id: str | None = Field(None, max_length=USER_ID_MAX_LENGTH)
    filters: dict[FieldName, FilterValue] | None = Field(
        None,
        max_length=FILTER_FIELDS_CEILING,
        description="Field -> value, any of a list of values, or a range {gte, gt, lte, lt} "
        "(numbers; datetimes as ISO 8601); AND-ed. Only the scene's filterable fields.",
    )
    facets: list[FieldName] | None = Field(
        None,
        max_length=FACET_FIELDS_CEILING,
        description="Filterable fields to count values of over the matched candidates.",
    )
    page_token: PageToken | None = Field(
        None, description="The previous response's next_page_token: the next page of hits."
    )
    debug: Debug | None = None


Span = tuple[int, int]


class Snippet(BaseModel):
    """A window of one field; `highlights` are [start, end) offsets in Unicode code points."""

    field: str | None = None
    text: str
    highlights: list[Span] = Field(default_factory=list)


class Hit(BaseModel):
    id: str
    score: float = Field(
        description="Ranking score, higher is better (its scale depends on "
        "the match and rank experiments: cosine, BM25, fused)."
    )
    relevance: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Calibrated relevance in [0, 1]: the share of hits at this raw score that "
        "were relevant in the scene's labelled sets (same match mode). Comparable across modes, "
        "unlike `score`.",
    )
    document: dict[str, Any] | None = Field(description="None when the document is missing.")
    highlights: dict[str, list[Span]] = Field(
        default_factory=dict,
        description="Field -> [start, end) code-point offsets of query terms in that value.",
    )
    snippet: Snippet | None = None


class FacetCount(BaseModel):
    value: str | int | float | bool
    count: int


class Spelling(BaseModel):
    """A "did you mean" from the corpus vocabulary; `applied` when the hits are for it."""

    suggestion: str
    applied: bool


class QueryPart(BaseModel):
    """One part of a mixed query: its weight and what it was matched against."""

    part: Literal["text", "image", "negative"]
    weight: float
    searched: str = Field(description="Where the part was matched, in words.")


class Composition(BaseModel):
    """How a mixed query was answered: one summed vector (CLIP: text and pixels share a space)
    or a weighted fusion of ranked lists (tiny-image: they do not)."""

    method: Literal["vector_sum", "rank_fusion"]
    parts: list[QueryPart]
    formula: str
    calibrated: bool = Field(
        False, description="Mixed scores have no relevance calibration: relevance is 0."
    )


class Timings(BaseModel):
    preprocess: float
    match: float
    rank: float
    summary: float
    total: float


class SearchResponse(BaseModel):
    scene: str
    hits: list[Hit]
    timings_ms: Timings
    experiments: dict[str, str] = Field(description="Layer -> the experiment that ran.")
    degraded: bool = Field(
        False,
        description="True when the documents could not be fetched and the hits come without"
        " them (only where MMSEARCH_DEGRADE_WITHOUT_DOCUMENTS allows it).",
    )
    weak_match: bool = Field(
        False,
        description="True when the best hit's relevance is below the scene's threshold: no "
        "close match, these are the nearest results.",
    )
    spelling: Spelling | None = Field(
        None, description="A spelling suggestion for the query, and whether it was applied."
    )
    next_page_token: str | None = Field(
        None, description="Send as page_token (same request otherwise) for the next page."
    )
    facets: dict[str, list[FacetCount]] | None = Field(
        None, description="Field -> value counts over the matched candidates, most first."
    )
    composition: Composition | None = Field(
        None,
        description="How a mixed query (text with an image, or a negative text) was composed; "
        "None for a plain query.",
    )


class DocumentsRequest(_Body):
    """Documents of one scene, by id."""

    scene: str = Field("qa", min_length=1, max_length=SCENE_NAME_MAX_LENGTH)
    ids: list[DocumentId] = Field(min_length=1, max_length=MAX_GET_IDS)


class DocumentsResponse(BaseModel):
    scene: str
    documents: list[dict[str, Any]]
    missing: list[str]


class SceneDescription(BaseModel):
    kind: Literal["text", "image", "both"]
    query: Literal["text", "image"]
    filterable: dict[str, str] = Field(
        default_factory=dict, description="Fields a search may filter and facet on -> type."
    )
    max_results: int = Field(
        DEFAULT_MAX_RESULTS, description="How deep pages may go (offset + top_k)."
    )
    fields: dict[str, str] = Field(default_factory=dict, description="Returned field -> type.")
    layers: dict[str, dict[str, float]] = Field(description="Layer -> experiment -> ratio.")


class ScenesResponse(BaseModel):
    """The configured scenes and their experiments (for the page's debug drawer)."""

    scenes: dict[str, SceneDescription]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
