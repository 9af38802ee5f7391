"""How every mmsearch Lambda function is made: runtime, logs, tracing, placement, packaging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import DeployConfig, FunctionName, function_name
from infra.nag import acknowledge, acknowledge_function

CodeSource = Callable[[FunctionName], lambda_.Code]
RUNTIME = lambda_.Runtime.PYTHON_3_12
# infra/packaging.py builds x86_64 manylinux wheels (glibc <= 2.34, the python3.12 runtime's).
ARCHITECTURE = lambda_.Architecture.X86_64
HANDLERS: dict[str, str] = {
    "preprocess": "functions.preprocess.handler.handler",
    "search": "functions.search.handler.handler",
    "summary": "functions.summary.handler.handler",
    "composed": "functions.composed.handler.handler",
    "documents": "functions.documents.handler.handler",
}


def placement(scope: Construct, config: DeployConfig) -> dict[str, Any]:
    """`lambda_.Function` keyword arguments that put a function in the configured VPC, if any."""
    if not config.vpc_id:
        return {}
    zones = config.availability_zones or [f"zone-{i}" for i in range(len(config.subnet_ids))]
    vpc = ec2.Vpc.from_vpc_attributes(
        scope,
        "Vpc",
        vpc_id=config.vpc_id,
        availability_zones=zones,
        private_subnet_ids=config.subnet_ids,
    )
    groups = [
        ec2.SecurityGroup.from_security_group_id(scope, f"Group{i}", group_id)
        for i, group_id in enumerate(config.security_group_ids)
    ] or [
        ec2.SecurityGroup(
            scope,
            "Functions",
            vpc=vpc,
            description="mmsearch functions: outbound to Milvus, MongoDB and AWS APIs only",
            allow_all_outbound=True,
        )
    ]
    return {
        "vpc": vpc,
        "vpc_subnets": ec2.SubnetSelection(subnets=vpc.private_subnets),
        "security_groups": groups,
    }


def service_function(
    scope: Construct,
    construct_id: str,
    *,
    config: DeployConfig,
    name: FunctionName,
    code: lambda_.Code,
    handler: str,
    environment: dict[str, str],
    options: dict[str, Any],
    snap_start: bool = False,
) -> lambda_.Function:
    """One Lambda function with JSON logs kept a month, X-Ray tracing and, when asked,
    SnapStart (its init, model loading included, is snapshotted at publish time)."""
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.DESTROY,
    )
    function = lambda_.Function(
        scope,
        construct_id,
        # A fixed name: other stacks (alarms) name it without a cross-stack export.
        function_name=function_name(config.name, name),
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        code=code,
        handler=handler,
        memory_size=config.memory_mb[name],
        timeout=Duration.seconds(config.timeout_s[name]),
        environment={
            "POWERTOOLS_SERVICE_NAME": f"mmsearch-{name}",
            "POWERTOOLS_METRICS_NAMESPACE": "mmsearch",
            "MMSEARCH_HOME": "/tmp/mmsearch",
            **environment,
        },
        logging_format=lambda_.LoggingFormat.JSON,
        log_group=log_group,
        tracing=lambda_.Tracing.ACTIVE,
        snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
        # A replaced version is deleted: old SnapStart snapshots would keep costing cache fees.
        current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
        **options,
    )
    if snap_start:
        Annotations.of(function).acknowledge_warning(
            "@aws-cdk/aws-lambda:snapStartRequirePublish",
            "Callers reach it through its `live` alias, a published version.",
        )
    acknowledge_function(function)
    acknowledge(
        function,
        {
            "AwsSolutions-L1": "Python 3.12 on purpose: the bundles are built for cp312 and"
            " SnapStart supports it; moving on is a one-line change with a rebuilt bundle.",
        },
    )
    return function
