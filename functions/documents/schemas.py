"""Bodies of the write API (`POST /v1/documents:batchUpsert`, `:batchDelete`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from functions.core.schemas import DocumentId
from functions.documents.limits import MAX_DELETE_IDS, MAX_UPSERT_DOCUMENTS


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpsertRequest(_Body):
    """Documents to insert or replace by `id`, each in the scene's document schema."""

    scene: str = Field("qa", min_length=1, max_length=64)
    documents: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_UPSERT_DOCUMENTS)


class UpsertResponse(BaseModel):
    scene: str
    written: int = Field(description="New or changed documents, embedded and stored.")
    unchanged: int = Field(description="Identical to what is stored: nothing written.")
    seconds: float


class DeleteRequest(_Body):
    """Ids to remove from a scene; ids not stored are listed in `missing`, not an error."""

    scene: str = Field("qa", min_length=1, max_length=64)
    ids: list[DocumentId] = Field(min_length=1, max_length=MAX_DELETE_IDS)


class DeleteResponse(BaseModel):
    scene: str
    deleted: int
    missing: list[str]
    seconds: float
