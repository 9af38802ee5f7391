"""One place for configuration: environment variables prefixed `MMSEARCH_`, read once.

Plain pydantic rather than pydantic-settings: the latter adds a quarter of a second to every
Lambda cold start here, and these settings are flat scalars that pydantic parses from strings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from functions.core.limits import (
    FILTER_MAX_VALUES,
    MAX_BODY_BYTES,
    MAX_FILTER_FIELDS,
    MAX_QUERY_CHARS,
    MAX_TOP_K,
)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
ENV_PREFIX = "MMSEARCH_"


class Settings(BaseModel):
    """Runtime configuration shared by the three functions, the CLI and the local server.

    Each field reads `MMSEARCH_<FIELD>` (any case) when not given as an argument; an empty
    variable counts as unset."""

    model_config = ConfigDict(extra="ignore")

    home: Path = Field(Path(".mmsearch"), description="All local state lives here.")
    model_dir: Path | None = Field(None, description="Exported model folder; default under home.")
    extra_model_dirs: str = Field(
        "",
        description="Comma-separated exported text-model folders the preprocess function also "
        "loads (at init), for match experiments that name a model; empty: none.",
    )

    milvus_uri: str | None = Field(None, description="Milvus URI; default: Milvus Lite in home.")
    milvus_token: SecretStr | None = None
    collection_prefix: str = "mmsearch_"
    index_type: Literal["IVF_FLAT", "FLAT", "AUTOINDEX"] = "IVF_FLAT"
    nlist: int | None = Field(None, ge=1, le=65536, description="None: sized to the corpus.")
    nprobe: int = Field(32, ge=1, le=65536)

    mongo_uri: SecretStr | None = Field(None, description="None: the local server is started.")
    mongo_database: str = "mmsearch"
    store_timeout_s: float = Field(
        3.0, gt=0, description="Upper bound on any one store call, its retries included."
    )
    store_retries: int = Field(
        2, ge=0, le=10, description="Retries of a failed store read, within store_timeout_s."
    )
    store_retry_backoff_s: float = Field(
        0.1, ge=0, description="Retry n sleeps a random time in [0, backoff * 2**n) (full jitter)."
    )
    degrade_without_documents: bool = Field(
        False,
        description="When the documents cannot be fetched, answer the hits without them and"
        " `degraded: true` instead of a 503.",
    )
    batch_timeout_s: float = Field(60.0, gt=0, description="Store timeout for batch commands.")

    encoder_threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = auto.")
    query_threads: int = Field(
        0,
        ge=0,
        description="onnxruntime threads embedding one query (0 = every core). On an idle "
        "2-core box every core was faster (15.4-17.4 ms in-process p50 against 17.9-18.5 at "
        "one); on a box busy with other work one thread was (32.7-47.8 against 47.6-91.7).",
    )
    encode_batch_size: int = Field(32, ge=1, le=1024)

    max_query_chars: int = Field(MAX_QUERY_CHARS, ge=1)
    max_top_k: int = Field(MAX_TOP_K, ge=1, le=MAX_TOP_K, description="Larger top_k is a 422.")
    max_filter_fields: int = Field(
        MAX_FILTER_FIELDS, ge=1, description="Fields one search may filter on."
    )
    max_filter_values: int = Field(
        FILTER_MAX_VALUES, ge=1, le=FILTER_MAX_VALUES, description="Values one filter may list."
    )
    max_image_pixels: int = Field(40_000_000, ge=1, description="Larger images are refused.")
    max_image_decoded_bytes: int = Field(
        160_000_000, ge=1, description="Images whose decoded pixels would take more: a 422."
    )
    image_memory_budget_bytes: int = Field(
        384 * 2**20,
        ge=2**20,
        description="Bytes all images decoded at once may hold; more waits, then a 503.",
    )
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1, description="Larger request bodies: 413.")
    # The local server only: in AWS, API Gateway holds the connections (offline/local_server.py).
    allowed_hosts: str = Field(
        "",
        description="Comma-separated Host names the local server also answers besides "
        "127.0.0.1, localhost, [::1] and --host (DNS-rebinding guard); '*': any.",
    )
    header_timeout_s: float = Field(10.0, gt=0, description="Request headers must arrive within.")
    body_timeout_s: float = Field(30.0, gt=0, description="A body must arrive within; else 408.")
    max_concurrent_bodies: int = Field(8, ge=1, description="Bodies read at once; more: 503.")
    max_connections: int = Field(64, ge=1, description="Open connections; more: 503.")
    clip_model_dir: Path | None = Field(
        None, description="CLIP export for the image scenes; default home/models/clip if there."
    )
    model_s3_uri: str | None = Field(
        None,
        description="s3://bucket/models/<name>/[<version>/]: fetched at init into model_cache_dir,"
        " sha256-checked, and used as model_dir; without a version, LATEST picks it.",
    )
    clip_model_s3_uri: str | None = Field(None, description="The same, for clip_model_dir.")
    model_cache_dir: Path = Field(
        default_factory=lambda: _temp_dir() / "mmsearch-models",
        description="Where models from S3 are kept (Lambda: /tmp).",
    )
    media_base_url: str = Field("/media", description="Where image files are published.")
    media_bucket: str | None = Field(
        None,
        description="Bucket where images written through the API are published (under"
        " media/); None: the home's media folder, which the local server serves.",
    )

    pipeline_config: Path | None = Field(
        None, description="Pipeline YAML (scenes, layers, experiments); default: the packaged one."
    )
    pipeline_reload_s: float = Field(1.0, ge=0, description="How often the file is checked.")
    appconfig_application: str | None = Field(
        None, description="AWS AppConfig application; set: the pipeline config comes from there."
    )
    appconfig_environment: str = "prod"
    appconfig_profile: str = "pipeline"
    appconfig_max_age_s: int = Field(60, ge=0, description="AppConfig cache TTL.")

    connection_secret: str | None = Field(
        None,
        description="Secrets Manager name or ARN of JSON {milvus_uri, milvus_token, mongo_uri}"
        " (both stores in one secret: the older layout); read once at init, its values"
        " override the fields of the same name.",
    )
    milvus_secret: str | None = Field(
        None,
        description="Secrets Manager name or ARN of JSON {milvus_uri, milvus_token}: the vector"
        " store's own secret, granted only to the functions that search or index.",
    )
    mongo_secret: str | None = Field(
        None,
        description="Secrets Manager name or ARN of JSON {mongo_uri}: the document store's own"
        " secret, granted only to the functions that read or write documents.",
    )
    secret_max_age_s: int = Field(300, ge=0, description="Secret cache TTL.")

    deployment: Literal["in_process", "lambda"] = "in_process"
    preprocess_function: str | None = Field(None, description="Lambda name for split deployment.")
    summary_function: str | None = None

    debug_token: SecretStr | None = Field(
        None,
        description="Callers sending it in the x-mmsearch-debug header may force experiments "
        "(debug.experiments); compared in constant time.",
    )
    debug_token_secret: str | None = Field(
        None,
        description="Secrets Manager name or ARN of JSON {debug_token} (the AWS deployment's,"
        " generated by the stack): read once at init, overrides debug_token.",
    )
    debug_open: bool | None = Field(
        None,
        description="Any caller may force experiments; unset: yes outside AWS Lambda (the local "
        "server on 127.0.0.1), no inside it.",
    )
    writes: bool | None = Field(
        None,
        description="Serve POST /v1/documents:batchUpsert and :batchDelete; unset: yes outside "
        "AWS Lambda (the local server on 127.0.0.1), no inside it (AWS: the separate documents "
        "function, deployed with `-c writes=true`).",
    )

    @property
    def resolved_model_dir(self) -> Path:
        """The exported model folder in use."""
        return self.model_dir or self.home / "models" / DEFAULT_MODEL_NAME

    @property
    def resolved_extra_model_dirs(self) -> list[Path]:
        """The extra model folders, in the order given."""
        return [Path(p.strip()) for p in self.extra_model_dirs.split(",") if p.strip()]

    @property
    def resolved_milvus_uri(self) -> str:
        """A Milvus server URI, or the Milvus Lite file under home."""
        return self.milvus_uri or str(self.home / "milvus" / "milvus.db")

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, data: Any) -> Any:
        """Arguments win over the environment."""
        if not isinstance(data, dict):
            return data
        env = {
            name[len(ENV_PREFIX) :].lower(): value
            for name, value in os.environ.items()
            if name.upper().startswith(ENV_PREFIX) and value != ""
        }
        return {**{k: v for k, v in env.items() if k in cls.model_fields}, **data}


def _temp_dir() -> Path:
    import tempfile  # only when the field is left unset

    return Path(tempfile.gettempdir())
