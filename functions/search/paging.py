"""Pages past the first: an opaque `page_token` holding the offset and a hash of the query it
belongs to, refused for any other query, bounded by the scene's `max_results`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from functions.core.errors import InvalidRequest
from functions.core.http.schemas import SearchRequest
from functions.core.scenes import Scene
from functions.core.stores.filters import Filters


def query_hash(request: SearchRequest, filters: Filters) -> str:
    """What a page token is bound to: everything that decides the order of the hits."""
    image = hashlib.sha256((request.query_image or "").encode()).hexdigest()
    shape = [
        request.scene,
        request.query,
        image,
        request.negative_query,
        request.weights.model_dump() if request.weights else None,
        request.top_k,
        request.user_id,
        filters.canonical(),
        sorted(request.facets or []),
        request.debug.model_dump() if request.debug else None,
    ]
    return hashlib.sha256(json.dumps(shape, default=str).encode()).hexdigest()[:16]


def encode_token(offset: int, bound_to: str) -> str:
    """An opaque page token for `offset`."""
    raw = json.dumps({"o": offset, "q": bound_to}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_offset(request: SearchRequest, scene: Scene, filters: Filters) -> int:
    """The offset `request.page_token` asks for (0 without one); a token from another query,
    a malformed one, or a page past the scene's `max_results` is a 422."""
    if request.page_token is None:
        return 0
    try:
        padded = request.page_token + "=" * (-len(request.page_token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        offset, bound_to = int(data["o"]), str(data["q"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidRequest("page_token: not a token this API issued") from None
    if bound_to != query_hash(request, filters):
        raise InvalidRequest(
            "page_token: issued for another query; send the same scene, query, filters, "
            "facets and top_k as the first page"
        )
    if offset <= 0 or offset + request.top_k > scene.max_results:
        raise InvalidRequest(
            f"page_token: scene {scene.name!r} pages through its best {scene.max_results} hits"
        )
    return offset


def next_token(request: SearchRequest, scene: Scene, filters: Filters, offset: int) -> str | None:
    """The token of the page after the one at `offset`, or None past the ceiling."""
    following = offset + request.top_k
    if following + request.top_k > scene.max_results:
        return None
    return encode_token(following, query_hash(request, filters))
