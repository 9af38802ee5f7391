"""Where the pipeline configuration comes from: a local file (reloaded when it changes) or
AWS AppConfig (through aws-lambda-powertools, cached for a TTL). Both keep serving the last
good configuration when a new one fails to load, and say so in the log."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from functions.core.pipeline_config import ConfigError, PipelineConfig, parse_config

logger = Logger(service="mmsearch-search", child=True)

DEFAULT_CONFIG = Path(__file__).resolve().parent / "pipeline.yaml"


class ConfigSource(Protocol):
    def get(self) -> PipelineConfig:
        """The configuration to use for this request."""


class StaticConfig:
    """A fixed configuration (tests, evaluation)."""

    def __init__(self, config: PipelineConfig) -> None:
        self._config = config

    def get(self) -> PipelineConfig:
        return self._config


class _Reloading:
    """Shared logic: fetch raw text at most every `check_every_s`, parse when it changed,
    keep the last good configuration when parsing fails."""

    def __init__(self, check_every_s: float, source: str) -> None:
        self._check_every = check_every_s
        self._source = source
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._raw = self._fetch()
        self._config = parse_config(self._raw, source)  # the first load must succeed
        self.last_error: str | None = None

    def _fetch(self) -> str:
        raise NotImplementedError

    def get(self) -> PipelineConfig:
        now = time.monotonic()
        if now - self._checked < self._check_every:
            return self._config
        with self._lock:
            if now - self._checked >= self._check_every:
                self._checked = now
                self._reload()
        return self._config

    def _reload(self) -> None:
        try:
            raw = self._fetch()
            if raw == self._raw:
                return
            config = parse_config(raw, self._source)
        except (ConfigError, OSError) as exc:
            if str(exc) != self.last_error:
                logger.error(
                    "pipeline config reload failed; keeping the last good one", error=str(exc)
                )
            self.last_error = str(exc)
            return
        self._raw, self._config, self.last_error = raw, config, None
        logger.info("pipeline config reloaded", source=self._source)


class FileConfig(_Reloading):
    """A YAML file, re-read when its modification time or size changes."""

    def __init__(self, path: Path, check_every_s: float = 1.0) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        super().__init__(check_every_s, str(path))

    def _fetch(self) -> str:
        stat = self._path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return self._raw
        self._stamp = stamp
        return self._path.read_text(encoding="utf-8")


class AppConfig(_Reloading):
    """An AWS AppConfig hosted configuration profile through powertools' AppConfigProvider,
    which caches it for `max_age_s` (the TTL) before polling AppConfig again."""

    def __init__(
        self,
        application: str,
        environment: str,
        profile: str,
        max_age_s: int = 60,
        client: Any = None,
    ) -> None:
        from aws_lambda_powertools.utilities.parameters import AppConfigProvider

        self._provider = AppConfigProvider(environment, application, boto3_client=client)
        self._profile = profile
        self._max_age = max_age_s
        super().__init__(0.0, f"appconfig:{application}/{environment}/{profile}")

    def _fetch(self) -> str:
        try:
            value = self._provider.get(self._profile, max_age=self._max_age)
        except Exception as exc:  # powertools wraps botocore errors in its own types
            raise OSError(f"cannot fetch {self._source}: {exc}") from exc
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
