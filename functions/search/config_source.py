"""Where the pipeline configuration comes from: a local file (reloaded when it changes) or
AWS AppConfig (through aws-lambda-powertools, cached for a TTL). Both keep serving the last
good configuration when a new one fails to load, and say so in the log.

A search never waits for a reload: the check runs in a background thread (one at a time),
parses outside any lock, and only a validated configuration is swapped in."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from functions.core.pipeline_config import (
    MAX_CONFIG_BYTES,
    ConfigError,
    PipelineConfig,
    parse_config,
)

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
    keep the last good configuration when parsing fails. `background=False` reloads on the
    calling thread (tests that assert what the next request sees)."""

    def __init__(self, check_every_s: float, source: str, *, background: bool = True) -> None:
        self._check_every = check_every_s
        self._source = source
        self._background = background
        self._checking = threading.Lock()  # held by the one reload in flight, never by get()
        self._checked = time.monotonic()
        self._raw = self._fetch()
        self._config = parse_config(self._raw, source)  # the first load must succeed
        self.last_error: str | None = None

    def _fetch(self) -> str:
        raise NotImplementedError

    def get(self) -> PipelineConfig:
        now = time.monotonic()
        if now - self._checked >= self._check_every and self._checking.acquire(blocking=False):
            self._checked = now
            if self._background:
                name = "pipeline-config-reload"
                threading.Thread(target=self._check, name=name, daemon=True).start()
            else:
                self._check()
        return self._config

    def _check(self) -> None:
        try:
            self._reload()
        finally:
            self._checking.release()

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
        self._raw, self.last_error = raw, None
        self._config = config  # one reference swap: a reader sees the old or the new, whole
        logger.info("pipeline config reloaded", source=self._source)


class FileConfig(_Reloading):
    """A YAML file, re-read when its modification time or size changes."""

    def __init__(self, path: Path, check_every_s: float = 1.0, *, background: bool = True):
        self._path = path
        self._stamp: tuple[int, int] | None = None
        super().__init__(check_every_s, str(path), background=background)

    def _fetch(self) -> str:
        stat = self._path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return self._raw
        self._stamp = stamp
        if stat.st_size > MAX_CONFIG_BYTES:  # refused before it is read
            raise ConfigError(
                f"{self._path}: {stat.st_size:,} bytes; the limit is {MAX_CONFIG_BYTES:,}"
            )
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
        *,
        background: bool = True,
    ) -> None:
        from aws_lambda_powertools.utilities.parameters import AppConfigProvider

        self._provider = AppConfigProvider(environment, application, boto3_client=client)
        self._profile = profile
        self._max_age = max_age_s
        source = f"appconfig:{application}/{environment}/{profile}"
        super().__init__(0.0, source, background=background)

    def _fetch(self) -> str:
        try:
            value = self._provider.get(self._profile, max_age=self._max_age)
        except Exception as exc:  # powertools wraps botocore errors in its own types
            raise OSError(f"cannot fetch {self._source}: {exc}") from exc
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
