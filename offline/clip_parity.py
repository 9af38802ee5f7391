"""Parity of a CLIP export against PyTorch: varied images made here, text and image features.

The images cover sizes and aspect ratios (tiny, portrait, wide, large), every mode the runtime
converts (RGBA, LA, L, 1, P with transparency, CMYK) and an EXIF-rotated JPEG, as file bytes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
import transformers
from PIL import Image, ImageDraw, ImageOps
from tokenizers import Tokenizer
from transformers import CLIPModel

from functions.core.models.image_preprocessing import ImagePreprocessor
from functions.core.models.manifest import (
    IMAGE_MODEL_FILE,
    TEXT_MODEL_FILE,
    TOKENIZER_FILE,
    ImageParity,
    ImagePreprocessing,
    Parity,
)
from offline.export import OUTPUT_NAME

_BATCH = 16


def _scene(width: int, height: int, seed: int) -> Image.Image:
    """Smooth colour gradients, a few shapes and some noise: texture at every scale."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    channels = [np.sin(6 * x + 4 * y + p) * 0.5 + 0.5 for p in phases]
    pixels = np.stack(channels, axis=-1) * 200 + rng.normal(0, 12, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        size = int(rng.integers(1, max(2, min(width, height) // 2)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=colour)
    return image


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def parity_images() -> list[bytes]:
    """Eleven encoded images covering the sizes, modes and orientation the runtime handles."""
    wide, portrait = _scene(640, 480, 1), _scene(300, 500, 2)
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1)), "L")
    rgba = _scene(256, 256, 3)
    rgba.putalpha(alpha)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to display
    return [
        _encoded(wide, "JPEG", quality=90),
        _encoded(portrait, "PNG"),
        _encoded(_scene(7, 5, 4), "PNG"),
        _encoded(_scene(1600, 900, 5), "JPEG", quality=85),
        _encoded(rgba, "PNG"),
        _encoded(rgba.convert("LA"), "PNG"),
        _encoded(wide.convert("L"), "JPEG", quality=90),
        _encoded(portrait.convert("1"), "PNG"),
        _encoded(rgba.quantize(100), "PNG"),
        _encoded(wide.convert("CMYK"), "JPEG", quality=90),
        _encoded(portrait, "JPEG", quality=90, exif=exif),
    ]


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _features(output: Any) -> np.ndarray:
    """get_*_features returns a tensor in transformers 4 and an output object in 5."""
    tensor = output if isinstance(output, torch.Tensor) else output.pooler_output
    return torch.nn.functional.normalize(tensor, p=2, dim=1).numpy()


def _compare(reference: np.ndarray, onnx_out: np.ndarray) -> tuple[float, float]:
    """Max |diff| and min cosine between two row-normalised arrays."""
    cosine = np.sum(reference * onnx_out, axis=1) / (
        np.linalg.norm(reference, axis=1) * np.linalg.norm(onnx_out, axis=1)
    )
    return float(np.max(np.abs(reference - onnx_out))), float(np.min(cosine))


def text_parity(
    model: CLIPModel, tokenizer: Any, max_length: int, folder: Path, sentences: list[str]
) -> Parity:
    """HF tokenizer + PyTorch get_text_features against tokenizer.json + the text graph."""
    tokens = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    tokens.enable_padding(pad_id=pad_id, pad_token=tokens.id_to_token(pad_id) or "")
    session = _session(folder / TEXT_MODEL_FILE)
    reference, onnx_out = [], []
    for start in range(0, len(sentences), _BATCH):
        batch = sentences[start : start + _BATCH]
        inputs = tokenizer(
            batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with torch.no_grad():
            reference.append(_features(model.get_text_features(**inputs)))
        encodings = tokens.encode_batch(batch)
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        onnx_out.append(session.run([OUTPUT_NAME], feed)[0])
    max_diff, min_cosine = _compare(np.vstack(reference), np.vstack(onnx_out))
    return Parity(
        reference=f"transformers {transformers.__version__} CLIPModel.get_text_features",
        sentences=len(sentences),
        max_abs_diff=max_diff,
        min_cosine=min_cosine,
    )


def image_parity(
    model: CLIPModel, processor: Any, params: ImagePreprocessing, folder: Path, images: list[bytes]
) -> ImageParity:
    """HF processor + PyTorch get_image_features against our preprocessing + the image graph.

    transformers ignores EXIF orientation, so its input is the upright image."""
    session = _session(folder / IMAGE_MODEL_FILE)
    # Full-size decode: the graph is checked on CLIPImageProcessor's exact input; the reduced
    # decode of huge uploads is held close to it by tests/functions/test_images.py.
    preprocessor = ImagePreprocessor(params, decode_scale=None)
    reference, onnx_out = [], []
    for start in range(0, len(images), _BATCH):
        batch = images[start : start + _BATCH]
        upright = [ImageOps.exif_transpose(Image.open(io.BytesIO(data))) for data in batch]
        pixels = processor(images=upright, return_tensors="np")["pixel_values"]
        with torch.no_grad():
            reference.append(_features(model.get_image_features(torch.from_numpy(pixels))))
        feed = {"pixel_values": preprocessor.preprocess(batch)}
        onnx_out.append(session.run([OUTPUT_NAME], feed)[0])
    max_diff, min_cosine = _compare(np.vstack(reference), np.vstack(onnx_out))
    return ImageParity(
        reference=(
            f"transformers {transformers.__version__} {type(processor).__name__} + "
            "CLIPModel.get_image_features"
        ),
        images=len(images),
        max_abs_diff=max_diff,
        min_cosine=min_cosine,
    )
