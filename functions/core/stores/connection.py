"""Store connections from AWS Secrets Manager: one secret per store, read once at init.

`milvus_secret` holds `{"milvus_uri": ..., "milvus_token": ...}` (`milvus_token` may be null
or absent) and `mongo_secret` holds `{"mongo_uri": ...}`, so a function is granted only the
credentials of the stores it talks to. `connection_secret`, one secret with all three keys,
is the older layout and still read. Values are never logged nor put in an error message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

if TYPE_CHECKING:
    from functions.core.settings import Settings

log = logging.getLogger("mmsearch")


class ConnectionSecretError(RuntimeError):
    """A connection secret cannot be read or is not the JSON object it must be."""


def _not_empty(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


class MilvusSecret(BaseModel):
    """The vector store's secret; every value is a SecretStr, so no repr shows one."""

    model_config = ConfigDict(extra="forbid")

    milvus_uri: SecretStr
    milvus_token: SecretStr | None = None

    _uri = field_validator("milvus_uri")(_not_empty)


class MongoSecret(BaseModel):
    """The document store's secret: extra keys (a Milvus token) are refused, not carried."""

    model_config = ConfigDict(extra="forbid")

    mongo_uri: SecretStr

    _uri = field_validator("mongo_uri")(_not_empty)


class ConnectionSecret(MilvusSecret):
    """Both stores in one secret (the older layout)."""

    mongo_uri: SecretStr

    _mongo = field_validator("mongo_uri")(_not_empty)


Secret = MilvusSecret | MongoSecret | ConnectionSecret


def resolve_connection(settings: Settings, fetch: Any = None) -> Settings:
    """Settings with the store connections from the configured secrets (unchanged when none
    is set). `fetch(name, max_age)` returns a decoded secret; default: Powertools' `get_secret`."""
    fetch = fetch or _get_secret
    update: dict[str, Any] = {}
    sources: list[tuple[str | None, type[Secret]]] = [
        (settings.connection_secret, ConnectionSecret),
        (settings.milvus_secret, MilvusSecret),
        (settings.mongo_secret, MongoSecret),
    ]
    for name, shape in sources:
        if not name:
            continue
        secret = read_secret(name, shape, settings.secret_max_age_s, fetch)
        log.info("store connections read from secret %s", name)
        update |= {key: getattr(secret, key) for key in type(secret).model_fields}
    if not update:
        return settings
    if "milvus_uri" in update:
        update["milvus_uri"] = update["milvus_uri"].get_secret_value()
    return settings.model_copy(update=update)


def read_secret(name: str, shape: type[Secret], max_age_s: int, fetch: Any) -> Secret:
    """The validated secret; errors name the secret and the fields, never a value."""
    try:
        value = fetch(name, max_age_s)
    except Exception as exc:
        # Retrieval errors carry AWS's message (no value); a JSON error's text is not shown.
        reason = "it is not valid JSON" if _is_transform_error(exc) else str(exc)
        raise ConnectionSecretError(f"cannot read connection secret {name!r}: {reason}") from None
    if not isinstance(value, dict):
        raise ConnectionSecretError(f"connection secret {name!r} is not a JSON object")
    try:
        return shape.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        keys = ", ".join(shape.model_fields)
        raise ConnectionSecretError(
            f"connection secret {name!r} must be JSON {{{keys}}}: {problems}"
        ) from None


def read_connection_secret(name: str, max_age_s: int, fetch: Any) -> ConnectionSecret:
    """The older one-secret layout, validated (kept for callers of the earlier API)."""
    secret = read_secret(name, ConnectionSecret, max_age_s, fetch)
    assert isinstance(secret, ConnectionSecret)
    return secret


def _get_secret(name: str, max_age_s: int) -> Any:
    # Imported here: only deployments with a secret pay for Powertools' parameters and boto3.
    from aws_lambda_powertools.utilities.parameters import get_secret

    return get_secret(name, transform="json", max_age=max_age_s)


def _is_transform_error(exc: Exception) -> bool:
    return type(exc).__name__ == "TransformParameterError"
