"""What the indexing state machine passes between its steps (each crosses a Lambda boundary)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

RUNS_PREFIX = "runs/"
MAX_REPORTED_INVALID = 50  # more would crowd Step Functions' 256 KB state; all go to S3


class Step(BaseModel):
    """Every step's model: unknown keys are refused, so a typo fails loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RunRequest(Step):
    """The execution input: a JSON-lines corpus in S3 and the scene it feeds."""

    input: str = Field(pattern=r"^s3://[^/]+/.+", description="s3://bucket/key of the corpus")
    scene: str = "qa"
    replace_collection: bool = Field(
        False,
        description="Drop a real collection holding the alias's name (written by `mmsearch"
        " index`) so the alias can take its place; readers fail in between.",
    )


class InvalidLine(Step):
    """A refused input line and why."""

    line: int
    reason: str


class RunPlan(Step):
    """What validation learnt: the run's identity, where it writes and what it expects."""

    run_id: str
    input: str
    scene: str
    bucket: str = Field(description="Where the run's shards and reports are written")
    prefix: str = Field(description="Key prefix of this run's objects, ending in '/'")
    alias: str = Field(description="The name readers use")
    collection: str = Field(description="This run's own collection, behind the alias when done")
    valid: int
    invalid: int
    invalid_lines: list[InvalidLine] = Field(default_factory=list)
    replace_collection: bool = False


class ShardRef(Step):
    """One shard object, as listed in the manifest the Map reads."""

    index: int
    key: str
    docs: int


class Split(Step):
    """The shards written, the manifest's location and the engine chosen for embedding."""

    manifest_key: str
    shards: int
    engine: Literal["lambda", "sagemaker"]
    shard_docs: int


class ShardResult(Step):
    """What embedding one shard did."""

    index: int
    docs: int
    embedded: int
    skipped: int
    seconds: float


class Finalized(Step):
    """The alias switch and the counts that justified it."""

    alias: str
    collection: str
    previous: str | None
    vectors: int
    documents: int
    pruned: int
    replaced_collection: bool


class ValidateEvent(Step):
    step: Literal["validate"]
    request: RunRequest


class SplitEvent(Step):
    step: Literal["split"]
    plan: RunPlan


class EmbedEvent(Step):
    step: Literal["embed"]
    plan: RunPlan
    shard: ShardRef


class FinalizeEvent(Step):
    step: Literal["finalize"]
    plan: RunPlan
    split: Split


StepEvent = Annotated[
    ValidateEvent | SplitEvent | EmbedEvent | FinalizeEvent, Field(discriminator="step")
]
