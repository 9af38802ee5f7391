"""Buckets, the served model and the store secrets: what outlives every deploy of the functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from aws_cdk import Aws, CfnParameter, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge

if TYPE_CHECKING:
    from aws_cdk import aws_s3_deployment as s3deploy

    from infra.model_asset import ModelRelease

Store = Literal["milvus", "mongo"]
# Each store's secret keys (functions.core.stores.connection's MilvusSecret / MongoSecret).
SECRET_KEYS: dict[Store, tuple[str, ...]] = {
    "milvus": ("milvus_uri", "milvus_token"),
    "mongo": ("mongo_uri",),
}


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


class StoreSecrets:
    """Where each store's connection lives: one secret per store, so a function is granted only
    the credentials of the stores it talks to (or, with `connection_secret_arn`, the older
    single secret for both)."""

    def __init__(
        self, milvus: secretsmanager.ISecret, mongo: secretsmanager.ISecret, *, combined: bool
    ) -> None:
        self.of: dict[Store, secretsmanager.ISecret] = {"milvus": milvus, "mongo": mongo}
        self.combined = combined

    def environment(self, *stores: Store) -> dict[str, str]:
        """The variables that tell a function where the secrets of `stores` are."""
        if self.combined:
            return {"MMSEARCH_CONNECTION_SECRET": self.of["milvus"].secret_arn} if stores else {}
        return {f"MMSEARCH_{store.upper()}_SECRET": self.of[store].secret_arn for store in stores}

    def grant_read(self, grantee: iam.IGrantable, *stores: Store) -> None:
        """Read access to the secrets of `stores` (default: both)."""
        chosen = {id(self.of[s]): self.of[s] for s in stores or ("milvus", "mongo")}
        for secret in chosen.values():  # the combined secret is granted once
            secret.grant_read(grantee)


class StorageStack(Stack):
    """The model bucket (versioned) with the served model version deployed into it, the data
    bucket (corpora and indexing runs), access logs, and one secret per store."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        model: ModelRelease | None = None,
        **kwargs: Any,
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
        self.secrets = self._store_secrets(config)
        self.model = model
        self.model_deployment: s3deploy.BucketDeployment | None = None
        if model is not None:
            from infra.model_asset import deploy_model  # it names buckets with this module

            self.model_deployment = deploy_model(self, model, self.model_bucket)
        acknowledge(
            self.access_logs,
            {"AwsSolutions-S1": "This is the access-log bucket; logging it to itself would loop."},
        )

    def _store_secrets(self, config: DeployConfig) -> StoreSecrets:
        """Existing secrets by ARN, or new ones filled from NoEcho deploy parameters."""
        if config.connection_secret_arn:
            combined = secretsmanager.Secret.from_secret_complete_arn(
                self, "Connection", config.connection_secret_arn
            )
            return StoreSecrets(combined, combined, combined=True)
        existing = {"milvus": config.milvus_secret_arn, "mongo": config.mongo_secret_arn}
        secrets = {
            store: secretsmanager.Secret.from_secret_complete_arn(self, store.title(), arn)
            if arn
            else self._secret_from_parameters(store)
            for store, arn in existing.items()
        }
        return StoreSecrets(secrets["milvus"], secrets["mongo"], combined=False)

    def _secret_from_parameters(self, store: Store) -> secretsmanager.ISecret:
        """A secret holding `store`'s keys, each from a NoEcho parameter of the same name."""
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
            for key in SECRET_KEYS[store]
        }
        secret = secretsmanager.Secret(
            self,
            store.title(),
            description=f"mmsearch: the {'Milvus' if store == 'milvus' else 'MongoDB'} connection",
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
