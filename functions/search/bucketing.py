"""Which experiment a request gets in each layer.

Deterministic per layer: SHA-256(user_id + layer salt) -> a point in [0, 1) -> the experiment
whose cumulative ratio first exceeds it, so a user stays in the same arm while layers split
independently (different salts). Requests without a user id are assigned at random; a debug
override forces an experiment per layer.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping

from functions.core.errors import InvalidRequest
from functions.core.pipeline_config import LAYERS, Layer, SceneConfig


def bucket(user_id: str, salt: str) -> float:
    """A uniform, stable point in [0, 1) for this user and layer."""
    digest = hashlib.sha256((user_id + salt).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose(layer: Layer, point: float) -> str:  # type: ignore[type-arg]
    """The experiment covering `point` by cumulative ratio (config order)."""
    cumulative = 0.0
    chosen = ""
    for name, experiment in layer.experiments.items():
        if experiment.ratio <= 0:
            continue
        chosen = name
        cumulative += experiment.ratio
        if point < cumulative:
            return name
    return chosen  # rounding: the last experiment with traffic


def assign(
    config: SceneConfig,
    user_id: str | None,
    forced: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
) -> dict[str, str]:
    """{layer: experiment} for one request; `forced` (the debug override) wins."""
    forced = dict(forced or {})
    unknown_layers = sorted(set(forced) - set(LAYERS))
    if unknown_layers:
        raise InvalidRequest(
            f"debug.experiments: unknown layer {unknown_layers[0]!r}; layers: {', '.join(LAYERS)}"
        )
    chosen = {}
    for name in LAYERS:
        layer = config.layer(name)
        if name in forced:
            if forced[name] not in layer.experiments:
                known = ", ".join(layer.experiments)
                raise InvalidRequest(
                    f"debug.experiments.{name}: unknown experiment {forced[name]!r}; known: {known}"
                )
            chosen[name] = forced[name]
            continue
        point = bucket(user_id, layer.salt) if user_id else (rng or random).random()
        chosen[name] = choose(layer, point)
    return chosen
