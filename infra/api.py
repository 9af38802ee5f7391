"""The public HTTP API and the three functions behind it (or one, when deployed as one)."""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.config import DeployConfig
from infra.functions import HANDLERS, CodeSource, placement, service_function
from infra.nag import acknowledge, acknowledge_bucket_deployment
from infra.storage import StorageStack, bucket_arn, bucket_name, nag_bucket_arn
from infra.web import WebStack

# A Lambda event is at most 6 MB and binary bodies arrive base64-encoded (4/3 larger):
# 4.4 MB raw is the largest body that still fits, so the functions refuse above it.
MAX_BODY_BYTES = 4_400_000
ROUTES: dict[str, list[tuple[apigwv2.HttpMethod, str]]] = {
    "search": [
        (apigwv2.HttpMethod.POST, "/v1/search"),
        (apigwv2.HttpMethod.GET, "/v1/scenes"),
    ],
    "preprocess": [(apigwv2.HttpMethod.POST, "/v1/embed")],
    "summary": [(apigwv2.HttpMethod.POST, "/v1/documents:batchGet")],
}
LIVE = "live"


def model_uri(config: DeployConfig) -> str:
    """Where the functions read the model: one version, or the LATEST pointer's."""
    prefix = f"models/{config.model_name}/"
    if config.model_version != "latest":
        prefix += f"{config.model_version}/"
    return f"s3://{bucket_name(config, 'models')}/{prefix}"


@jsii.implements(apigwv2.IAccessLogSettings)
class AccessLogs:
    """Where and how the stage writes one access-log line per request."""

    def __init__(
        self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat
    ) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class ApiStack(Stack):
    """HTTP API → search, preprocess, summary; search invokes the other two through their
    `live` aliases, or runs them in-process when `split_functions` is false."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        code: CodeSource,
        storage: StorageStack,
        web: WebStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self._options = placement(self, config)
        self.model_uri = model_uri(config)
        # Each function is told only what it may read: the model (preprocess), the connection
        # secret (search, summary); one function running all three gets both.
        limits = {"MMSEARCH_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
        model = {"MMSEARCH_MODEL_S3_URI": self.model_uri}
        secret = {"MMSEARCH_CONNECTION_SECRET": storage.secret.secret_arn}
        self.functions: dict[str, lambda_.Alias] = {}  # the `live` alias of each function
        if config.split_functions:
            preprocess = self._function(
                "preprocess", code, limits | model, snap_start=config.snap_start
            )
            summary = self._function("summary", code, limits | secret)
            search = self._function(
                "search",
                code,
                limits
                | secret
                | {
                    "MMSEARCH_DEPLOYMENT": "lambda",
                    "MMSEARCH_PREPROCESS_FUNCTION": preprocess.function_arn,
                    "MMSEARCH_SUMMARY_FUNCTION": summary.function_arn,
                },
            )
            self._read_models(preprocess)
            storage.secret.grant_read(summary)
            storage.secret.grant_read(search)
            preprocess.grant_invoke(search)
            summary.grant_invoke(search)
        else:
            search = self._function(
                "search",
                code,
                limits | model | secret,
                snap_start=config.snap_start,
                handler=HANDLERS["composed"],
            )
            self._read_models(search)
            storage.secret.grant_read(search)
            preprocess = summary = search
        self._targets = {"search": search, "preprocess": preprocess, "summary": summary}

        self.origin = config.web_origin or f"https://{web.distribution.distribution_domain_name}"
        self.api = self._http_api()
        self._site_config(web)

    def _function(
        self,
        name: str,
        code: CodeSource,
        environment: dict[str, str],
        *,
        snap_start: bool = False,
        handler: str | None = None,
    ) -> lambda_.Alias:
        function = service_function(
            self,
            name.title(),
            config=self.config,
            name=name,  # type: ignore[arg-type]
            code=code(name),  # type: ignore[arg-type]
            handler=handler or HANDLERS[name],
            environment=environment,
            options=self._options,
            snap_start=snap_start,
        )
        # Callers always go through the alias: a published version, so SnapStart applies.
        alias = lambda_.Alias(
            self, f"{name.title()}Live", alias_name=LIVE, version=function.current_version
        )
        self.functions[name] = alias
        return alias

    def _read_models(self, function: lambda_.Alias) -> None:
        """Read access to this model's objects and nothing else: the runtime fetches the files
        its manifest lists (and the LATEST pointer), so it never needs to list the bucket."""
        bucket = bucket_arn(self.config, "models")
        prefix = f"models/{self.config.model_name}/"
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{bucket}/{prefix}*"])
        )
        acknowledge(
            function.lambda_,
            {
                f"AwsSolutions-IAM5[Resource::{nag_bucket_arn(self.config, 'models')}/{prefix}*]": (
                    "Objects under this model's own prefix: the files of its pushed versions."
                ),
            },
        )

    def _http_api(self) -> apigwv2.HttpApi:
        api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=f"{self.config.name}-api",
            create_default_stage=False,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=[self.origin],
                allow_methods=[
                    apigwv2.CorsHttpMethod.GET,
                    apigwv2.CorsHttpMethod.POST,
                    apigwv2.CorsHttpMethod.OPTIONS,
                ],
                allow_headers=["content-type", "authorization"],
                expose_headers=["retry-after"],
                max_age=Duration.hours(1),
            ),
            default_authorizer=self._authorizer(),
        )
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=api,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=self.config.throttle_rate, burst_limit=self.config.throttle_burst
            ),
            access_log_settings=AccessLogs(
                apigwv2.LogGroupLogDestination(access_logs),
                apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        for name, routes in ROUTES.items():
            target = integrations.HttpLambdaIntegration(
                f"{name.title()}Integration", self._targets[name]
            )
            for method, path in routes:
                api.add_routes(path=path, methods=[method], integration=target)
        CfnOutput(self, "ApiUrl", value=api.api_endpoint)
        if self.config.auth == "none":
            acknowledge(
                api,
                {
                    "AwsSolutions-APIG4": "A public search API by design (auth=none): the page"
                    " calls it anonymously; the stage is throttled. auth=jwt or iam closes it.",
                },
            )
        return api

    def _authorizer(self) -> apigwv2.IHttpRouteAuthorizer | None:
        if self.config.auth == "iam":
            return authorizers.HttpIamAuthorizer()
        if self.config.auth == "jwt":
            return authorizers.HttpJwtAuthorizer(
                "Jwt",
                self.config.jwt_issuer or "",
                jwt_audience=self.config.jwt_audience,
            )
        return None

    def _site_config(self, web: WebStack) -> None:
        """The page learns the API's URL from config.json, written next to it."""
        site = s3.Bucket.from_bucket_name(self, "Site", bucket_name(self.config, "site"))
        s3deploy.BucketDeployment(
            self,
            "SiteConfig",
            sources=[
                s3deploy.Source.json_data("config.json", {"apiBaseUrl": self.api.api_endpoint})
            ],
            destination_bucket=site,
            prune=False,
            distribution=web.distribution,
            distribution_paths=["/config.json"],
        )
        acknowledge_bucket_deployment(self, [f"{nag_bucket_arn(self.config, 'site')}/*"])
