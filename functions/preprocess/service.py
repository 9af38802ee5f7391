"""Query preprocessing: normalise, tokenise and embed."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from functions.core.errors import InvalidRequest, ModelUnavailable
from functions.core.http.query_image import decode_image
from functions.core.http.routes import Route
from functions.core.http.schemas import EmbedRequest, EmbedResponse
from functions.core.limits import MAX_BODY_BYTES
from functions.core.models.image_space import ImageSpaceEncoder, load_image_space
from functions.core.models.manifest import MANIFEST_FILE
from functions.core.models.normalize import normalize_text
from functions.core.models.text_encoder import TextEncoder
from functions.core.settings import Settings


class Preprocessor:
    """Turns raw query texts into normalised vectors with the loaded encoder, and query images
    (or texts, with CLIP) into vectors of the image space, loaded on first use."""

    def __init__(
        self,
        encoder: TextEncoder,
        *,
        max_chars: int,
        batch_size: int = 32,
        image_space: Callable[[], ImageSpaceEncoder] | None = None,
        extra_encoders: Sequence[TextEncoder] = (),
    ) -> None:
        self.encoder = encoder
        # Match experiments name these by their manifest name (A/B of a fine-tuned model).
        self.extra_encoders = {e.name: e for e in extra_encoders if e.name != encoder.name}
        self._max_chars = max_chars
        self._batch_size = batch_size
        self._image_space_loader = image_space
        self._image_space: ImageSpaceEncoder | None = None
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], model: str | None = None) -> np.ndarray:
        """(n, dim) vectors for `texts` by the default encoder, or the extra one named `model`;
        raises `InvalidRequest` for empty or over-long text."""
        encoder = self.text_encoder(model)
        clean = [normalize_text(t, self._max_chars) for t in texts]
        return encoder.embed(clean, batch_size=self._batch_size)

    def text_encoder(self, model: str | None = None) -> TextEncoder:
        """The default encoder, or the extra one named `model` (`ModelUnavailable` if none is)."""
        if model is None or model == self.encoder.name:
            return self.encoder
        if model not in self.extra_encoders:
            loaded = ", ".join([self.encoder.name, *self.extra_encoders])
            raise ModelUnavailable(
                f"model {model!r} is not loaded here (loaded: {loaded}); "
                "add its export to MMSEARCH_EXTRA_MODEL_DIRS"
            )
        return self.extra_encoders[model]

    @property
    def image_space(self) -> ImageSpaceEncoder:
        """The image-space encoder (CLIP, or the tiny-image descriptor)."""
        with self._lock:
            if self._image_space is None:
                if self._image_space_loader is None:
                    raise ModelUnavailable("no image space is configured for this function")
                self._image_space = self._image_space_loader()
            return self._image_space

    def embed_images(self, images: Sequence[bytes]) -> np.ndarray:
        """(n, dim) image-space vectors; a bad or oversized image is an `InvalidRequest`."""
        return self.image_space.embed_images(images)

    def embed_texts_for_images(self, texts: Sequence[str]) -> np.ndarray:
        """Texts into the image space: needs CLIP's text tower."""
        space = self.image_space
        if not hasattr(space, "embed_texts"):
            # Not an outage: this deployment never does it, so retrying cannot help (a 4xx).
            raise InvalidRequest(
                "matching text against image pixels needs a CLIP model "
                "(mmsearch export --kind clip); this deployment has the tiny-image descriptor"
            )
        clean = [normalize_text(t, self._max_chars) for t in texts]
        vectors: np.ndarray = space.embed_texts(clean, batch_size=self._batch_size)
        return vectors


def build_preprocessor(settings: Settings) -> Preprocessor:
    """Load the encoder named by `settings` (the expensive, once-per-process step)."""
    threads = settings.query_threads
    encoder = query_encoder(settings.resolved_model_dir, threads)
    # Extra models cost cold-start time, so only those configured are loaded.
    extra = [query_encoder(folder, threads) for folder in settings.resolved_extra_model_dirs]
    return Preprocessor(
        encoder,
        max_chars=settings.max_query_chars,
        batch_size=settings.encode_batch_size,
        image_space=lambda: load_image_space(settings),
        extra_encoders=extra,
    )


def query_encoder(model_dir: Path, threads: int) -> TextEncoder:
    """The query encoder of an exported folder, loaded once per folder, export and thread
    count in a process: services built in one process (the composed app and its Lambda door;
    a test suite's hundreds) share one onnxruntime session, which runs concurrent calls, so
    another service costs neither the load (~0.3 s) nor the ~45 MB the allocator kept per
    session (measured over tests/functions)."""
    try:
        manifest = (model_dir / MANIFEST_FILE).read_bytes()
    except OSError:  # no export there: the loader says so
        return TextEncoder.load(model_dir, threads=threads)
    digest = hashlib.sha256(manifest).hexdigest()
    return _loaded_encoder(str(model_dir.resolve()), threads, digest)


@functools.lru_cache(maxsize=4)
def _loaded_encoder(folder: str, threads: int, manifest_sha256: str) -> TextEncoder:
    return TextEncoder.load(Path(folder), threads=threads)


def routes(preprocessor: Preprocessor, max_image_bytes: int = MAX_BODY_BYTES) -> list[Route]:
    """Routes of the preprocess function."""

    def embed(request: EmbedRequest) -> EmbedResponse:
        """Embed up to 64 texts (or 8 base64 images into the image space) into L2-normalised
        vectors."""
        if request.space == "text":
            try:
                encoder = preprocessor.text_encoder(request.model)
            except ModelUnavailable as exc:  # a model the caller named: a 4xx, not an outage
                raise InvalidRequest(exc.message) from None
            vectors = preprocessor.embed(request.texts, request.model)
            return EmbedResponse(model=encoder.name, dim=encoder.dim, vectors=vectors.tolist())
        if request.images:
            images = [decode_image(i, max_image_bytes) for i in request.images]
            vectors = preprocessor.embed_images(images)
        else:
            vectors = preprocessor.embed_texts_for_images(request.texts)
        space = preprocessor.image_space
        return EmbedResponse(model=space.name, dim=space.dim, vectors=vectors.tolist())

    return [Route("POST", "/v1/embed", EmbedRequest, EmbedResponse, embed, "preprocess")]
