"""Image bytes to CLIP pixel values with Pillow and numpy, as transformers' CLIPImageProcessor.

Differences from CLIPImageProcessor, all deliberate: the EXIF orientation is applied (a phone
photo is embedded upright; transformers ignores the tag); 16-bit grayscale keeps its high
byte, as Pillow does for 16-bit colour, where Pillow's convert("RGB") would clip it to white;
and an image more than `decode_scale` times the model's input size (and over 1,024 px on its
shortest side) is decoded reduced (JPEG's
DCT scaling, else a box reduction strip by strip), so memory follows the model's input, not the
upload: a 6,324 x 6,324 RGBA PNG raised peak memory by ~760 MB before, ~170 MB now.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from functions.core.errors import InvalidRequest
from functions.core.models.manifest import ImagePreprocessing
from functions.core.models.memory_budget import MemoryBudget

log = logging.getLogger("mmsearch")

DEFAULT_MAX_PIXELS = 40_000_000
# 40 MP at 4 bytes a pixel (Pillow stores RGB, RGBA, CMYK and LA in 4): every image the pixel
# limit admits in 8-bit colour, bounded by what decoding it costs rather than by its pixels.
DEFAULT_MAX_DECODED_BYTES = 160_000_000
DEFAULT_DECODE_SCALE = 2.0
# Never reduce below this side: ordinary photos decode at full size (CLIPImageProcessor's exact
# path); only images far larger than any model input are reduced, where memory matters.
MIN_DECODE_SIDE = 1024
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")  # GIF: its first frame
_STRIP_BYTES = 4 * 2**20  # rows converted at a time, so no full-size copy is ever made
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImagePreprocessor:
    """Decodes, orients, converts, resizes, crops, rescales and normalises a batch of images,
    within a byte budget shared by the images decoded at the same time."""

    def __init__(
        self,
        params: ImagePreprocessing,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
        budget: MemoryBudget | None = None,
        decode_scale: float | None = DEFAULT_DECODE_SCALE,
        min_decode_side: int = MIN_DECODE_SIDE,
    ):
        self.params = params
        self.max_pixels = max_pixels
        self.budget = budget or MemoryBudget()
        self.max_decoded_bytes = min(max_decoded_bytes, self.budget.capacity)
        self.output_size = _output_size(params)
        # Shortest side an image is decoded at (None: full size, exact CLIPImageProcessor).
        self.min_side = (
            None
            if decode_scale is None
            else max(min_decode_side, math.ceil(decode_scale * _side(params)))
        )
        self._mean = np.array(params.image_mean, dtype=np.float32)[:, None, None]
        self._std = np.array(params.image_std, dtype=np.float32)[:, None, None]

    def preprocess(self, images: Sequence[bytes]) -> np.ndarray:
        """Return float32 pixel values (n, 3, H, W); bad, oversized or no images are refused."""
        if not images:
            raise InvalidRequest("no images given")
        return np.stack([self.pixel_values(data, index) for index, data in enumerate(images)])

    def pixel_values(self, data: bytes, index: int = 0) -> np.ndarray:
        """One image's (3, H, W) float32 pixel values."""
        image = self._open(data, index)
        with self.budget.hold(self._cost(image)):
            return self.from_rgb(self._decode(image, index))

    def decode(self, data: bytes, index: int = 0) -> Image.Image:
        """Decode to an upright RGB image (reduced when much larger than the model's input),
        checking its size before decoding its pixels."""
        image = self._open(data, index)
        with self.budget.hold(self._cost(image)):
            return self._decode(image, index)

    def _open(self, data: bytes, index: int) -> Image.Image:
        """Read the header only (accepted formats only); refuse what is too large to decode."""
        try:
            image: Image.Image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except Image.DecompressionBombError:
            raise InvalidRequest(f"image {index} is too large to decode") from None
        except Exception as exc:
            # Pillow's messages name the file object (a heap address): logged, never answered.
            log.info("image %d not readable: %s", index, type(exc).__name__)
            raise InvalidRequest(
                f"image {index} is not a readable image (accepted: {', '.join(ACCEPTED_FORMATS)})"
            ) from None
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
        if image.format == "JPEG" and self.min_side and self.params.do_convert_rgb:
            image.draft(None, (self.min_side, self.min_side))  # DCT scaling: 1/2, 1/4 or 1/8
        size = decoded_bytes(image)
        if size > self.max_decoded_bytes:
            width, height = image.size
            raise InvalidRequest(
                f"image {index} decodes to {size:,} bytes ({width}x{height} {image.mode}); "
                f"the limit is {self.max_decoded_bytes:,}"
            )
        return image

    def _factor(self, image: Image.Image) -> int:
        if not self.min_side or not self.params.do_convert_rgb:
            return 1
        return max(1, min(image.size) // self.min_side)

    def _cost(self, image: Image.Image) -> int:
        """Bytes decoding `image` holds at its peak: the decoded pixels, the reduced RGB
        copy and the strips being converted (measured peaks stay under this; see tests)."""
        width, height = image.size
        factor = self._factor(image)
        reduced = -(-width // factor) * -(-height // factor) * 4
        return decoded_bytes(image) + 2 * reduced + 5 * min(_STRIP_BYTES, width * height * 4)

    def _decode(self, image: Image.Image, index: int) -> Image.Image:
        try:
            image.load()
            orientation = image.getexif().get(_ORIENTATION)
        except Exception as exc:  # truncated or corrupt data shows only when pixels are decoded
            log.info("image %d cannot be decoded: %s", index, type(exc).__name__)
            raise InvalidRequest(f"image {index} cannot be decoded") from None
        if self.params.do_convert_rgb:
            image = rgb_reduced(image, self._factor(image))
        method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
        return image.transpose(method) if method is not None else image

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


def decoded_bytes(image: Image.Image) -> int:
    """Bytes Pillow holds for `image`'s pixels once decoded (at its current, drafted size)."""
    width, height = image.size
    if image.mode in ("1", "L", "P"):
        per_pixel = 1
    elif image.mode.startswith("I;16"):
        per_pixel = 2
    else:  # RGB is stored as RGBX; LA, RGBA, CMYK, YCbCr, I and F are 4 bytes too
        per_pixel = 4
    return width * height * per_pixel


def rgb_reduced(image: Image.Image, factor: int) -> Image.Image:
    """`to_rgb(image)` box-reduced by `factor`, converted a strip of rows at a time so no
    full-size RGBA or RGB copy exists; composite-then-average, as transformers' order."""
    width, height = image.size
    rows = max(1, _STRIP_BYTES // max(1, width * 4) // factor) * factor
    if rows >= height:
        rgb = to_rgb(image)
        return rgb.reduce(factor) if factor > 1 else rgb
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = to_rgb(image.crop((0, top, width, min(height, top + rows))))
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return out


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


def _side(params: ImagePreprocessing) -> int:
    """The largest side the model's input is resized to (before the crop)."""
    size = params.size if params.do_resize else {}
    sides = [size.get(k, 0) for k in ("shortest_edge", "height", "width")]
    if params.do_center_crop:
        sides += [params.crop_size["height"], params.crop_size["width"]]
    return max(sides)


def _output_size(params: ImagePreprocessing) -> tuple[int, int]:
    """The fixed (height, width) every image comes out at; a batch needs one."""
    if params.do_center_crop:
        return params.crop_size["height"], params.crop_size["width"]
    if params.do_resize and "height" in params.size and "width" in params.size:
        return params.size["height"], params.size["width"]
    raise ValueError("image preprocessing must end at a fixed size (center crop or height/width)")
