"""AWS's rules that moto does not apply, for tests: a synthesized app's templates read back as
concrete values, and every S3 / Secrets Manager call checked against one role's IAM statements.

moto answers whatever the caller's policy; AWS refuses what the role is not granted, and
answers a missing key with 403 AccessDenied (not 404 NoSuchKey) to a principal without
`s3:ListBucket` on the bucket. `enforce(policy)` makes every botocore client in the process
behave so, and records each refusal.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.client
from botocore.exceptions import ClientError

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
    "AWS::NoValue": None,
}


class Templates:
    """Every stack template of one `cdk.out`, with CloudFormation's intrinsics resolved the way
    a deploy to account ACCOUNT / region REGION would, given the physical ids in `physical`."""

    def __init__(self, out: Path, physical: dict[str, str] | None = None) -> None:
        self.out = out
        self.stacks: dict[str, dict[str, Any]] = {
            path.name.removesuffix(".template.json"): json.loads(path.read_text())
            for path in out.glob("*.template.json")
        }
        self.physical = physical or {}  # logical id -> what Ref answers (secret ARNs, ...)
        self.exports = {
            output["Export"]["Name"]: (stack, output["Value"])
            for stack, template in self.stacks.items()
            for output in template.get("Outputs", {}).values()
            if isinstance(output.get("Export", {}).get("Name"), str)
        }

    def resources(self, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(stack, logical id, resource) of every resource of `kind`."""
        for stack, template in self.stacks.items():
            for logical, resource in template["Resources"].items():
                if resource["Type"] == kind:
                    yield stack, logical, resource

    def resolve(self, value: Any, stack: str) -> Any:
        """`value` with Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split and
        Fn::ImportValue replaced by what CloudFormation would put there."""
        if isinstance(value, list):
            return [self.resolve(v, stack) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v, stack) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self._ref(arg, stack)
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self._get_att(logical, attribute, stack)
        if key == "Fn::Join":
            sep, parts = arg
            return sep.join(str(self.resolve(p, stack)) for p in self.resolve(parts, stack))
        if key == "Fn::Sub":
            text, names = (arg, {}) if isinstance(arg, str) else arg
            names = {k: self.resolve(v, stack) for k, v in names.items()}
            return re.sub(
                r"\$\{([^}]+)\}",
                lambda m: str(
                    names[m.group(1)]
                    if m.group(1) in names
                    else self._get_att(*m.group(1).split(".", 1), stack)
                    if "." in m.group(1)
                    else self._ref(m.group(1), stack)
                ),
                text,
            )
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items, stack)[int(self.resolve(index, stack))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text, stack)).split(sep)
        if key == "Fn::ImportValue":
            source, exported = self.exports[self.resolve(arg, stack)]
            return self.resolve(exported, source)
        return {key: self.resolve(arg, stack)}

    def _ref(self, name: str, stack: str) -> Any:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.physical:
            return self.physical[name]
        resource = self.stacks[stack]["Resources"].get(name)
        if resource is None:  # a parameter
            return f"<parameter {name}>"
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::S3::Bucket" and "BucketName" in properties:
            return self.resolve(properties["BucketName"], stack)
        if resource["Type"] == "AWS::IAM::Role":
            return name
        return f"<{name}>"

    def _get_att(self, logical: str, attribute: str, stack: str) -> Any:
        resource = self.stacks[stack]["Resources"][logical]
        if attribute == "Arn" and resource["Type"] == "AWS::S3::Bucket":
            return f"arn:{PARTITION}:s3:::{self._ref(logical, stack)}"
        if attribute == "Arn" and resource["Type"] == "AWS::IAM::Role":
            return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{logical}"
        if attribute == "Arn" and resource["Type"] == "AWS::Lambda::Function":
            return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{logical}"
        return f"<{logical}.{attribute}>"

    def role_statements(self, stack: str, role: str) -> list[dict[str, Any]]:
        """The resolved statements of every inline policy of `role` (managed policies aside:
        the functions' are AWS's logs/VPC/X-Ray ones, which grant no S3 or Secrets Manager)."""
        template = self.stacks[stack]
        statements = list(
            s
            for policy in template["Resources"][role].get("Properties", {}).get("Policies", [])
            for s in policy["PolicyDocument"]["Statement"]
        )
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            if {"Ref": role} in resource["Properties"].get("Roles", []):
                statements += resource["Properties"]["PolicyDocument"]["Statement"]
        return [self.resolve(s, stack) for s in statements]


@dataclass
class Policy:
    """One principal's identity-based statements, evaluated as IAM does for S3 and Secrets
    Manager: an explicit Allow is needed, an explicit Deny wins. Conditions: StringEquals and
    StringLike on the request's keys (a key the request lacks does not match, as in IAM); any
    other operator fails the check rather than guessing."""

    name: str
    statements: list[dict[str, Any]]
    refused: list[str] = field(default_factory=list)

    def allows(self, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
        allowed = False
        for statement in self.statements:
            if "NotAction" in statement or "NotResource" in statement:
                raise AssertionError(
                    f"{self.name}: a statement the checker cannot evaluate: {statement}"
                )
            if not (
                _matches(statement["Action"], action, True)
                and _matches(statement["Resource"], resource, False)
            ):
                continue
            if not _conditions_hold(statement.get("Condition", {}), context or {}, self.name):
                continue
            if statement["Effect"] == "Deny":
                return False
            allowed = True
        return allowed


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str], who: str) -> bool:
    for operator, tests in conditions.items():
        if operator not in {"StringEquals", "StringLike"}:
            raise AssertionError(f"{who}: a condition the checker cannot evaluate: {operator}")
        for key, expected in tests.items():
            value = context.get(key)
            options = expected if isinstance(expected, list) else [expected]
            if value is None or not any(
                fnmatch.fnmatchcase(value, o) if operator == "StringLike" else value == o
                for o in options
            ):
                return False
    return True


def _matches(patterns: Any, value: str, case_insensitive: bool) -> bool:
    for pattern in patterns if isinstance(patterns, list) else [patterns]:
        if not isinstance(pattern, str):
            continue
        a, b = (pattern.lower(), value.lower()) if case_insensitive else (pattern, value)
        if fnmatch.fnmatchcase(b, a):
            return True
    return False


S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
}
S3_BUCKET_ACTIONS = {"ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket"}
SECRET_ACTIONS = {
    "GetSecretValue": "secretsmanager:GetSecretValue",
    "DescribeSecret": "secretsmanager:DescribeSecret",
}


def _denied(operation: str, message: str) -> ClientError:
    code = "403" if operation == "HeadObject" else "AccessDenied"  # HEAD has no body
    error = {"Code": code, "Message": message}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}, operation)


@contextlib.contextmanager
def enforce(policy: Policy) -> Iterator[Policy]:
    """Every botocore call in the process checked against `policy` until the block ends."""
    original = botocore.client.BaseClient._make_api_call

    def checked(client: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        action, resource = _request(client, original, service, operation, params)
        context = {"s3:prefix": params.get("Prefix", "")} if action == "s3:ListBucket" else {}
        if not policy.allows(action, resource, context):
            policy.refused.append(f"{action} {resource}")
            raise _denied(
                operation, f"{policy.name} is not authorized to perform {action} on {resource}"
            )
        try:
            return original(client, operation, params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            bucket = f"arn:{PARTITION}:s3:::{params.get('Bucket')}"
            if (
                service == "s3"
                and code in {"NoSuchKey", "404"}
                and not policy.allows("s3:ListBucket", bucket)
            ):
                raise _denied(operation, "Access Denied (missing key, no s3:ListBucket)") from None
            raise

    botocore.client.BaseClient._make_api_call = checked  # type: ignore[method-assign]
    try:
        yield policy
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


def _request(
    client: Any, original: Any, service: str, operation: str, params: dict[str, Any]
) -> tuple[str, str]:
    """The IAM action and resource ARN of one call; a call the checker does not know fails."""
    if service == "s3" and operation in S3_OBJECT_ACTIONS:
        return S3_OBJECT_ACTIONS[
            operation
        ], f"arn:{PARTITION}:s3:::{params['Bucket']}/{params['Key']}"
    if service == "s3" and operation in S3_BUCKET_ACTIONS:
        return S3_BUCKET_ACTIONS[operation], f"arn:{PARTITION}:s3:::{params['Bucket']}"
    if service == "secretsmanager" and operation in SECRET_ACTIONS:
        secret_id = params["SecretId"]
        if not secret_id.startswith("arn:"):  # a name: IAM sees the secret's ARN
            with contextlib.suppress(ClientError):
                secret_id = original(client, "DescribeSecret", {"SecretId": secret_id})["ARN"]
        return SECRET_ACTIONS[operation], secret_id
    raise AssertionError(f"init made a call the checker does not know: {service}:{operation}")
