"""Image bytes to CLIP pixel values with Pillow and numpy, as transformers' CLIPImageProcessor.

Differences from CLIPImageProcessor, both deliberate: the EXIF orientation is applied (a phone
photo is embedded upright; transformers ignores the tag), and 16-bit grayscale keeps its high
byte, as Pillow does for 16-bit colour, where Pillow's convert("RGB") would clip it to white.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from functions.core.errors import InvalidRequest
from functions.core.manifest import ImagePreprocessing

DEFAULT_MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")  # GIF: its first frame


class ImagePreprocessor:
    """Decodes, orients, converts, resizes, crops, rescales and normalises a batch of images."""

    def __init__(self, params: ImagePreprocessing, *, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.params = params
        self.max_pixels = max_pixels
        self.output_size = _output_size(params)
        self._mean = np.array(params.image_mean, dtype=np.float32)[:, None, None]
        self._std = np.array(params.image_std, dtype=np.float32)[:, None, None]

    def preprocess(self, images: Sequence[bytes]) -> np.ndarray:
        """Return float32 pixel values (n, 3, H, W); bad, oversized or no images are refused."""
        if not images:
            raise InvalidRequest("no images given")
        return np.stack([self.pixel_values(data, index) for index, data in enumerate(images)])

    def pixel_values(self, data: bytes, index: int = 0) -> np.ndarray:
        """One image's (3, H, W) float32 pixel values."""
        return self.from_rgb(self.decode(data, index))

    def decode(self, data: bytes, index: int = 0) -> Image.Image:
        """Decode to an upright RGB image, checking its size before decoding its pixels."""
        try:
            image: Image.Image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise InvalidRequest(f"image {index} is too large: {exc}") from None
        except Exception as exc:
            raise InvalidRequest(f"image {index} is not a readable image: {exc}") from None
        if image.format not in ACCEPTED_FORMATS:
            raise InvalidRequest(
                f"image {index} is {image.format or 'an unknown format'}; "
                f"accepted: {', '.join(ACCEPTED_FORMATS)}"
            )
        width, height = image.size
        if width * height > self.max_pixels:
            raise InvalidRequest(
                f"image {index} has {width}x{height} pixels; the limit is {self.max_pixels:,}"
            )
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except Exception as exc:  # truncated or corrupt data shows only when pixels are decoded
            raise InvalidRequest(f"image {index} cannot be decoded: {exc}") from None
        return to_rgb(image) if self.params.do_convert_rgb else image

    def from_rgb(self, image: Image.Image) -> np.ndarray:
        """Resize, crop, rescale and normalise an RGB image, in CLIPImageProcessor's order."""
        p = self.params
        if p.do_resize:
            height, width = resize_target(image.height, image.width, p.size)
            image = image.resize((width, height), resample=Image.Resampling(p.resample))
        pixels = np.asarray(image)
        if pixels.ndim == 2:  # do_convert_rgb off and a one-band image
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        pixels = pixels.transpose(2, 0, 1)
        if p.do_center_crop:
            pixels = center_crop(pixels, p.crop_size["height"], p.crop_size["width"])
        # Same dtypes as transformers: float64 product cast to float32, then float32 arithmetic.
        values = pixels.astype(np.float64) * p.rescale_factor if p.do_rescale else pixels
        values = values.astype(np.float32)
        if p.do_normalize:
            values = (values - self._mean) / self._std
        return np.ascontiguousarray(values, dtype=np.float32)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB as transformers' convert_to_rgb: transparency composited onto white."""
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8), "L")
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def resize_target(height: int, width: int, size: dict[str, int]) -> tuple[int, int]:
    """Output (height, width) of CLIPImageProcessor's resize, with its integer arithmetic."""
    if "shortest_edge" in size and "longest_edge" in size:
        return _shortest_and_longest(height, width, size["shortest_edge"], size["longest_edge"])
    if "shortest_edge" in size:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = size["shortest_edge"], int(size["shortest_edge"] * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)
    if "height" in size and "width" in size:
        return size["height"], size["width"]
    raise ValueError(f"unsupported resize size {size}")


def _shortest_and_longest(height: int, width: int, size: int, max_size: int) -> tuple[int, int]:
    """transformers' get_size_with_aspect_ratio: short side to `size`, long side capped."""
    raw: float | None = None
    low, high = float(min(height, width)), float(max(height, width))
    if high / low * size > max_size:
        raw = max_size * low / high
        size = round(raw)
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return int((raw if raw is not None else size) * height / width), size
    return size, int((raw if raw is not None else size) * width / height)


def center_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """transformers' center_crop on (C, H, W): a centred window, zero-padded if too small."""
    rows, cols = pixels.shape[-2:]
    top, left = (rows - height) // 2, (cols - width) // 2
    if top >= 0 and left >= 0:
        return pixels[:, top : top + height, left : left + width]
    padded_rows, padded_cols = max(height, rows), max(width, cols)
    padded = np.zeros((pixels.shape[0], padded_rows, padded_cols), dtype=pixels.dtype)
    pad_top, pad_left = math.ceil((padded_rows - rows) / 2), math.ceil((padded_cols - cols) / 2)
    padded[:, pad_top : pad_top + rows, pad_left : pad_left + cols] = pixels
    top, left = top + pad_top, left + pad_left
    rows_kept = slice(max(0, top), min(padded_rows, top + height))
    return padded[:, rows_kept, max(0, left) : min(padded_cols, left + width)]


def _output_size(params: ImagePreprocessing) -> tuple[int, int]:
    """The fixed (height, width) every image comes out at; a batch needs one."""
    if params.do_center_crop:
        return params.crop_size["height"], params.crop_size["width"]
    if params.do_resize and "height" in params.size and "width" in params.size:
        return params.size["height"], params.size["width"]
    raise ValueError("image preprocessing must end at a fixed size (center crop or height/width)")
