"""One secret per store, granted only where the store is used; the older single secret still
works (infra.storage.StoreSecrets)."""

from __future__ import annotations

import json

from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam

from infra.config import DeployConfig
from infra.storage import StorageStack

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mmsearch/connections-AbCdEf"


def granted_resources(stack: Stack, role: iam.Role) -> list[str]:
    policy = role.node.try_find_child("DefaultPolicy")
    document = stack.resolve(policy.document.to_json()) if policy else {"Statement": []}  # type: ignore[attr-defined]
    return [json.dumps(s["Resource"]) for s in document["Statement"]]


def test_each_store_has_its_own_secret_and_a_grant_names_only_it() -> None:
    app = App()
    storage = StorageStack(app, "Storage", config=DeployConfig())
    milvus, mongo = storage.secrets.of["milvus"], storage.secrets.of["mongo"]
    assert milvus is not mongo
    other = Stack(app, "Other")
    role = iam.Role(other, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))

    storage.secrets.grant_read(role, "mongo")

    (resource,) = granted_resources(other, role)
    assert "Mongo" in resource and "Milvus" not in resource
    assert set(storage.secrets.environment("milvus")) == {"MMSEARCH_MILVUS_SECRET"}


def test_the_older_single_secret_serves_both_stores_and_is_granted_once() -> None:
    app = App()
    storage = StorageStack(app, "Storage", config=DeployConfig(connection_secret_arn=ARN))
    other = Stack(app, "Other")
    role = iam.Role(other, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))

    storage.secrets.grant_read(role, "milvus", "mongo")

    assert granted_resources(other, role) == [json.dumps(ARN)]
    assert storage.secrets.environment("milvus", "mongo") == {"MMSEARCH_CONNECTION_SECRET": ARN}
    assert storage.secrets.environment() == {}
