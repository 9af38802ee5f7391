"""Buckets and the connection secret: what outlives every deploy of the functions."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnParameter, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge

SECRET_KEYS = ("milvus_uri", "milvus_token", "mongo_uri")


def bucket_name(config: DeployConfig, role: str) -> str:
    """A bucket's physical name, known without a cross-stack reference: an ARN built from it
    in another stack is a plain pattern (and cdk-nag's findings on it can be named)."""
    return f"{config.name}-{role}-{Aws.ACCOUNT_ID}-{Aws.REGION}"


def bucket_arn(config: DeployConfig, role: str) -> str:
    """The ARN of `bucket_name(config, role)`."""
    return f"arn:{Aws.PARTITION}:s3:::{bucket_name(config, role)}"


def nag_bucket_arn(config: DeployConfig, role: str) -> str:
    """`bucket_arn` as cdk-nag prints it."""
    return f"arn:<AWS::Partition>:s3:::{config.name}-{role}-<AWS::AccountId>-<AWS::Region>"


def private_bucket(scope: Construct, construct_id: str, **props: Any) -> s3.Bucket:
    """An encrypted bucket no one reaches without IAM: public access blocked, TLS enforced."""
    props.setdefault("object_ownership", s3.ObjectOwnership.BUCKET_OWNER_ENFORCED)
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        **props,
    )


def logged_bucket(
    scope: Construct,
    construct_id: str,
    *,
    config: DeployConfig,
    role: str,
    access_logs: s3.IBucket,
    **props: Any,
) -> s3.Bucket:
    """A private bucket named `bucket_name(config, role)`, logging its access under s3/<role>/."""
    return private_bucket(
        scope,
        construct_id,
        bucket_name=bucket_name(config, role),
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"s3/{role}/",
        **props,
    )


def retained_bucket(
    scope: Construct,
    construct_id: str,
    *,
    config: DeployConfig,
    role: str,
    access_logs: s3.IBucket,
    **props: Any,
) -> s3.IBucket:
    """A `logged_bucket` that `make destroy` keeps; with `existing_buckets` (a redeploy after
    a destroy: the name is taken by the kept bucket) the kept bucket is adopted by name."""
    if config.existing_buckets:
        return s3.Bucket.from_bucket_name(scope, construct_id, bucket_name(config, role))
    return logged_bucket(
        scope,
        construct_id,
        config=config,
        role=role,
        access_logs=access_logs,
        removal_policy=RemovalPolicy.RETAIN,
        **props,
    )


class StorageStack(Stack):
    """The model bucket (versioned), the data bucket (corpora and indexing runs), access logs,
    and the secret holding the Milvus and MongoDB connection strings."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeployConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.access_logs = private_bucket(
            self,
            "AccessLogs",
            # CloudFront standard logs still need ACLs on their target bucket.
            object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.model_bucket = retained_bucket(
            self,
            "Models",
            config=config,
            role="models",
            access_logs=self.access_logs,
            versioned=True,  # a pushed model version is never overwritten in place
        )
        self.data_bucket = retained_bucket(
            self,
            "Data",
            config=config,
            role="data",
            access_logs=self.access_logs,
            lifecycle_rules=[s3.LifecycleRule(prefix="runs/", expiration=Duration.days(30))],
        )
        self.secret = self._connection_secret(config)
        acknowledge(
            self.access_logs,
            {"AwsSolutions-S1": "This is the access-log bucket; logging it to itself would loop."},
        )

    def _connection_secret(self, config: DeployConfig) -> secretsmanager.ISecret:
        """An existing secret by ARN, or a new one filled from NoEcho deploy parameters."""
        if config.connection_secret_arn:
            return secretsmanager.Secret.from_secret_complete_arn(
                self, "Connection", config.connection_secret_arn
            )
        values = {
            key: SecretValue.cfn_parameter(
                CfnParameter(
                    self,
                    "".join(part.title() for part in key.split("_")),
                    no_echo=True,
                    min_length=1 if key != "milvus_token" else 0,
                    default="" if key == "milvus_token" else None,
                    description=f"{key} for the functions; stored in Secrets Manager only.",
                )
            )
            for key in SECRET_KEYS
        }
        secret = secretsmanager.Secret(
            self,
            "Connection",
            description="mmsearch: Milvus and MongoDB connection strings",
            secret_object_value=values,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            secret,
            {
                "AwsSolutions-SMG4": "Credentials of external services (Zilliz/Milvus, Atlas/"
                "DocumentDB): rotated at the provider, then set with `cdk deploy --parameters`."
            },
        )
        return secret
