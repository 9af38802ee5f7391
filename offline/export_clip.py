"""Export a HuggingFace CLIPModel: two ONNX graphs, tokenizer, preprocessing and a manifest."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from transformers import AutoTokenizer, CLIPModel

from functions.core.models.image_preprocessing import ImagePreprocessor
from functions.core.models.manifest import (
    IMAGE_MODEL_FILE,
    TEXT_MODEL_FILE,
    TOKENIZER_FILE,
    ImagePreprocessing,
    ModelManifest,
)
from offline import export
from offline.clip_parity import image_parity, parity_images, text_parity
from offline.export import (
    OPSET,
    OUTPUT_NAME,
    ExportError,
    Progress,
    _check_target,
    _is_unreachable,
    _model_name,
    _revision,
    _short,
    export_text_graph,
    file_hashes,
    load_sentence_model,
    parity_corpus,
    staged,
    text_pipeline,
    write_text_tokenizer,
)
from offline.export import (
    text_parity as sentence_parity,
)

DEFAULT_CLIP_SOURCE = "openai/clip-vit-base-patch32"
TEXT_INPUTS = ["input_ids", "attention_mask"]


class _TextGraph(torch.nn.Module):
    """Text tower, EOS pooling (the model's own), projection and L2 normalisation."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.model.text_model(input_ids=input_ids, attention_mask=attention_mask)
        projected = self.model.text_projection(pooled.pooler_output)
        return torch.nn.functional.normalize(projected, p=2, dim=1)


class _ImageGraph(torch.nn.Module):
    """Vision tower, projection and L2 normalisation."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.model.vision_model(pixel_values=pixel_values).pooler_output
        projected = self.model.visual_projection(pooled)
        return torch.nn.functional.normalize(projected, p=2, dim=1)


def export_clip_model(
    source: str | None,
    out_dir: Path,
    *,
    text_source: str | None = None,
    parity_sentences: int = 64,
    extra_parity_images: Sequence[Path] = (),
    progress: Progress | None = None,
) -> ModelManifest:
    """Export `source` (hub id or local CLIPModel folder; None for openai/clip-vit-base-patch32)
    into `out_dir` with a parity-checked manifest, replacing a previous export there.

    With `text_source` (a sentence-transformers model trained into that CLIP's image space,
    e.g. sentence-transformers/clip-ViT-B-32-multilingual-v1) the folder's text tower is that
    model instead of CLIP's own: queries in its languages meet CLIP's image vectors."""
    report = progress or (lambda stage, fraction: None)
    out_dir = Path(out_dir)
    _check_target(out_dir)
    location = source or DEFAULT_CLIP_SOURCE
    report("loading", 0.0)
    model, tokenizer, processor = _load(location)
    params = preprocessing_of(processor)
    dim = int(model.visual_projection.out_features)
    text_model = None if text_source is None else load_sentence_model(text_source)
    if text_model is not None and text_pipeline(text_model).dim != dim:
        raise ExportError(
            f"text tower {text_source!r} embeds into {text_pipeline(text_model).dim} dimensions, "
            f"the image tower of {location!r} into {dim}: they do not share a space"
        )
    report("loading", 1.0)

    with staged(out_dir) as tmp:
        report("exporting", 0.0)
        sentences = parity_corpus(parity_sentences)
        if text_model is None:
            _export_graphs(model, tokenizer, params, tmp)
            max_length = int(model.config.text_config.max_position_embeddings)
            _write_tokenizer(tokenizer, max_length, tmp / TOKENIZER_FILE)
            report("exporting", 1.0)
            text_check = text_parity(model, tokenizer, max_length, tmp, sentences)
            inputs, pooling, modules = TEXT_INPUTS, "eos", None
        else:
            _export_graphs(model, tokenizer, params, tmp, text=False)
            inputs = export_text_graph(text_model, tmp / TEXT_MODEL_FILE, normalize_output=True)
            write_text_tokenizer(text_model, tmp / TOKENIZER_FILE)
            max_length = int(text_model.max_seq_length)
            report("exporting", 1.0)
            text_check = sentence_parity(
                text_model, tmp / TEXT_MODEL_FILE, sentences, lambda *_: None, normalize=True
            )
            pipeline = text_pipeline(text_model)
            pooling, modules = pipeline.pooling, pipeline.modules
        report("parity", 0.5)
        images = [*parity_images(), *(Path(p).read_bytes() for p in extra_parity_images)]
        image_check = image_parity(model, processor, params, tmp, images)
        report("parity", 1.0)
        worst = min(text_check.min_cosine, image_check.min_cosine)
        if worst < export.MIN_COSINE:
            raise ExportError(
                f"ONNX output drifted from PyTorch: min cosine {worst:.8f} < {export.MIN_COSINE}, "
                f"text max |diff| {text_check.max_abs_diff:.2e}, "
                f"image max |diff| {image_check.max_abs_diff:.2e}"
            )
        manifest = ModelManifest(
            kind="clip",
            name=clip_model_name(source, text_source),
            source=location,
            revision=_revision(location),
            dim=dim,
            max_seq_length=max_length,
            pooling=pooling,
            normalize=True,
            modules=modules,
            inputs=inputs,
            output=OUTPUT_NAME,
            opset=OPSET,
            files=file_hashes(tmp),
            parity=text_check,
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            text_model=TEXT_MODEL_FILE,
            image_model=IMAGE_MODEL_FILE,
            image_preprocessing=params,
            image_parity=image_check,
            text_source=text_source,
        )
        manifest.write(tmp)
    return manifest


def clip_model_name(source: str | None, text_source: str | None = None) -> str:
    """The folder name an export of `source` gets by default: the repository name, or the
    text tower's when it is not CLIP's own (its model card names the pairing)."""
    return _model_name(text_source or source or DEFAULT_CLIP_SOURCE)


def image_processor_class() -> Any:
    """transformers' PIL CLIP image processor: CLIPImageProcessorPil in 5.x (no torchvision)."""
    try:
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:  # transformers 4.x: CLIPImageProcessor is the PIL one
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


def preprocessing_of(processor: Any) -> ImagePreprocessing:
    """The processor's parameters as the manifest stores them (sizes as plain dicts of ints)."""

    def size(value: Any) -> dict[str, int]:
        items = value.items() if hasattr(value, "items") else vars(value).items()
        return {k: int(v) for k, v in items if v is not None}

    return ImagePreprocessing(
        do_convert_rgb=bool(getattr(processor, "do_convert_rgb", True)),
        do_resize=bool(processor.do_resize),
        size=size(processor.size),
        resample=int(processor.resample),
        do_center_crop=bool(processor.do_center_crop),
        crop_size=size(processor.crop_size),
        do_rescale=bool(processor.do_rescale),
        rescale_factor=float(processor.rescale_factor),
        do_normalize=bool(processor.do_normalize),
        image_mean=[float(v) for v in processor.image_mean],
        image_std=[float(v) for v in processor.image_std],
    )


def _load(location: str) -> tuple[CLIPModel, Any, Any]:
    """Model, fast tokenizer and image processor, on CPU; failures become one-line errors."""
    folder = Path(location).expanduser()
    if not folder.is_dir() and (location.startswith((".", "/", "~")) or location.count("/") > 1):
        raise ExportError(f"model folder {location!r} does not exist")
    where = str(folder) if folder.is_dir() else location
    attempts = [{}] if folder.is_dir() else [{"local_files_only": True}, {}]
    error: Exception | None = None
    # Offline, the hub client retries DNS failures for ~80 s: its cache is tried first.
    for options in attempts:
        try:
            model = CLIPModel.from_pretrained(where, attn_implementation="eager", **options)
            tokenizer = AutoTokenizer.from_pretrained(where, **options)
            processor = image_processor_class().from_pretrained(where, **options)
        except Exception as exc:
            error = exc
            continue
        if not getattr(tokenizer, "is_fast", False):
            raise ExportError(f"{location!r} has no fast tokenizer to ship as tokenizer.json")
        return model.eval(), tokenizer, processor
    assert error is not None
    if folder.is_dir():
        raise ExportError(f"cannot load CLIP folder {location!r}: {_short(error)}") from error
    if _is_unreachable(error):
        raise ExportError(
            f"cannot load model {location!r}: not a local folder and the HuggingFace hub is "
            f"unreachable ({_short(error)}). Pass a local CLIPModel folder with --model."
        ) from error
    raise ExportError(f"cannot load model {location!r} from the hub: {_short(error)}") from error


def _export_graphs(
    model: CLIPModel, tokenizer: Any, params: ImagePreprocessing, folder: Path, text: bool = True
) -> None:
    """Trace both towers (the image tower only, if not `text`) to ONNX: dynamic batch (and
    sequence) axes, fixed image size."""
    sample = tokenizer(["a photo", "a somewhat longer caption, with padding"], padding=True)
    text_args = tuple(torch.tensor(sample[name], dtype=torch.int64) for name in TEXT_INPUTS)
    height, width = ImagePreprocessor(params).output_size
    image_args = (torch.zeros(2, 3, height, width),)
    text_axes: dict[str, Any] = {n: {0: "batch", 1: "sequence"} for n in TEXT_INPUTS}
    jobs = [
        (_TextGraph(model), text_args, TEXT_INPUTS, text_axes, TEXT_MODEL_FILE),
        (
            _ImageGraph(model),
            image_args,
            ["pixel_values"],
            {"pixel_values": {0: "batch"}},
            IMAGE_MODEL_FILE,
        ),
    ]
    for graph, args, names, axes, file in jobs if text else jobs[1:]:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side asserts are noise
            torch.onnx.export(
                graph.eval(),
                args,
                str(folder / file),
                input_names=names,
                output_names=[OUTPUT_NAME],
                dynamic_axes={**axes, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )


def _write_tokenizer(tokenizer: Any, max_length: int, path: Path) -> None:
    """The fast tokenizer, truncating at the text tower's positions and never padding."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_truncation(max_length=max_length)
    backend.no_padding()
    backend.save(str(path))
