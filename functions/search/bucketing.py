"""Which experiment a request gets in each layer.

Deterministic per layer: SHA-256(user_id + layer salt) -> a point in [0, 1) -> the experiment
whose cumulative ratio first exceeds it, so a user stays in the same arm while layers split
independently (different salts). Requests without a user id are assigned at random; a debug
override forces an experiment per layer, for allowed callers only (`DebugAccess`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
from collections.abc import Mapping

from functions.core.errors import DebugNotAllowed, InvalidRequest
from functions.core.http import caller
from functions.core.pipeline_config import LAYERS, Layer, SceneConfig
from functions.core.settings import Settings


def bucket(user_id: str, salt: str) -> float:
    """A uniform, stable point in [0, 1) for this user and layer."""
    # surrogatepass: any str buckets (a lone surrogate is refused later, by validation).
    digest = hashlib.sha256((user_id + salt).encode("utf-8", "surrogatepass")).digest()
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


class DebugAccess:
    """Who may force experiments with `debug.experiments`: any caller where `open`, else
    only one presenting the deployment's debug token in the `x-mmsearch-debug` header
    (compared in constant time). Forced requests stay out of per-experiment metrics."""

    HEADER = "x-mmsearch-debug"

    def __init__(self, *, open: bool, token: str | None = None) -> None:
        self.open = open
        self._token = token.encode("utf-8") if token else None

    @classmethod
    def from_settings(cls, settings: Settings) -> DebugAccess:
        """`MMSEARCH_DEBUG_OPEN` (unset: open outside AWS Lambda, closed inside it) and
        `MMSEARCH_DEBUG_TOKEN`."""
        open_ = settings.debug_open
        if open_ is None:
            open_ = "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
        token = settings.debug_token.get_secret_value() if settings.debug_token else None
        return cls(open=open_, token=token)

    def allows(self, presented: str | None) -> bool:
        """Whether a caller presenting `presented` (the header's value) may force arms."""
        if self.open:
            return True
        if self._token is None or not presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), self._token)

    def forced(self, experiments: Mapping[str, str] | None) -> Mapping[str, str] | None:
        """The experiments the current caller forces; `DebugNotAllowed` if it may not."""
        if experiments and not self.allows(caller.header(self.HEADER)):
            raise DebugNotAllowed(
                f"debug.experiments needs the {self.HEADER} header with this deployment's "
                "debug token"
            )
        return experiments or None
