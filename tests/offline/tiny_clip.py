"""A tiny randomly initialised CLIP saved as a hub checkpoint: no trained CLIP weights can be
had offline, so tests export this one through the code users run on real models."""

from __future__ import annotations

import collections
import itertools
import json
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from offline.export_clip import image_processor_class

PROJECTION_DIM = 24
CORPUS = (
    "a photo of a cat. a photo of a dog. a picture of the red car on the street at night. "
    "the quick brown fox jumps over the lazy dog. a blue sky above the mountain and the river. "
    "people walking on the beach at sunset; children playing in the park with their parents. "
    "an old temple in china, a yellow flower in the garden, two birds sitting on a branch."
)


def _byte_map() -> dict[int, str]:
    """CLIP's (and GPT-2's) printable stand-in for each of the 256 bytes, in vocabulary order:
    printable bytes stand for themselves, the others for characters from U+0100 on."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    return {
        **{b: chr(b) for b in printable},
        **{b: chr(256 + i) for i, b in enumerate(others)},
    }


def _learn_merges(text: str, count: int) -> list[tuple[str, str]]:
    """Plain BPE over the words of `text`, the last symbol of each word marked with </w>."""
    to_symbol = _byte_map()
    frequency = collections.Counter(text.lower().replace(".", " ").split())
    words = {}
    for word in frequency:
        symbols = [to_symbol[b] for b in word.encode()]
        words[word] = [*symbols[:-1], symbols[-1] + "</w>"]
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for word, symbols in words.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += frequency[word]
        if not pairs:
            break
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merges.append(best)
        for word, symbols in words.items():
            merged, i = [], 0
            while i < len(symbols):
                if symbols[i : i + 2] == list(best):
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            words[word] = merged
    return merges


def build_tiny_clip(folder: Path, *, legacy_eos: bool = True) -> Path:
    """A random two-layer CLIP saved as a hub checkpoint is: model, tokenizer, image processor.

    `legacy_eos` keeps openai/clip-vit-base-patch32's `eos_token_id: 2`, with which the model
    pools at the highest token id; otherwise it pools at the first <|endoftext|>."""
    folder.mkdir(parents=True)
    merges = _learn_merges(CORPUS, 200)
    symbols = list(_byte_map().values())
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges)]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    lines = ["#version: 0.2", *(" ".join(m) for m in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")
    CLIPTokenizer.from_pretrained(str(folder), model_max_length=77).save_pretrained(folder)
    text = {
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2 if legacy_eos else len(vocab) - 1,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    torch.manual_seed(0)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=PROJECTION_DIM)
    CLIPModel(config).save_pretrained(folder)
    processor = image_processor_class()(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    processor.save_pretrained(folder)
    return folder
