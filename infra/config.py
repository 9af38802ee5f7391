"""Deployment configuration: one typed model read from CDK context (cdk.json or `-c k=v`)."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

FunctionName = Literal["preprocess", "search", "summary", "indexing", "documents"]
# The functions every deployment has (the documents function exists only with `writes`).
FUNCTIONS: tuple[FunctionName, ...] = ("preprocess", "search", "summary", "indexing")


MEMORY_MB: dict[FunctionName, int] = {
    "preprocess": 2048,
    "search": 1024,
    "summary": 512,
    "indexing": 3008,
    "documents": 2048,  # embeds up to 100 documents a call, as preprocess embeds queries
}
TIMEOUT_S: dict[FunctionName, int] = {
    "preprocess": 10,
    "search": 15,
    "summary": 10,
    "indexing": 900,
    "documents": 30,  # 100 documents: ~1.5 s measured locally (embed + both stores + flush)
}
# Per-route throttles (steady requests per second, burst) under the stage's own: embedding 64
# texts costs ~9 s of CPU, so /v1/embed gets the least.
ROUTE_THROTTLE: dict[str, tuple[float, int]] = {
    "POST /v1/search": (50, 100),
    "GET /v1/scenes": (10, 20),
    "GET /v1/health": (10, 20),
    "POST /v1/embed": (5, 10),
    "POST /v1/documents:batchGet": (20, 40),
    "POST /v1/documents:batchUpsert": (5, 10),
    "POST /v1/documents:batchDelete": (5, 10),
}


def function_name(prefix: str, name: str) -> str:
    """A function's physical name, known to every stack without a cross-stack export (alarms
    and the dashboard name functions by it, so switching `split_functions` removes no export
    another stack imports)."""
    return f"{prefix}-{name}"


class DeployConfig(BaseModel):
    """Everything a deployment may vary. Context keys are the field names (snake_case)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        "mmsearch", pattern=r"^[a-z][a-z0-9-]{1,15}$", description="Stack and bucket prefix."
    )
    account: str | None = Field(None, description="AWS account; None: the CLI's default.")
    region: str | None = Field(None, description="AWS region; None: the CLI's default.")

    memory_mb: dict[FunctionName, int] = Field(default_factory=lambda: dict(MEMORY_MB))
    timeout_s: dict[FunctionName, int] = Field(default_factory=lambda: dict(TIMEOUT_S))
    snap_start: bool = Field(True, description="SnapStart on the preprocess function.")
    split_functions: bool = Field(
        True,
        description="True: search invokes preprocess and summary; False: one function runs all.",
    )

    auth: Literal["none", "iam", "jwt"] = "none"
    jwt_issuer: str | None = None
    jwt_audience: list[str] = Field(default_factory=list)
    throttle_rate: float = Field(50, gt=0, description="Steady requests per second, per stage.")
    throttle_burst: int = Field(100, gt=0)
    route_throttle: dict[str, tuple[float, int]] = Field(
        default_factory=lambda: dict(ROUTE_THROTTLE),
        description="Per route key: (rate, burst); a partial mapping changes only its routes.",
    )
    private_embed_and_documents: bool = Field(
        True,
        description="POST /v1/embed and /v1/documents:batchGet take IAM-signed callers only"
        " (the page uses neither); false: they follow `auth` like search.",
    )
    writes: bool = Field(
        False,
        description="Deploy the documents function serving POST /v1/documents:batchUpsert and"
        " :batchDelete, IAM-signed callers only whatever `auth` says; false: no write route.",
    )
    search_reserved_concurrency: int | None = Field(
        None,
        ge=1,
        description="Concurrency reserved for (and capping) the search function; None: none, "
        "since Lambda keeps 100 unreserved and new accounts may have a limit of 10.",
    )

    connection_secret_arn: str | None = Field(
        None,
        description="An existing secret holding both stores' JSON {milvus_uri, milvus_token,"
        " mongo_uri} (the older one-secret layout); None: one secret per store.",
    )
    milvus_secret_arn: str | None = Field(
        None,
        description="An existing secret holding JSON {milvus_uri, milvus_token}; None: the stack"
        " creates it from the NoEcho parameters MilvusUri and MilvusToken.",
    )
    mongo_secret_arn: str | None = Field(
        None,
        description="An existing secret holding JSON {mongo_uri}; None: the stack creates it"
        " from the NoEcho parameter MongoUri.",
    )
    model_name: str = "all-MiniLM-L6-v2"
    model_version: str | None = Field(
        None,
        description="Serve models/<name>/<version>/ pushed earlier (mmsearch push-model); None:"
        " ship the exported model_dir, its version being its content hash.",
    )
    model_dir: str | None = Field(
        None,
        description="Exported model folder shipped with the deployment; None: where `mmsearch"
        " export` writes it (MMSEARCH_HOME/models/<name>).",
    )

    vpc_id: str | None = Field(None, description="Place the functions in this VPC.")
    subnet_ids: list[str] = Field(default_factory=list)
    security_group_ids: list[str] = Field(default_factory=list)
    availability_zones: list[str] = Field(default_factory=list)
    route_table_ids: list[str] = Field(
        default_factory=list, description="The subnets' route tables (the S3 gateway endpoint)."
    )
    vpc_endpoints: bool = Field(
        True,
        description="Create the S3 gateway and Secrets Manager / Lambda interface endpoints in"
        " the VPC; false: the VPC already reaches them (endpoints of its own, or a NAT).",
    )

    existing_buckets: bool = Field(
        False,
        description="The model and data buckets already exist (a `make destroy` retains them):"
        " adopt them by name instead of creating them.",
    )
    sagemaker: bool = Field(
        False,
        description="Add the SageMaker indexing branch (its image needs Docker at deploy);"
        " false: every corpus embeds on Lambda.",
    )

    web_origin: str | None = Field(
        None, description="The page's origin for CORS; None: the CloudFront distribution's."
    )
    alarm_email: str | None = None
    alarm_5xx_percent: float = Field(1.0, gt=0, description="Alarm above this 5xx share.")
    alarm_p99_ms: float = Field(1500, gt=0, description="Alarm above this p99 API latency.")
    sagemaker_min_docs: int = Field(
        200_000, ge=1, description="Corpora at least this large embed on SageMaker, else Lambda."
    )
    shard_docs: int = Field(2_000, ge=1, description="Documents per indexing shard.")
    scenes_file: str | None = Field(
        None,
        description="A scenes YAML of your own (functions/core/scenes.yaml's format), checked"
        " at synth and shipped to every function and indexing job; None: the packaged scenes.",
    )

    @field_validator("memory_mb", "timeout_s", "route_throttle", mode="before")
    @classmethod
    def _over_defaults(cls, value: Any, info: ValidationInfo) -> Any:
        """A partial mapping changes only the functions (or routes) it names."""
        defaults: dict[str, Any] = {
            "memory_mb": MEMORY_MB,
            "timeout_s": TIMEOUT_S,
            "route_throttle": ROUTE_THROTTLE,
        }[info.field_name or ""]
        return {**defaults, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _consistent(self) -> DeployConfig:
        if self.auth == "jwt" and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError("auth 'jwt' needs jwt_issuer and jwt_audience")
        if self.vpc_id and not self.subnet_ids:
            raise ValueError("vpc_id needs subnet_ids")
        if unknown := set(self.route_throttle) - set(ROUTE_THROTTLE):
            raise ValueError(f"route_throttle names unknown routes {sorted(unknown)}")
        if self.scenes_file:
            # The functions' own loader: a file they would refuse fails synth, with its message.
            from infra.scenes import check_scenes_file

            check_scenes_file(self.scenes_file)
        return self

    @classmethod
    def from_context(cls, get: Any) -> DeployConfig:
        """Read from a CDK node's `try_get_context`; `-c` values arrive as strings, so JSON
        values are decoded when a field expects a number, a list or a mapping."""
        values: dict[str, Any] = {}
        for field in cls.model_fields:
            raw = get(field)
            if raw is None:
                continue
            textual = cls.model_fields[field].annotation in (str, str | None)
            if isinstance(raw, str) and not textual:
                with contextlib.suppress(json.JSONDecodeError):
                    raw = json.loads(raw)
            values[field] = raw
        return cls(**values)
