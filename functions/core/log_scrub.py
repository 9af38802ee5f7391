"""Credentials never reach the log: every record, from our code or a dependency's (pymilvus
logs its connection URI, `http://user:pass@milvus.example.com:19530`, when a connection fails), has
passwords in URIs and `token=`/`password:`-style values masked before any handler sees it."""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
# scheme://user:password@ (or scheme://token@): the whole userinfo goes.
_URI_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@'\"]+@")
# token=..., "password": "...", Authorization: Bearer ..., api_key=..., secret: ...
_ASSIGNED = re.compile(
    r"(?i)\b((?:[a-z_]*_)?(?:token|password|passwd|pwd|secret|api[_-]?key|access[_-]?key|"
    r"authorization)[\"']?\s*[:=]\s*[\"']?)(?:bearer\s+|basic\s+)?[^\s\"'&,;)}\]]+"
)
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def scrub(text: str) -> str:
    """`text` with credentials masked."""
    return _ASSIGNED.sub(rf"\g<1>{MASK}", _URI_USERINFO.sub(rf"\g<1>{MASK}@", text))


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub_value(v) for v in value)
    return value


class CredentialFilter(logging.Filter):
    """Masks credentials in a record's message and its extra fields (the structured keys
    powertools' Logger adds); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str | dict):
            return True
        try:
            message = record.getMessage() if isinstance(record.msg, str) else record.msg
        except Exception:  # a bad format string: keep what there is
            message = str(record.msg)
        record.msg, record.args = _scrub_value(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD:
                setattr(record, key, _scrub_value(value))
        return True


_FILTER = CredentialFilter()
_installed = False


def install() -> None:
    """Scrub every log record from now on, whichever logger makes it (a record factory), and
    every formatted line whichever handler prints it (tracebacks included: an exception's
    text can hold a URI); the root and dependency loggers get the filter too. Idempotent;
    called at init by every entry point that opens a store."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()
    format_record = logging.Handler.format

    def scrubbed_format(handler: logging.Handler, record: logging.LogRecord) -> str:
        return scrub(format_record(handler, record))

    logging.Handler.format = scrubbed_format  # type: ignore[method-assign,assignment]

    def scrubbed_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _FILTER.filter(record)
        return record

    logging.setLogRecordFactory(scrubbed_record)
    for name in ("", "pymilvus", "pymongo", "botocore", "mmsearch"):
        logger = logging.getLogger(name)
        logger.addFilter(_FILTER)
        for handler in logger.handlers:
            handler.addFilter(_FILTER)
