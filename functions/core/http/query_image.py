"""A query image as it arrives in a JSON body: base64 text, bounded before it is decoded.

Shared by preprocess (`/v1/embed` images) and search (`query_image`), and free of Pillow and
the encoders, so the split search bundle decodes a query without carrying them."""

from __future__ import annotations

import base64
import binascii

from functions.core.errors import InvalidRequest, PayloadTooLarge


def decode_image(data: str, max_bytes: int) -> bytes:
    """Base64 text to image bytes; refuses what is not base64 or is too large."""
    if len(data) > max_bytes * 4 // 3 + 4:
        raise PayloadTooLarge(f"an image is limited to {max_bytes:,} bytes")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("query_image is not valid base64") from None
