"""The SageMaker side of batch indexing: the processing image, its role, and the state that
runs one processing job on one shard (the same `indexing` shard code as the Lambda branch)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.packaging import REPO, requirements
from infra.scenes import BUNDLED_SCENES, PROCESSING_CODE_ROOT, scenes_environment

# The Lambda runtime provides boto3; the image must install it itself (at the lock's pins,
# which hold botocore and s3transfer too).
RUNTIME_PROVIDED = ("boto3",)
PROCESSING_INSTANCE = "ml.m5.xlarge"
PROCESSING_JOBS = "processing-job/mmsearch-*"
PROCESSING_LOGS = "log-group:/aws/sagemaker/ProcessingJobs:*"
SYNC_RULE = "rule/StepFunctionsGetEventsForSageMakerProcessingJobsRule"
VPC_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]


def processing_device(instance_type: str) -> str:
    """Where a processing job on `instance_type` embeds (MMSEARCH_ENCODER_DEVICE): cuda on the
    GPU families (ml.g*, ml.p*), whose image must then carry onnxruntime-gpu, else cpu."""
    family = instance_type.removeprefix("ml.")[:1]
    return "cuda" if family in ("g", "p") else "cpu"


class ProcessingJobs(Construct):
    """The processing role and image; `job_state` is the Map's item processor on SageMaker."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data_bucket_arn: str,
        scenes_file: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.scenes_file = scenes_file
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="mmsearch processing jobs: read shards, the model and the secret",
        )
        # An S3Prefix input is listed before it is downloaded: without ListBucket SageMaker
        # cannot see the shard (S3 answers 403 for what it may not list).
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[data_bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["runs/*"]}},
            )
        )
        self.image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(processing_image_context(scenes_file=scenes_file)),
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.image.repository.grant_pull(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[Stack.of(self).format_arn(service="logs", resource=PROCESSING_LOGS)],
            )
        )

    def job_state(
        self, scope: Construct, environment: dict[str, str], options: dict[str, Any]
    ) -> sfn.CustomState:
        """One SageMaker processing job on one shard, waited for (`.sync`)."""
        network: dict[str, Any] = {}
        if options.get("vpc") is not None:
            chosen = options.get("vpc_subnets")
            subnets = (
                [subnet.subnet_id for subnet in chosen.subnets]
                if chosen is not None and chosen.subnets
                else options["vpc"].select_subnets().subnet_ids
            )
            groups = [g.security_group_id for g in options.get("security_groups", [])]
            network = {
                "NetworkConfig": {"VpcConfig": {"Subnets": subnets, "SecurityGroupIds": groups}}
            }
            self.role.add_to_policy(iam.PolicyStatement(actions=VPC_ACTIONS, resources=["*"]))
        shard_uri = "States.Format('s3://{}/{}', $.plan.bucket, $.shard.key)"
        parameters = {
            # A fresh name per attempt (job names never repeat); the shard's index for people.
            "ProcessingJobName.$": "States.Format('mmsearch-{}-{}', $.shard.index, States.UUID())",
            "RoleArn": self.role.role_arn,
            "AppSpecification": {
                "ImageUri": self.image.image_uri,
                "ContainerArguments.$": "States.Array('--scene', $.plan.scene,"
                " '--collection', $.plan.collection)",
            },
            "ProcessingInputs": [
                {
                    "InputName": "shard",
                    "S3Input": {
                        "S3Uri.$": shard_uri,
                        "LocalPath": "/opt/ml/processing/input/shard",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                }
            ],
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": PROCESSING_INSTANCE,
                    "VolumeSizeInGB": 30,
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 4 * 3600},
            "Environment": {
                **environment,
                "MMSEARCH_HOME": "/tmp/mmsearch",
                "MMSEARCH_ENCODER_DEVICE": processing_device(PROCESSING_INSTANCE),
                # The image holds the scenes file where the Dockerfile puts our code.
                **scenes_environment(self.scenes_file, PROCESSING_CODE_ROOT),
            },
            **network,
        }
        retry = [
            {
                "ErrorEquals": ["SageMaker.AmazonSageMakerException"],  # throttled, mostly
                "IntervalSeconds": 30,
                "BackoffRate": 2,
                "MaxAttempts": 3,
                "JitterStrategy": "FULL",
            },
            {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 60, "MaxAttempts": 1},
        ]
        return sfn.CustomState(
            scope,
            "EmbedShardJob",
            state_json={
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:createProcessingJob.sync",
                "Parameters": parameters,
                "Retry": retry,
            },
        )

    def allow(self, machine: sfn.StateMachine) -> None:
        """The state machine starts, watches and stops processing jobs and passes their role."""
        stack = Stack.of(self)
        sagemaker = ["CreateProcessingJob", "DescribeProcessingJob", "StopProcessingJob"]
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=[f"sagemaker:{a}" for a in (*sagemaker, "AddTags")],
                resources=[stack.format_arn(service="sagemaker", resource=PROCESSING_JOBS)],
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[stack.format_arn(service="events", resource=SYNC_RULE)],
            )
        )
        self.role.grant_pass_role(machine.role)


def image_requirements() -> list[str]:
    """The indexing function's requirements plus what Lambda's runtime would have provided
    (boto3: the processing entry point reads S3 and the secret with it); the Dockerfile
    installs them under requirements.lock as constraints, so at the tested versions."""
    return [*requirements("indexing"), *RUNTIME_PROVIDED]


def processing_image_context(
    build: Path = REPO / "build" / "processing-image", scenes_file: str | None = None
) -> Path:
    """A small Docker context for the processing image: our two packages (with the
    deployment's scenes file, if any, at `BUNDLED_SCENES`), the indexing function's
    requirements (with boto3), the lock as pip constraints, and indexing/batch/Dockerfile
    (never the repository root)."""
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "bench", "Dockerfile")
    for name in ("functions", "indexing"):
        shutil.copytree(REPO / name, build / name, ignore=ignore)
    if scenes_file:
        shutil.copy(scenes_file, build / BUNDLED_SCENES)
    (build / "requirements.txt").write_text("\n".join(image_requirements()) + "\n")
    shutil.copy(REPO / "requirements.lock", build / "constraints.txt")
    shutil.copy(REPO / "indexing" / "batch" / "Dockerfile", build / "Dockerfile")
    return build
