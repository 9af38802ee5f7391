"""The pipeline of a declared scene that the pipeline configuration does not name: hybrid
matching (dense + BM25, fused in Milvus) on the scene's text, score ranking, and its
returned fields as the summary, so a scene needs no pipeline entry to be searched."""

from __future__ import annotations

from functions.core.pipeline_config import SceneConfig
from functions.core.scenes import Scene


def default_scene_config(scene: Scene) -> SceneConfig:
    """One experiment per layer, built from the scene's declaration."""
    shown = [f for f in scene.document_fields if f != "id"]
    texts = [f for f in scene.text_fields if scene.fields[f].type == "text"]
    summary: dict[str, object] = {"fields": shown}
    if texts and texts[-1] in shown:
        summary["snippet_field"] = texts[-1]
    match = (
        {"kind": "dense", "space": "image"}
        if scene.query == "image"
        else {"kind": "hybrid", "space": "text", "fusion": "rrf"}
    )

    def layer(name: str, params: dict[str, object]) -> dict[str, object]:
        return {
            "salt": f"{scene.name}-{name}-1",
            "experiments": {"default": {"ratio": 1.0, "params": params}},
        }

    return SceneConfig.model_validate(
        {
            "qp": layer("qp", {}),
            "match": layer("match", {**match, "candidates": 100}),
            "rank": layer("rank", {}),
            "summary": layer("summary", summary),
        }
    )
