"""Image indexing: per image, a caption vector (the text encoder, for `caption` matching and
BM25 on the caption) and an image vector (CLIP or the tiny-image descriptor, for `image`
matching), each in its own collection; the original and a thumbnail published as media; the
document in MongoDB. Idempotent and resumable exactly like text indexing (same fingerprints)."""

from __future__ import annotations

import hashlib
from typing import Any

from functions.core.models.image_space import ImageSpaceEncoder, space_identity
from functions.core.models.text_encoder import TextEncoder
from functions.core.scenes import Scene
from functions.core.stores.document_store import DocumentStore
from functions.core.stores.factory import image_collection
from functions.core.stores.vector_store import VectorRecord, VectorStore
from indexing.image_corpus import ImageDocument
from indexing.indexer import Indexer, PreparedBatch
from indexing.media import MediaStore


class ImageIndexer(Indexer):
    """Writes an image corpus: caption and image vectors, media files, documents."""

    def __init__(
        self,
        text_encoder: TextEncoder,
        image_encoder: ImageSpaceEncoder,
        vectors: VectorStore,
        documents: DocumentStore,
        media: MediaStore,
        *,
        batch_size: int = 64,
        encode_batch_size: int = 32,
    ) -> None:
        super().__init__(
            text_encoder,
            vectors,
            documents,
            batch_size=batch_size,
            encode_batch_size=encode_batch_size,
        )
        self._images = image_encoder
        self._media = media
        self._bytes: dict[str, bytes] = {}

    def collections(self, collection: str) -> dict[str, int]:
        return {collection: self._encoder.dim, image_collection(collection): self._images.dim}

    def _identity(self) -> str:
        return f"{super()._identity()}|{space_identity(self._images)}"

    def _body(self, document: ImageDocument) -> dict[str, object]:
        data = document.file.read_bytes()
        self._bytes[document.id] = data
        return {
            "id": document.id,
            "name": document.file.stem,
            "caption": document.caption,
            "captions": document.captions,
            **captions_by_language(document.captions),
            "tags": document.tags,
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def _prepare_batch(
        self, scene: Scene, collection: str, batch: Any, stored: dict[str, str]
    ) -> PreparedBatch:
        try:
            return super()._prepare_batch(scene, collection, batch, stored)
        finally:
            self._bytes.clear()  # unchanged images were read only to be fingerprinted

    def _embed(
        self, scene: Scene, collection: str, bodies: list[dict[str, object]], documents: list[Any]
    ) -> tuple[dict[str, list[VectorRecord]], list[dict[str, object]]]:
        data = [self._bytes[str(b["id"])] for b in bodies]
        texts = [caption_text(b) for b in bodies]
        captions = self._encoder.embed(texts, batch_size=self._encode_batch_size)
        pixels = self._images.embed_images(data)
        final, caption_records, image_records = [], [], []
        for row, (body, raw) in enumerate(zip(bodies, data, strict=True)):
            stored = self._media.put(raw)
            final.append(
                {
                    **body,
                    "url": stored.url,
                    "thumbnail_url": stored.thumbnail_url,
                    "width": stored.width,
                    "height": stored.height,
                }
            )
            fields, own = scene.filter_values(body), scene.bm25_texts(body)
            caption_records.append(
                VectorRecord(str(body["id"]), captions[row], fields, texts[row], own)
            )
            image_records.append(
                VectorRecord(str(body["id"]), pixels[row], fields, texts[row], own)
            )
        return {collection: caption_records, image_collection(collection): image_records}, final


def captions_by_language(captions: dict[str, str]) -> dict[str, str]:
    """The Chinese (zh_CN, zh_TW...) and Japanese captions as the image scenes' BM25 fields
    `caption_zh` and `caption_ja`, each analysed by its language (functions/core/scenes.yaml)."""
    chinese = dict.fromkeys(v.strip() for k, v in captions.items() if k.startswith("zh"))
    japanese = dict.fromkeys(v.strip() for k, v in captions.items() if k.startswith("ja"))
    return {
        "caption_zh": " ".join(filter(None, chinese)),
        "caption_ja": " ".join(filter(None, japanese)),
    }


def caption_text(body: dict[str, object]) -> str:
    """What stands for an image in the text space: its caption, else its file name."""
    caption = str(body.get("caption") or "").strip()
    return caption or str(body.get("name") or "").replace("_", " ").replace("-", " ")
