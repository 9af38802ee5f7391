"""Text encoder on onnxruntime + tokenizers: the only inference code that runs in Lambda."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from functions.core.errors import ModelUnavailable
from functions.core.models.manifest import TOKENIZER_FILE, ModelManifest, sha256_file

_PAD_TOKENS = ("[PAD]", "<pad>", "<|endoftext|>")


class ExportedEncoder:
    """What every encoder tells about the exported folder it was loaded from."""

    manifest: ModelManifest

    @property
    def dim(self) -> int:
        return self.manifest.dim

    @property
    def name(self) -> str:
        return self.manifest.name


class TextEncoder(ExportedEncoder):
    """Embeds texts with an exported model folder (model.onnx, tokenizer.json, manifest.json)."""

    def __init__(
        self, manifest: ModelManifest, session: ort.InferenceSession, tokenizer: Tokenizer
    ):
        self.manifest = manifest
        self._session = session
        self._tokenizer = tokenizer
        self._pad_id = next(
            (i for t in _PAD_TOKENS if (i := tokenizer.token_to_id(t)) is not None), 0
        )

    @classmethod
    def load(
        cls, model_dir: Path, *, threads: int = 0, verify: bool = False, spin: bool = True
    ) -> TextEncoder:
        """Load once per process; `verify` checks every file against the manifest's sha256;
        `spin=False` stops idle worker threads from busy-waiting (batch jobs sharing the CPU)."""
        try:
            manifest = ModelManifest.read(model_dir)
            if verify:
                _verify_files(model_dir, manifest)
            session = open_session(model_dir / manifest.text_model, threads=threads, spin=spin)
            tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        except ModelUnavailable:
            raise
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ModelUnavailable(f"cannot load model from {model_dir}: {exc}") from exc
        tokenizer.no_padding()
        tokenizer.enable_truncation(manifest.max_seq_length)
        return cls(manifest, session, tokenizer)

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalised embeddings, in input order."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        # Length-sorted batches pad far less than input-ordered ones.
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._run([encodings[i] for i in idx])
        return out

    # The name ClipEncoder shares, so callers embed texts alike with either encoder.
    embed_texts = embed

    def _run(self, batch: list[Encoding]) -> np.ndarray:
        width = max(len(e.ids) for e in batch)
        feeds: dict[str, np.ndarray] = {}
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64)
        for row, enc in enumerate(batch):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        available = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        for name in self.manifest.inputs:
            feeds[name] = available[name]
        (vectors,) = self._session.run([self.manifest.output], feeds)
        return np.asarray(vectors, dtype=np.float32)


def open_session(path: Path, *, threads: int = 0, spin: bool = True) -> ort.InferenceSession:
    """An onnxruntime CPU session with the encoders' options."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _verify_files(model_dir: Path, manifest: ModelManifest) -> None:
    for name, expected in manifest.files.items():
        if sha256_file(model_dir / name) != expected:
            raise ModelUnavailable(f"{model_dir / name} does not match its manifest sha256")
