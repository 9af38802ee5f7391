"""The functions' place in a VPC (context `vpc_id`): subnets, security groups, and the VPC
endpoints without which functions in private subnets reach no AWS service.

Functions in private subnets have no route out. They need S3 (models, runs; a gateway
endpoint, free), Secrets Manager (the connection secret) and Lambda (search invokes preprocess
and summary), each an interface endpoint that takes HTTPS only from the functions' security
groups. Milvus and MongoDB are outside AWS's endpoints: reach Zilliz Cloud and Atlas through a
NAT gateway or their PrivateLink endpoints (README, "Deploy to AWS").
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.config import DeployConfig

# What the functions call through the AWS SDK: boto3's s3, secretsmanager and lambda clients
# (functions/core/models/model_source.py, functions/core/stores/connection.py,
# functions/search/service.py).
# No STS: Lambda hands the role's credentials to the function directly.
INTERFACE_SERVICES = {
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Lambda": ec2.InterfaceVpcEndpointAwsService.LAMBDA_,
}


class FunctionNetwork(Construct):
    """The configured VPC, the functions' security groups and (unless `vpc_endpoints` is
    false) the endpoints; `function_options` are `lambda_.Function` keyword arguments."""

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        assert config.vpc_id, "FunctionNetwork needs a vpc_id"
        subnets = config.subnet_ids
        tables = config.route_table_ids
        if len(tables) == 1:  # one route table shared by every subnet
            tables = tables * len(subnets)
        if tables and len(tables) != len(subnets):
            raise ValueError("route_table_ids needs one id, or one per subnet in subnet_ids")
        self.vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=config.vpc_id,
            availability_zones=config.availability_zones
            or [f"zone-{i}" for i in range(len(subnets))],
            private_subnet_ids=subnets,
            private_subnet_route_table_ids=tables or None,
        )
        self.security_groups: list[ec2.ISecurityGroup] = [
            ec2.SecurityGroup.from_security_group_id(self, f"Group{i}", group_id)
            for i, group_id in enumerate(config.security_group_ids)
        ] or [
            ec2.SecurityGroup(
                self,
                "Functions",
                vpc=self.vpc,
                description="mmsearch functions: outbound to Milvus, MongoDB and AWS APIs only",
                allow_all_outbound=True,
            )
        ]
        self.endpoints: ec2.SecurityGroup | None = None
        if config.vpc_endpoints:
            if not tables:
                raise ValueError(
                    "vpc_endpoints needs route_table_ids (the S3 gateway endpoint is a route);"
                    " or set vpc_endpoints=false when the VPC reaches S3 already"
                )
            self._endpoints()

    @property
    def function_options(self) -> dict[str, Any]:
        """Where every function of this deployment runs."""
        return {
            "vpc": self.vpc,
            "vpc_subnets": ec2.SubnetSelection(subnets=self.vpc.private_subnets),
            "security_groups": self.security_groups,
        }

    def _endpoints(self) -> None:
        self.endpoints = ec2.SecurityGroup(
            self,
            "Endpoints",
            vpc=self.vpc,
            description="mmsearch VPC endpoints: HTTPS from the mmsearch functions only",
            allow_all_outbound=False,
        )
        for group in self.security_groups:
            self.endpoints.add_ingress_rule(
                group, ec2.Port.tcp(443), "HTTPS from the mmsearch functions"
            )
        chosen = ec2.SubnetSelection(subnets=self.vpc.private_subnets)
        self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[chosen]
        )
        for name, service in INTERFACE_SERVICES.items():
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=chosen,
                security_groups=[self.endpoints],
                private_dns_enabled=True,
                open=False,  # only the ingress rules above, not the whole VPC's CIDR
            )
