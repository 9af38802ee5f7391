"""Image preprocessing: Pillow + numpy reproduce transformers' CLIPImageProcessor on real images."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from functions.core.errors import InvalidRequest
from functions.core.models.image_preprocessing import ImagePreprocessor
from functions.core.models.manifest import ImagePreprocessing

IMAGES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
TOLERANCE = 1e-4
# CLIP's own settings; a small bilinear one; one whose crop is wider than the resized image, so
# transformers' zero padding is exercised; one with a capped long side; one with no crop.
CONFIGS = {
    "clip-224": ImagePreprocessing(),
    "bilinear-64": ImagePreprocessing(
        size={"shortest_edge": 64},
        resample=2,
        crop_size={"height": 64, "width": 64},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    ),
    "padded-crop": ImagePreprocessing(
        size={"shortest_edge": 32}, crop_size={"height": 24, "width": 56}
    ),
    "capped-long-side": ImagePreprocessing(
        size={"shortest_edge": 48, "longest_edge": 60}, crop_size={"height": 40, "width": 40}
    ),
    "fixed-size": ImagePreprocessing(
        size={"height": 40, "width": 48}, resample=1, do_center_crop=False
    ),
}


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _cases() -> dict[str, tuple[bytes, Image.Image]]:
    """name -> (the bytes we preprocess, the PIL image transformers is given)."""
    china = Image.open(IMAGES / "china.jpg")
    flower = Image.open(IMAGES / "flower.jpg")
    icon = Image.open(IMAGES / "camera-web.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored pixels must be turned 90 degrees clockwise
    portrait = flower.crop((200, 0, 480, 427))
    derived = {
        "portrait": _encode(portrait, "JPEG", quality=92),
        "tiny-7x5": _encode(china.resize((7, 5), Image.Resampling.LANCZOS), "PNG"),
        "large-3000x2000": _encode(china.resize((3000, 2000), Image.Resampling.BICUBIC), "JPEG"),
        "grayscale-L": _encode(flower.convert("L"), "JPEG", quality=90),
        "grayscale-LA": _encode(icon.convert("LA"), "PNG"),
        "bilevel-1": _encode(china.convert("1"), "PNG"),
        "palette-P": _encode(flower.quantize(64), "PNG"),
        "palette-transparent": _encode(icon.quantize(200), "PNG"),
        "palette-gif": _encode(icon.convert("RGB").quantize(128), "GIF", transparency=0),
        "cmyk-jpeg": _encode(china.convert("CMYK"), "JPEG", quality=92),
        "webp": _encode(portrait, "WEBP", quality=80),
    }
    cases = {
        "photo-landscape": ((IMAGES / "china.jpg").read_bytes(), china),
        "photo-flower": ((IMAGES / "flower.jpg").read_bytes(), flower),
        "rgba-transparent": ((IMAGES / "camera-web.png").read_bytes(), icon),
        **{name: (data, Image.open(io.BytesIO(data))) for name, data in derived.items()},
    }
    # transformers ignores EXIF orientation: its reference is the already-turned image.
    rotated = _encode(portrait, "JPEG", quality=92, exif=exif)
    cases["exif-rotated"] = (rotated, ImageOps.exif_transpose(Image.open(io.BytesIO(rotated))))
    # Pillow clips 16-bit grey to 255 in convert("RGB"); we keep the high byte, so transformers'
    # reference is the 8-bit image the 16-bit one was made from.
    grey = np.asarray(china.convert("L"))
    sixteen = _encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG")
    cases["grayscale-16bit"] = (sixteen, Image.fromarray(grey, "L"))
    return cases


CASES = _cases()


def _reference(params: ImagePreprocessing, image: Image.Image) -> np.ndarray:
    try:  # transformers 5: the PIL backend, which needs no torchvision
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4: the slow processor is the PIL one
        from transformers import CLIPImageProcessor as Processor

    processor = Processor(**params.model_dump())
    return np.asarray(processor(images=[image], return_tensors="np")["pixel_values"][0])


def test_the_derived_cases_have_the_modes_they_are_named_after() -> None:
    modes = {name: Image.open(io.BytesIO(data)).mode for name, (data, _) in CASES.items()}
    assert modes["rgba-transparent"] == "RGBA"
    assert modes["grayscale-LA"] == "LA"
    assert modes["bilevel-1"] == "1"
    assert modes["cmyk-jpeg"] == "CMYK"
    assert modes["grayscale-16bit"].startswith("I;16")
    assert modes["palette-transparent"] == "P"
    assert "transparency" in Image.open(io.BytesIO(CASES["palette-transparent"][0])).info
    assert Image.open(io.BytesIO(CASES["exif-rotated"][0])).getexif()[0x0112] == 6


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_pixel_values_match_clip_image_processor(case: str, config: str) -> None:
    data, reference_image = CASES[case]
    params = CONFIGS[config]
    # decode_scale=None: decoded at full size, CLIPImageProcessor's exact path.
    ours = ImagePreprocessor(params, decode_scale=None).preprocess([data])
    reference = _reference(params, reference_image)
    assert ours.dtype == np.float32
    assert ours.shape == (1, *reference.shape)
    assert np.abs(ours[0] - reference).max() <= TOLERANCE


@pytest.mark.parametrize("case", sorted(set(CASES) - {"large-3000x2000"}))
def test_images_up_to_twice_the_input_size_are_decoded_at_full_size(case: str) -> None:
    data = CASES[case][0]
    exact = ImagePreprocessor(CONFIGS["clip-224"], decode_scale=None).preprocess([data])
    np.testing.assert_array_equal(ImagePreprocessor(CONFIGS["clip-224"]).preprocess([data]), exact)


def test_an_ordinary_photo_is_decoded_at_full_size() -> None:
    # Reduction starts above 1,024 px on the shortest side: a 3,000 x 2,000 photo is exact.
    data = CASES["large-3000x2000"][0]
    preprocessor = ImagePreprocessor(CONFIGS["clip-224"])
    assert preprocessor.decode(data).size == (3000, 2000)
    exact = ImagePreprocessor(CONFIGS["clip-224"], decode_scale=None).preprocess([data])
    np.testing.assert_array_equal(preprocessor.preprocess([data]), exact)


def test_a_large_image_is_decoded_reduced_and_stays_close_to_full_decoding() -> None:
    data = CASES["large-3000x2000"][0]
    preprocessor = ImagePreprocessor(CONFIGS["clip-224"], min_decode_side=0)
    assert preprocessor.decode(data).size == (750, 500)  # JPEG DCT scaling 1/4, short side >= 448
    reduced = preprocessor.preprocess([data])
    exact = ImagePreprocessor(CONFIGS["clip-224"], decode_scale=None).preprocess([data])
    # Measured: mean |diff| 0.006, max 0.075 on values spanning about [-1.8, 2.1].
    assert np.abs(reduced - exact).mean() < 0.01
    assert np.abs(reduced - exact).max() < 0.1


def test_exif_orientation_is_applied_before_anything_else() -> None:
    data, upright = CASES["exif-rotated"]
    stored = Image.open(io.BytesIO(data))
    assert upright.size == (stored.height, stored.width)
    pixels = ImagePreprocessor(CONFIGS["fixed-size"]).preprocess([data])
    # Without the turn the same bytes would give different pixels.
    unturned = _reference(CONFIGS["fixed-size"], stored)
    assert np.abs(pixels[0] - unturned).max() > 0.5


def test_a_batch_keeps_input_order() -> None:
    names = ["photo-landscape", "tiny-7x5", "rgba-transparent", "cmyk-jpeg"]
    preprocessor = ImagePreprocessor(CONFIGS["bilinear-64"])
    batch = preprocessor.preprocess([CASES[n][0] for n in names])
    assert batch.shape == (4, 3, 64, 64)
    for row, name in enumerate(names):
        np.testing.assert_array_equal(batch[row], preprocessor.preprocess([CASES[name][0]])[0])


def test_empty_input_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="no images"):
        ImagePreprocessor(ImagePreprocessing()).preprocess([])


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", (IMAGES / "china.jpg").read_bytes()[:5000]],
    ids=["empty-bytes", "text", "truncated-jpeg"],
)
def test_undecodable_bytes_are_refused_with_422(data: bytes) -> None:
    with pytest.raises(InvalidRequest) as refused:
        ImagePreprocessor(ImagePreprocessing()).preprocess([CASES["photo-flower"][0], data])
    assert refused.value.status == 422
    assert "image 1" in refused.value.message


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixel data: decoding it would fail."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_images_over_the_pixel_limit_are_refused_before_their_pixels_are_decoded() -> None:
    preprocessor = ImagePreprocessor(ImagePreprocessing())
    with pytest.raises(InvalidRequest, match=r"8000x6000 pixels; the limit is 40,000,000"):
        preprocessor.preprocess([_png_header_only(8000, 6000)])
    # Past Pillow's own decompression-bomb limit too.
    with pytest.raises(InvalidRequest, match="is too large"):
        preprocessor.preprocess([_png_header_only(30000, 30000)])
    # Under the limit the same kind of file gets to decoding, and fails there.
    with pytest.raises(InvalidRequest, match="cannot be decoded"):
        preprocessor.preprocess([_png_header_only(800, 600)])


def test_the_pixel_limit_is_configurable() -> None:
    china = CASES["photo-landscape"][0]  # 640x427 = 273,280 pixels
    assert ImagePreprocessor(ImagePreprocessing(), max_pixels=273_280).preprocess([china]).size
    with pytest.raises(InvalidRequest, match="limit is 273,279"):
        ImagePreprocessor(ImagePreprocessing(), max_pixels=273_279).preprocess([china])


def test_preprocessing_without_a_fixed_output_size_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="fixed size"):
        ImagePreprocessor(ImagePreprocessing(do_center_crop=False))
