"""Store connections from AWS Secrets Manager: one JSON secret read once at init.

The secret holds `{"milvus_uri": ..., "milvus_token": ..., "mongo_uri": ...}` (`milvus_token`
may be null or absent). Its values are never logged nor put in an error message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

if TYPE_CHECKING:
    from functions.core.settings import Settings

log = logging.getLogger("mmsearch")


class ConnectionSecretError(RuntimeError):
    """The connection secret cannot be read or is not the JSON object it must be."""


class ConnectionSecret(BaseModel):
    """The secret's shape; every value is a SecretStr, so no repr shows one."""

    model_config = ConfigDict(extra="forbid")

    milvus_uri: SecretStr
    milvus_token: SecretStr | None = None
    mongo_uri: SecretStr

    @field_validator("milvus_uri", "mongo_uri")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value


def resolve_connection(settings: Settings, fetch: Any = None) -> Settings:
    """Settings with the store connections from `connection_secret` (unchanged when unset).
    `fetch(name, max_age)` returns the decoded secret; default: Powertools' `get_secret`."""
    name = settings.connection_secret
    if not name:
        return settings
    secret = read_connection_secret(name, settings.secret_max_age_s, fetch or _get_secret)
    log.info("store connections read from secret %s", name)
    return settings.model_copy(
        update={
            "milvus_uri": secret.milvus_uri.get_secret_value(),
            "milvus_token": secret.milvus_token,
            "mongo_uri": secret.mongo_uri,
        }
    )


def read_connection_secret(name: str, max_age_s: int, fetch: Any) -> ConnectionSecret:
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
        return ConnectionSecret.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise ConnectionSecretError(
            f"connection secret {name!r} must be JSON {{milvus_uri, milvus_token, mongo_uri}}:"
            f" {problems}"
        ) from None


def _get_secret(name: str, max_age_s: int) -> Any:
    # Imported here: only deployments with a secret pay for Powertools' parameters and boto3.
    from aws_lambda_powertools.utilities.parameters import get_secret

    return get_secret(name, transform="json", max_age=max_age_s)


def _is_transform_error(exc: Exception) -> bool:
    return type(exc).__name__ == "TransformParameterError"
