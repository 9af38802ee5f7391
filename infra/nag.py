"""cdk-nag's AwsSolutions pack, and one way to acknowledge a finding with its reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def acknowledge(scope: IConstruct, reasons: dict[str, str]) -> None:
    """Acknowledge findings on `scope` and its children, each rule id with why it is fine."""
    Validations.of(scope).acknowledge(
        *(Acknowledgment(id=rule, reason=reason) for rule, reason in reasons.items())
    )


def check(app: App) -> None:
    """Run AwsSolutions on every stack at synth: an unacknowledged finding fails the synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


MANAGED_POLICY = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{}]"
S3_ACTIONS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*")
CDK_ASSETS = "arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*"


def acknowledge_function(function: IConstruct) -> None:
    """What every Lambda function here carries: the managed logs policy and X-Ray's `*`."""
    acknowledge(
        function,
        {
            MANAGED_POLICY.format("AWSLambdaBasicExecutionRole"): "Grants only CloudWatch Logs"
            " writes.",
            MANAGED_POLICY.format("AWSLambdaVPCAccessExecutionRole"): "With a VPC: logs plus the"
            " network interfaces Lambda needs there, nothing else.",
            "AwsSolutions-IAM5[Resource::*]": "X-Ray's PutTraceSegments and PutTelemetryRecords"
            " support no resource-level permissions.",
        },
    )


def acknowledge_s3_grant(scope: IConstruct, resources: list[str], why: str) -> None:
    """A CDK bucket grant: its action wildcards (GetObject*, List*, ...) and object `/*`."""
    reasons = {f"AwsSolutions-IAM5[Action::{action}]": why for action in S3_ACTIONS}
    reasons |= {f"AwsSolutions-IAM5[Resource::{resource}]": why for resource in resources}
    acknowledge(scope, reasons)


def acknowledge_bucket_deployment(stack: Stack, destinations: list[str]) -> None:
    """CDK's BucketDeployment runs one singleton function per stack (its code, its runtime)."""
    for child in stack.node.children:
        if child.node.id.startswith("Custom::CDKBucketDeployment"):
            acknowledge_function(child)
            acknowledge(
                child,
                {"AwsSolutions-L1": "CDK's BucketDeployment handler picks its own runtime."},
            )
            acknowledge_s3_grant(
                child,
                [CDK_ASSETS, *destinations],
                "CDK's BucketDeployment: reads its asset zip and syncs it into the site bucket.",
            )


def arn_pattern(stack: Stack, resource: IConstruct) -> str:
    """How cdk-nag prints an in-stack resource's ARN in a finding: `<LogicalId.Arn>`."""
    default_child = resource.node.default_child
    assert default_child is not None
    logical_id = stack.resolve(stack.get_logical_id(default_child))  # type: ignore[arg-type]
    return f"<{logical_id}.Arn>"
