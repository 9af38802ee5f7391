"""Bodies of the write API (`POST /v1/documents:batchUpsert`, `:batchDelete`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from functions.core.http.schemas import DocumentId
from functions.core.limits import MAX_DELETE_IDS, MAX_UPSERT_DOCUMENTS, SCENE_NAME_MAX_LENGTH


def id_problem(value: str) -> str | None:
    """Why `value` cannot be written as an id, or None. Control characters and lone
    surrogates cannot be spelled in a Milvus filter expression, so an id holding one could be
    written but never deleted or verified: refused up front."""
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        return "ids must not contain control characters or surrogates"
    return None


def _writable(value: str) -> str:
    if problem := id_problem(value):
        raise ValueError(problem)
    return value


WritableId = Annotated[DocumentId, AfterValidator(_writable)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpsertRequest(_Body):
    """Documents to insert or replace by `id`, each in the scene's document schema."""

    scene: str = Field("qa", min_length=1, max_length=SCENE_NAME_MAX_LENGTH)
    documents: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_UPSERT_DOCUMENTS)


class UpsertResponse(BaseModel):
    scene: str
    written: int = Field(description="New or changed documents, embedded and stored.")
    unchanged: int = Field(description="Identical to what is stored: nothing written.")
    seconds: float


class DeleteRequest(_Body):
    """Ids to remove from a scene; ids not stored are listed in `missing`, not an error."""

    scene: str = Field("qa", min_length=1, max_length=SCENE_NAME_MAX_LENGTH)
    ids: list[WritableId] = Field(min_length=1, max_length=MAX_DELETE_IDS)


class DeleteResponse(BaseModel):
    scene: str
    deleted: int
    missing: list[str]
    seconds: float
