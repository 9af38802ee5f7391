"""Batch indexing on Step Functions: Validate → Split → Engine (Lambda | SageMaker) → a
distributed Map over the shards → Finalize (index, verify both stores, switch the alias) →
Indexed; any step failing after its retries ends in `IndexingFailed` with its error and cause.

One function runs every step (`indexing.batch.handler`); the SageMaker branch (opt-in,
`-c sagemaker=true`: its image asset needs Docker at deploy) runs the same shard code in a
container (`python -m indexing.batch.processing`), one processing job a shard. Without it the
Engine choice is left out and every corpus embeds on Lambda.
Each Map writes its children's results to S3 (ResultWriter) instead of returning them in the
state (256 KB at most: a cap on the shard count); Finalize reads the shards themselves.
Buckets are named by `infra.storage.bucket_name` (no cross-stack exports, nameable findings).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import DeployConfig, function_name
from infra.functions import placement, service_function
from infra.nag import acknowledge, arn_pattern
from infra.processing import PROCESSING_JOBS, PROCESSING_LOGS, ProcessingJobs
from infra.storage import bucket_arn, bucket_name, nag_bucket_arn

HANDLER = "indexing.batch.handler.handler"
RUNS = "runs/"  # indexing.batch.events.RUNS_PREFIX: shards, manifests, reports
MEDIA = "media/"  # indexing.media.S3_PREFIX: image originals and thumbnails, media bucket
MAP_RESULTS = f"{RUNS}map-results"  # each distributed Map run's ResultWriter output
# Without SageMaker no corpus may choose it: the split step compares against this.
NEVER = str(2**62)
SAGEMAKER_SHARD_DOCS = 50_000  # one processing job each; a DeployConfig field if it must vary
LAMBDA_MAP_CONCURRENCY = 10  # shards written at once: the stores' write load, not Lambda's
SAGEMAKER_MAP_CONCURRENCY = 4
# Worth another try: the stores did not answer, or Lambda itself hiccuped. Bad input, failed
# verification and alias conflicts fail at once.
TRANSIENT = [
    "StoreUnavailable",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
_PLAN = {"plan": sfn.JsonPath.object_at("$.plan")}
RESULT_WRITER_V2 = "@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2"


class IndexingStack(Stack):
    """The indexing function, the processing image and role, and the state machine."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        code: lambda_.Code,
        environment: dict[str, str],
        data_bucket: s3.IBucket,
        model_bucket: s3.IBucket,
        secret: secretsmanager.ISecret,
        function_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        for bucket in (data_bucket, model_bucket):  # referenced by name: deploy after them
            if Stack.of(bucket) is not self:
                self.add_stack_dependency(Stack.of(bucket))
        self.config = config
        # None: the configured VPC placement (if any), made in this stack.
        options = placement(self, config) if function_options is None else dict(function_options)
        self.data = s3.Bucket.from_bucket_name(self, "Data", bucket_name(config, "data"))
        self.batch_environment = {
            **environment,
            "MMSEARCH_BATCH_BUCKET": self.data.bucket_name,
            "MMSEARCH_SHARD_DOCS": str(config.shard_docs),
            "MMSEARCH_SAGEMAKER_MIN_DOCS": (
                str(config.sagemaker_min_docs) if config.sagemaker else NEVER
            ),
            "MMSEARCH_SAGEMAKER_SHARD_DOCS": str(SAGEMAKER_SHARD_DOCS),
            # Image runs publish originals and thumbnails here (infra.web serves /media/*).
            "MMSEARCH_MEDIA_BUCKET": bucket_name(config, "media"),
        }
        self.function = service_function(
            self,
            "Indexer",
            config=config,
            name="indexing",
            code=code,
            handler=HANDLER,
            environment=self.batch_environment,
            # Validation and splitting spool the corpus through /tmp.
            options={**options, "ephemeral_storage_size": Size.gibibytes(4)},
        )
        self.function_name = function_name(config.name, "indexing")  # for other stacks
        self.processing: ProcessingJobs | None = None
        if config.sagemaker:
            self.processing = ProcessingJobs(
                self,
                "Processing",
                data_bucket_arn=bucket_arn(config, "data"),
                scenes_file=config.scenes_file,
            )
        self._grant_store_access(secret)
        self.state_machine = self._state_machine(options)
        if self.processing is not None:
            self.processing.allow(self.state_machine)
        self._acknowledge()

    def _grant_store_access(self, secret: secretsmanager.ISecret) -> None:
        """Both runners read shards, the model and the secret; the function also reads the
        input corpus (anywhere in the data bucket) and writes the run's objects."""
        data = bucket_arn(self.config, "data")
        grantees = [self.function.grant_principal]
        if self.processing is not None:
            grantees.append(self.processing.role)
        for grantee in grantees:
            grantee.add_to_principal_policy(
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{data}/{RUNS}*"])
            )
            self._read_model(grantee)
            secret.grant_read(grantee)
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{data}/*"])
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[f"{data}/{RUNS}*"])
        )
        media = bucket_arn(self.config, "media")
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[f"{media}/{MEDIA}*"])
        )

    def _read_model(self, grantee: iam.IPrincipal) -> None:
        """Objects under this model's prefix: the runtime fetches what the manifest lists."""
        prefix = f"{bucket_arn(self.config, 'models')}/models/{self.config.model_name}/*"
        grantee.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[prefix])
        )

    def _state_machine(self, options: dict[str, Any]) -> sfn.StateMachine:
        failed = sfn.Fail(
            self,
            "IndexingFailed",
            comment="The failing step's error (its exception class) and cause (its message).",
            error_path="$.error.Error",
            cause_path="$.error.Cause",
        )
        embed_on_lambda = self._invoke(
            "EmbedShard", {"step": "embed", **_PLAN, "shard": sfn.JsonPath.object_at("$.shard")}
        )
        on_lambda = self._shard_map(
            "EmbedShardsOnLambda", embed_on_lambda, failed, LAMBDA_MAP_CONCURRENCY
        )
        engine: sfn.IChainable = on_lambda
        if self.processing is not None:
            engine = (
                sfn.Choice(self, "Engine", comment="SageMaker from sagemaker_min_docs documents on")
                .when(
                    sfn.Condition.string_equals("$.split.engine", "sagemaker"),
                    self._shard_map(
                        "EmbedShardsOnSageMaker",
                        self.processing.job_state(self, self.batch_environment, options),
                        failed,
                        SAGEMAKER_MAP_CONCURRENCY,
                    ),
                )
                .otherwise(on_lambda)
                .afterwards()
            )
        finalize_arguments = {**_PLAN, "split": sfn.JsonPath.object_at("$.split")}
        chain = (
            self._step("Validate", {"request": sfn.JsonPath.entire_payload}, "$.plan", failed)
            .next(self._step("Split", _PLAN, "$.split", failed))
            .next(engine)
            .next(self._step("Finalize", finalize_arguments, "$.result", failed))
            .next(sfn.Succeed(self, "Indexed"))
        )
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        return sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{self.config.name}-indexing",
            definition_body=sfn.DefinitionBody.from_chainable(chain),
            timeout=Duration.hours(24),
            tracing_enabled=True,
            # Every transition is logged without its data: inputs and outputs stay in the
            # execution history (IAM-guarded, 90 days) rather than in a log group many can
            # read; a failure's error and cause are logged all the same.
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )

    def _invoke(
        self, construct_id: str, payload: dict[str, Any], result_path: str | None = None
    ) -> tasks.LambdaInvoke:
        """A step of the indexing function, retried with jittered backoff on transient errors."""
        task = tasks.LambdaInvoke(
            self,
            construct_id,
            lambda_function=self.function,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
        )
        task.add_retry(
            errors=TRANSIENT,
            interval=Duration.seconds(5),
            backoff_rate=2,
            max_attempts=4,
            max_delay=Duration.minutes(1),
            jitter_strategy=sfn.JitterType.FULL,
        )
        return task

    def _step(
        self, name: str, arguments: dict[str, Any], result_path: str, failed: sfn.Fail
    ) -> tasks.LambdaInvoke:
        """A top-level step: its result lands beside the input (e.g. $.plan); a failure
        after the retries goes to `failed` with the error under $.error."""
        task = self._invoke(name, {"step": name.lower(), **arguments}, result_path)
        task.add_catch(failed, result_path="$.error")
        return task

    def _shard_map(
        self, construct_id: str, embed: sfn.IChainable, failed: sfn.Fail, concurrency: int
    ) -> sfn.DistributedMap:
        """A distributed Map over the manifest `Split` wrote: one child execution a shard."""
        shard_map = sfn.DistributedMap(
            self,
            construct_id,
            item_reader=sfn.S3JsonItemReader(
                bucket=self.data, key=sfn.JsonPath.string_at("$.split.manifest_key")
            ),
            item_selector={**_PLAN, "shard": sfn.JsonPath.object_at("$$.Map.Item.Value")},
            max_concurrency=concurrency,
            # The children's results go to S3, never into the state (at most 256 KB); only
            # where they went is kept: {"Bucket", "Key"} of the Map run's manifest.
            result_writer_v2=sfn.ResultWriterV2(bucket=self.data, prefix=MAP_RESULTS),
            result_selector={"results": sfn.JsonPath.object_at("$.ResultWriterDetails")},
            result_path="$.embedded",
        )
        # CDK renders result_writer_v2 only under this feature flag (v1 is deprecated).
        shard_map.node.set_context(RESULT_WRITER_V2, True)
        shard_map.item_processor(embed)
        shard_map.add_catch(failed, result_path="$.error")
        return shard_map

    def _acknowledge(self) -> None:
        """Each remaining AwsSolutions-IAM5 wildcard, with why it is the narrowest grant."""
        data, models = nag_bucket_arn(self.config, "data"), nag_bucket_arn(self.config, "models")
        model = f"{models}/models/{self.config.model_name}/*"
        runs = f"Resource::{data}/{RUNS}*"
        reads = {
            f"AwsSolutions-IAM5[{runs}]": "The run's shards, manifest and reports, all under"
            " runs/<corpus>/<run id>/ (ids are only known at run time).",
            f"AwsSolutions-IAM5[Resource::{model}]": "Files of this model's pushed versions,"
            " under its own prefix (read at init, sha256-checked).",
        }
        acknowledge(
            self.function,
            reads
            | {
                f"AwsSolutions-IAM5[Resource::{data}/*]": "Read-only: the corpus to index may be"
                " any object of the data bucket; the execution input names it.",
                f"AwsSolutions-IAM5[Resource::{nag_bucket_arn(self.config, 'media')}/{MEDIA}*]": (
                    "Write-only: image originals and thumbnails, named by their sha256 (known"
                    " only at run time), under the media bucket's media/ prefix."
                ),
            },
        )
        logical = self.resolve(self.get_logical_id(self.state_machine.node.default_child))  # type: ignore[arg-type]
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{logical}"}}]}}]}}'
        )
        acknowledge(
            self.state_machine,
            {
                "AwsSolutions-IAM5[Resource::*]": "X-Ray writes and CloudWatch Logs delivery"
                " (logs:CreateLogDelivery and friends) support no resource-level permissions.",
                f"AwsSolutions-IAM5[Resource::{arn_pattern(self, self.function)}:*]": "Versions"
                " of the one indexing function (CDK's LambdaInvoke grant).",
                f"AwsSolutions-IAM5[Resource::{data}/*]": "The distributed Map's ItemReader reads"
                " the run's manifest, whose key is only known at run time.",
                f"AwsSolutions-IAM5[Resource::{executions}:*]": "The distributed Map's child"
                " executions of this state machine, named at run time.",
                f"AwsSolutions-IAM5[Resource::{executions}/*:*]": "The same child executions'"
                " map runs.",
            },
        )
        if self.processing is None:
            return
        acknowledge(
            self.state_machine,
            {
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:"
                f"<AWS::AccountId>:{PROCESSING_JOBS}]": "Processing jobs this state machine"
                " names mmsearch-<shard>-<uuid> at run time.",
            },
        )
        acknowledge(
            self.processing.role,
            reads
            | {
                "AwsSolutions-IAM5[Resource::*]": "ecr:GetAuthorizationToken (and, in a VPC, the"
                " ENI calls SageMaker makes) support no resource-level permissions.",
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
                f"<AWS::AccountId>:{PROCESSING_LOGS}]": "The log streams SageMaker creates per"
                " job in its fixed log group.",
            },
        )
