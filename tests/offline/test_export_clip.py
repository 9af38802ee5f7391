"""Exporting a CLIPModel: two ONNX graphs, tokenizer and preprocessing, against PyTorch.

No trained CLIP weights can be had offline, so the model is a randomly initialised tiny CLIP
with a byte-level BPE vocabulary learnt on the spot (tiny_clip.py); the export code is the one
users run.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from tokenizers import Tokenizer
from transformers import CLIPModel, CLIPTokenizer

from functions.core.errors import ModelUnavailable
from functions.core.models.clip_encoder import ClipEncoder
from functions.core.models.loading import load_encoder
from functions.core.models.manifest import (
    IMAGE_MODEL_FILE,
    MANIFEST_FILE,
    TEXT_MODEL_FILE,
    TOKENIZER_FILE,
    ModelManifest,
)
from functions.core.models.text_encoder import TextEncoder
from offline.export import ExportError, parity_corpus
from offline.export_clip import export_clip_model, image_processor_class
from tests.offline.tiny_clip import PROJECTION_DIM, build_tiny_clip

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "fixtures" / "images"
TOLERANCE = 1e-4
SENTENCES = [
    "a photo of a cat",
    "A PHOTO OF A DOG!",
    "The quick brown fox, jumping (over) the lazy dog...",
    "café naïve résumé — Ångström",
    "東京の写真 🚀🔥",
    "it's what they'll've done, isn't it?",
    "  spaced\tout\nwords  ",
    "",
    "numbers 3.14159 and 2024-03-01",
    " ".join(["sunset on the beach"] * 40),  # far past 77 tokens: truncated
]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "offline.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass
class Exported:
    source: Path
    folder: Path
    manifest: ModelManifest
    model: CLIPModel
    tokenizer: CLIPTokenizer


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The tiny CLIP exported through the command users run."""
    base = tmp_path_factory.mktemp("clip")
    source = build_tiny_clip(base / "tiny-clip")
    out = base / "models" / "tiny-clip"
    result = _cli("export", "--kind", "clip", "--model", str(source), "--out", str(out))
    assert result.returncode == 0, result.stderr
    model = CLIPModel.from_pretrained(str(source), attn_implementation="eager").eval()
    tokenizer = CLIPTokenizer.from_pretrained(str(source))
    return Exported(source, out, ModelManifest.read(out), model, tokenizer)


@pytest.fixture(scope="module")
def encoder(exported: Exported) -> ClipEncoder:
    loaded = load_encoder(exported.folder)
    assert isinstance(loaded, ClipEncoder)
    return loaded


def _reference_texts(exported: Exported, texts: list[str]) -> np.ndarray:
    inputs = exported.tokenizer(
        texts, padding=True, truncation=True, max_length=77, return_tensors="pt"
    )
    with torch.no_grad():
        out = exported.model.get_text_features(**inputs)
    tensor = out if isinstance(out, torch.Tensor) else out.pooler_output
    return torch.nn.functional.normalize(tensor, dim=1).numpy()


def _reference_images(exported: Exported, images: list[bytes]) -> np.ndarray:
    processor = image_processor_class().from_pretrained(str(exported.source))
    upright = [ImageOps.exif_transpose(Image.open(io.BytesIO(data))) for data in images]
    pixels = processor(images=upright, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = exported.model.get_image_features(pixel_values=pixels)
    tensor = out if isinstance(out, torch.Tensor) else out.pooler_output
    return torch.nn.functional.normalize(tensor, dim=1).numpy()


def _real_images() -> list[bytes]:
    china = Image.open(IMAGES / "china.jpg")
    out = io.BytesIO()
    china.crop((100, 0, 380, 427)).save(out, "PNG")  # portrait
    return [
        (IMAGES / "china.jpg").read_bytes(),
        (IMAGES / "flower.jpg").read_bytes(),
        (IMAGES / "camera-web.png").read_bytes(),
        out.getvalue(),
    ]


def test_export_writes_two_graphs_tokenizer_and_a_clip_manifest(exported: Exported) -> None:
    names = sorted(p.name for p in exported.folder.iterdir())
    assert names == sorted([IMAGE_MODEL_FILE, MANIFEST_FILE, TEXT_MODEL_FILE, TOKENIZER_FILE])
    manifest = exported.manifest
    assert (manifest.kind, manifest.name, manifest.dim) == ("clip", "tiny-clip", PROJECTION_DIM)
    assert (manifest.text_model, manifest.image_model) == (TEXT_MODEL_FILE, IMAGE_MODEL_FILE)
    assert (manifest.max_seq_length, manifest.pooling, manifest.normalize) == (77, "eos", True)
    assert manifest.image_preprocessing is not None
    assert manifest.image_preprocessing.crop_size == {"height": 32, "width": 32}
    assert manifest.image_preprocessing.size == {"shortest_edge": 32}
    assert sorted(manifest.files) == sorted([IMAGE_MODEL_FILE, TEXT_MODEL_FILE, TOKENIZER_FILE])
    assert [p.name for p in exported.folder.parent.iterdir()] == ["tiny-clip"]  # no leftovers


def test_exporting_again_keeps_a_complete_export(exported: Exported) -> None:
    before = (exported.folder / MANIFEST_FILE).read_text()
    args = ("export", "--kind", "clip", "--model", str(exported.source))
    result = _cli(*args, "--out", str(exported.folder))
    assert result.returncode == 0, result.stderr
    assert "model already exported" in result.stderr
    assert (exported.folder / MANIFEST_FILE).read_text() == before


def test_manifest_records_parity_against_pytorch(exported: Exported) -> None:
    text, image = exported.manifest.parity, exported.manifest.image_parity
    assert image is not None
    assert text.sentences == 64 and image.images == 11
    assert "get_text_features" in text.reference and "get_image_features" in image.reference
    assert text.max_abs_diff <= TOLERANCE and text.min_cosine >= 0.9999
    assert image.max_abs_diff <= TOLERANCE and image.min_cosine >= 0.9999


def test_tokenizer_json_gives_clip_tokenizer_ids(exported: Exported) -> None:
    shipped = Tokenizer.from_file(str(exported.folder / TOKENIZER_FILE))
    for text in [*SENTENCES, *parity_corpus(40)]:
        expected = exported.tokenizer(text, truncation=True, max_length=77).input_ids
        assert shipped.encode(text).ids == expected, text
    assert len(shipped.encode(SENTENCES[-1]).ids) == 77


def test_padded_text_batch_matches_pytorch(exported: Exported, encoder: ClipEncoder) -> None:
    ours = encoder.embed_texts(SENTENCES, batch_size=len(SENTENCES))
    assert ours.shape == (len(SENTENCES), PROJECTION_DIM) and ours.dtype == np.float32
    assert np.abs(ours - _reference_texts(exported, SENTENCES)).max() <= TOLERANCE
    one_by_one = np.vstack([encoder.embed_texts([t]) for t in SENTENCES])
    assert np.abs(ours - one_by_one).max() <= TOLERANCE


def test_real_images_match_pytorch(exported: Exported, encoder: ClipEncoder) -> None:
    images = _real_images()
    ours = encoder.embed_images(images)
    assert ours.shape == (len(images), PROJECTION_DIM) and ours.dtype == np.float32
    assert np.abs(ours - _reference_images(exported, images)).max() <= TOLERANCE


def test_an_image_queried_with_itself_comes_back_first(encoder: ClipEncoder) -> None:
    images = _real_images()
    index = encoder.embed_images(images, batch_size=3)
    np.testing.assert_allclose(np.linalg.norm(index, axis=1), 1.0, atol=1e-5)
    for row, data in enumerate(images):
        scores = index @ encoder.embed_images([data])[0]
        assert int(np.argmax(scores)) == row
        assert scores[row] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("flag", ["--text", "--image"])
def test_embed_command_prints_a_unit_vector(exported: Exported, flag: str) -> None:
    value = "a photo of a cat" if flag == "--text" else str(IMAGES / "flower.jpg")
    result = _cli("embed", "--model", str(exported.folder), flag, value, "--json")
    assert result.returncode == 0, result.stderr
    vector = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    assert vector.shape == (PROJECTION_DIM,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    encoder = load_encoder(exported.folder)
    assert isinstance(encoder, ClipEncoder)
    expected = (
        encoder.embed_texts([value])[0]
        if flag == "--text"
        else encoder.embed_images([Path(value).read_bytes()])[0]
    )
    np.testing.assert_allclose(vector, expected, atol=1e-6)


def test_embed_command_refuses_an_image_for_a_text_model_and_a_bad_image(
    exported: Exported, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    result = _cli("embed", "--model", str(exported.folder), "--image", str(broken))
    assert result.returncode == 1 and "image 0 is not a readable image" in result.stderr
    text_only = tmp_path / "text-only"
    text_only.mkdir()
    manifest = exported.manifest.model_copy(update={"kind": "text", "text_model": TEXT_MODEL_FILE})
    for name in (TEXT_MODEL_FILE, TOKENIZER_FILE):
        (text_only / name).write_bytes((exported.folder / name).read_bytes())
    manifest.write(text_only)
    assert isinstance(load_encoder(text_only), TextEncoder)
    result = _cli("embed", "--model", str(text_only), "--image", str(IMAGES / "flower.jpg"))
    assert result.returncode == 2 and "embeds text only" in result.stderr


def test_loading_a_folder_with_a_missing_graph_raises_model_unavailable(
    exported: Exported, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in (MANIFEST_FILE, TEXT_MODEL_FILE, TOKENIZER_FILE):
        (broken / name).write_bytes((exported.folder / name).read_bytes())
    with pytest.raises(ModelUnavailable, match=IMAGE_MODEL_FILE):
        load_encoder(broken)
    with pytest.raises(ModelUnavailable):
        ClipEncoder.load(tmp_path / "nowhere")


def test_new_style_eos_pooling_exports_with_parity(tmp_path: Path) -> None:
    source = build_tiny_clip(tmp_path / "eos-clip", legacy_eos=False)
    manifest = export_clip_model(str(source), tmp_path / "out", parity_sentences=32)
    assert manifest.parity.max_abs_diff <= TOLERANCE
    assert manifest.image_parity is not None and manifest.image_parity.max_abs_diff <= TOLERANCE


def test_unknown_hub_id_offline_fails_in_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ExportError) as error:
        export_clip_model("no-such-org/no-such-clip", tmp_path / "out")
    message = str(error.value)
    assert "'no-such-org/no-such-clip'" in message and "--model" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_failed_parity_leaves_the_previous_export_in_place(
    exported: Exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from offline import export

    target = tmp_path / "clip"
    target.mkdir()
    (target / MANIFEST_FILE).write_text(exported.manifest.model_dump_json())
    monkeypatch.setattr(export, "MIN_COSINE", 1.5)  # unreachable, so the real check must fail
    with pytest.raises(ExportError, match=r"min cosine [01]\.\d{8} < 1\.5"):
        export_clip_model(str(exported.source), target, parity_sentences=8)
    assert [p.name for p in tmp_path.iterdir()] == ["clip"]
    assert [p.name for p in target.iterdir()] == [MANIFEST_FILE]
