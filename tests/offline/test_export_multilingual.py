"""Exporting multilingual sentence-transformers pipelines (Transformer -> Pooling -> Dense ->
Normalize) and multilingual CLIP text towers paired with a CLIP image tower.

No trained multilingual weights can be had offline: the models are tiny random ones on
bert-base-chinese's real WordPiece vocabulary (tiny_multilingual.py) and a tiny random CLIP
(tiny_clip.py); the export, the parity check and the runtime encoders are the real ones.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import LayerNorm
from tokenizers import Tokenizer

from functions.core.models.clip_encoder import ClipEncoder
from functions.core.models.image_space import load_image_space
from functions.core.models.loading import load_encoder
from functions.core.models.manifest import (
    IMAGE_MODEL_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    TEXT_MODEL_FILE,
    TOKENIZER_FILE,
    ModelManifest,
)
from functions.core.models.text_encoder import TextEncoder
from functions.core.settings import Settings
from offline.clip_parity import parity_images
from offline.export import ExportError, export_text_model
from offline.export_clip import export_clip_model
from tests.offline.tiny_clip import PROJECTION_DIM, build_tiny_clip
from tests.offline.tiny_multilingual import build_tiny_sentence_model

ROOT = Path(__file__).resolve().parents[2]
ATOL = 1e-5
# What the parity must hold on: Chinese, Japanese, mixed Latin/CJK, emoji, and past truncation.
TEXTS = [
    "大象是一种有长鼻子的大型动物",
    "长鼻子的动物",
    "我喜欢机器学习和自然语言处理。",
    "硬币",
    "東京は日本の首都です。",
    "ひらがなとカタカナ、そして漢字",
    "Milvus 2.5 支持 BM25 全文检索 (jieba analyzer)",
    "iPhone 15 在北京的价格是 ¥5,999 吗？",  # noqa: RUF001
    "Tux Paint 的印章：coins 硬币 コイン",  # noqa: RUF001
    "🔥🚀 火箭 😀 emoji-only: 🎉🎉",
    "naïve café 東京 😀",
    "",
    "大象" * 200,
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
    reference: SentenceTransformer


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Transformer -> mean Pooling -> Dense(32 -> 16, tanh) -> Normalize (LaBSE's shape)."""
    base = tmp_path_factory.mktemp("multilingual")
    source = build_tiny_sentence_model(base / "tiny-zh-dense")
    folder = base / "models" / "tiny-zh-dense"
    manifest = export_text_model(str(source), folder, parity_sentences=64)
    return Exported(source, folder, manifest, SentenceTransformer(str(source), device="cpu"))


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """A tiny CLIP's image tower with a multilingual text tower shaped like
    clip-ViT-B-32-multilingual-v1 (mean pooling, Dense without activation, no Normalize),
    exported through the command users run."""
    base = tmp_path_factory.mktemp("mclip")
    clip = build_tiny_clip(base / "tiny-clip")
    text = build_tiny_sentence_model(
        base / "tiny-mclip",
        dense_out=PROJECTION_DIM,
        activation=torch.nn.Identity(),
        normalize=False,
    )
    out = base / "models" / "tiny-mclip"
    run = _cli("export", "--kind", "clip", "--model", str(clip), "--text-model", str(text),
               "--out", str(out))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "image parity on 11 images" in run.stdout + run.stderr
    return Exported(
        text, out, ModelManifest.read(out), SentenceTransformer(str(text), device="cpu")
    )


def test_tiny_model_tokenizes_chinese_and_japanese_with_the_real_vocabulary(
    dense: Exported,
) -> None:
    tokenizer = Tokenizer.from_file(str(dense.folder / TOKENIZER_FILE))
    assert tokenizer.get_vocab_size() == 21128  # bert-base-chinese's WordPiece vocabulary
    assert tokenizer.encode("大象有长鼻子").tokens == [
        "[CLS]",
        "大",
        "象",
        "有",
        "长",
        "鼻",
        "子",
        "[SEP]",
    ]
    japanese = tokenizer.encode("東京はカタカナ").tokens
    # Kana are not CJK ideographs to BERT's pre-tokenizer: they stay one word, in pieces.
    assert japanese == ["[CLS]", "東", "京", "は", "##カ", "##タ", "##カ", "##ナ", "[SEP]"]
    assert "[UNK]" not in tokenizer.encode("Tux Paint 的印章 coins").tokens


def test_dense_pipeline_exports_pooling_dense_and_normalize_inside_the_graph(
    dense: Exported,
) -> None:
    manifest = dense.manifest
    assert manifest.modules == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert (manifest.dim, manifest.pooling, manifest.normalize) == (16, "mean", True)
    assert manifest.inputs == ["input_ids", "attention_mask", "token_type_ids"]
    assert sorted(p.name for p in dense.folder.iterdir()) == sorted(
        [MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE]
    )
    graph = onnx.load(str(dense.folder / MODEL_FILE)).graph
    ops = {node.op_type for node in graph.node}
    assert "Tanh" in ops  # the Dense layer's activation
    shapes = {tuple(weight.dims) for weight in graph.initializer}
    assert {(16, 32), (32, 16)} & shapes  # its 32 -> 16 weight


def test_dense_pipeline_parity_in_manifest_is_within_tolerance(dense: Exported) -> None:
    parity = dense.manifest.parity
    assert parity.sentences == 64
    assert parity.max_abs_diff <= ATOL
    assert parity.min_cosine >= 0.9999
    assert parity.reference.startswith("sentence-transformers ")


def test_runtime_encoder_matches_sentence_transformers_on_cjk_and_emoji(dense: Exported) -> None:
    encoder = load_encoder(dense.folder)
    assert isinstance(encoder, TextEncoder) and encoder.dim == 16
    got = encoder.embed(TEXTS)
    want = dense.reference.encode(TEXTS, convert_to_numpy=True)
    assert got.shape == want.shape == (len(TEXTS), 16)
    assert float(np.max(np.abs(got - want))) <= ATOL
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # Different texts embed differently: the vocabulary is not collapsing them to [UNK].
    assert float(got[0] @ got[4]) < 0.9999


@pytest.mark.parametrize("pooling", ["cls", "max"])
def test_cls_and_max_pooling_with_an_identity_dense_export_as_configured(
    tmp_path: Path, pooling: str
) -> None:
    source = build_tiny_sentence_model(
        tmp_path / f"tiny-{pooling}",
        pooling=pooling,  # type: ignore[arg-type]
        dense_out=8,
        activation=torch.nn.Identity(),
        normalize=False,
    )
    manifest = export_text_model(str(source), tmp_path / "out", parity_sentences=32)
    assert (manifest.pooling, manifest.normalize, manifest.dim) == (pooling, False, 8)
    assert manifest.modules == ["Transformer", "Pooling", "Dense"]
    assert manifest.parity.max_abs_diff <= ATOL
    got = TextEncoder.load(tmp_path / "out").embed(TEXTS)
    want = SentenceTransformer(str(source), device="cpu").encode(TEXTS, convert_to_numpy=True)
    assert float(np.max(np.abs(got - want))) <= ATOL
    # Unnormalised, as the pipeline is: the graph does not add a normalisation of its own.
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)


def test_pipeline_with_a_module_the_graph_cannot_hold_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    source = build_tiny_sentence_model(tmp_path / "tiny-ln", normalize=False)
    model = SentenceTransformer(str(source), device="cpu")
    model.append(LayerNorm(16))
    model.save(str(tmp_path / "tiny-ln-extra"))
    with pytest.raises(
        ExportError, match=r"unsupported sentence-transformers pipeline .*LayerNorm"
    ):
        export_text_model(str(tmp_path / "tiny-ln-extra"), tmp_path / "out", parity_sentences=8)
    assert not (tmp_path / "out").exists()


def test_paired_clip_manifest_declares_the_multilingual_text_tower(paired: Exported) -> None:
    manifest = paired.manifest
    assert manifest.kind == "clip" and manifest.name == "tiny-mclip"
    assert manifest.text_source == str(paired.source)
    assert manifest.source.endswith("tiny-clip")  # the image tower's
    assert manifest.modules == ["Transformer", "Pooling", "Dense"]
    assert (manifest.dim, manifest.pooling, manifest.normalize) == (PROJECTION_DIM, "mean", True)
    assert manifest.inputs == ["input_ids", "attention_mask", "token_type_ids"]
    assert {TEXT_MODEL_FILE, IMAGE_MODEL_FILE, TOKENIZER_FILE} == set(manifest.files)
    assert manifest.parity.max_abs_diff <= ATOL and manifest.parity.min_cosine >= 0.9999
    assert "normalize_embeddings=True" in manifest.parity.reference
    assert manifest.image_parity is not None and manifest.image_parity.images == 11


def test_t2i_text_side_is_the_multilingual_tower_in_the_clip_image_space(
    paired: Exported,
) -> None:
    space = load_image_space(Settings(clip_model_dir=paired.folder))
    assert isinstance(space, ClipEncoder)
    texts = space.embed_texts(TEXTS)
    want = paired.reference.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    assert float(np.max(np.abs(texts - want))) <= ATOL
    images = space.embed_images(parity_images()[:3])
    assert texts.shape[1] == images.shape[1] == PROJECTION_DIM
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    assert np.all(np.abs(texts @ images.T) <= 1.0 + 1e-5)  # cosine scores in one space


def test_text_tower_of_another_width_than_the_image_tower_is_refused(tmp_path: Path) -> None:
    clip = build_tiny_clip(tmp_path / "tiny-clip")
    text = build_tiny_sentence_model(tmp_path / "tiny-16", dense_out=16)
    with pytest.raises(ExportError, match=r"16 dimensions.*into 24"):
        export_clip_model(str(clip), tmp_path / "out", text_source=str(text), parity_sentences=8)
    assert not (tmp_path / "out").exists()


def test_text_model_without_kind_clip_is_a_usage_error(tmp_path: Path) -> None:
    run = _cli("export", "--text-model", "x", "--out", str(tmp_path / "out"))
    assert run.returncode == 2
    assert "--kind clip" in run.stdout + run.stderr
    assert not (tmp_path / "out").exists()
