"""The Lambda-side encoder: onnxruntime + tokenizers only, batched, order-preserving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from functions.core.errors import ModelUnavailable
from functions.core.models.text_encoder import TextEncoder

TEXTS = [
    "short",
    "a considerably longer sentence that needs many more tokens than the first one does",
    "médium-length text, with accents and punctuation!",
    "東京は日本の首都です",
    "word " * 400,
]


def test_batched_embeddings_equal_one_by_one_and_keep_input_order(encoder: TextEncoder) -> None:
    batched = encoder.embed(TEXTS, batch_size=2)
    single = np.vstack([encoder.embed([t]) for t in TEXTS])
    assert batched.shape == (5, 384)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_embedding_matches_sentence_transformers(encoder: TextEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    from offline.export import default_model_source

    reference = SentenceTransformer(default_model_source(), device="cpu").encode(TEXTS)
    cosine = np.sum(encoder.embed(TEXTS) * reference, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.9999


def test_texts_longer_than_max_seq_length_are_truncated_not_refused(encoder: TextEncoder) -> None:
    long_a = encoder.embed(["word " * 400])
    long_b = encoder.embed(["word " * 800])
    np.testing.assert_allclose(long_a, long_b, atol=1e-5)


def test_empty_input_gives_an_empty_matrix(encoder: TextEncoder) -> None:
    assert encoder.embed([]).shape == (0, 384)


def test_missing_or_tampered_model_is_a_clear_model_unavailable(
    tmp_path: Path, model_dir: Path
) -> None:
    with pytest.raises(ModelUnavailable, match="cannot load model"):
        TextEncoder.load(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in model_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "tokenizer.json").write_text((copy / "tokenizer.json").read_text() + " ")
    with pytest.raises(ModelUnavailable, match="sha256"):
        TextEncoder.load(copy, verify=True)


def test_the_query_encoder_takes_the_configured_threads(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.core.settings import Settings
    from functions.preprocess.service import build_preprocessor

    def threads(settings: Settings) -> int:
        options = build_preprocessor(settings).encoder._session.get_session_options()
        return int(options.intra_op_num_threads)

    monkeypatch.delenv("MMSEARCH_QUERY_THREADS", raising=False)  # `make test` sets 1
    assert threads(Settings(model_dir=model_dir)) == 0  # onnxruntime's default: every core
    assert threads(Settings(model_dir=model_dir, query_threads=1)) == 1


def test_services_in_one_process_share_one_session_per_export(
    model_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from functions.core.settings import Settings
    from functions.preprocess.service import build_preprocessor

    first = build_preprocessor(Settings(model_dir=model_dir)).encoder
    assert build_preprocessor(Settings(model_dir=model_dir)).encoder is first
    # Another export in the same folder (its manifest differs) is loaded afresh.
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    again = build_preprocessor(Settings(model_dir=copy)).encoder
    assert again is build_preprocessor(Settings(model_dir=copy)).encoder
    manifest = copy / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"exported_at"', '"exported_at" ', 1))
    assert build_preprocessor(Settings(model_dir=copy)).encoder is not again
