"""The public HTTP API and the three functions behind it (or one, when deployed as one).

The page reaches this API through its own CloudFront distribution (`/v1/*`, infra/web.py), so
it calls its own origin: no CORS, and a CSP `connect-src 'self'`. This stack therefore does not
depend on the web stack; the web stack depends on it.
"""

from __future__ import annotations

import json
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
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DeployConfig, function_name
from infra.functions import HANDLERS, CodeSource, service_function
from infra.indexing import MEDIA as MEDIA_PREFIX
from infra.nag import acknowledge
from infra.network import FunctionNetwork
from infra.scenes import scenes_environment
from infra.storage import StorageStack, bucket_arn, bucket_name, nag_bucket_arn

# A Lambda event is at most 6 MB and binary bodies arrive base64-encoded (4/3 larger):
# 4.4 MB raw is the largest body that still fits, so the functions refuse above it.
MAX_BODY_BYTES = 4_400_000
ROUTES: dict[str, list[tuple[apigwv2.HttpMethod, str]]] = {
    "search": [
        (apigwv2.HttpMethod.POST, "/v1/search"),
        (apigwv2.HttpMethod.GET, "/v1/scenes"),
        (apigwv2.HttpMethod.GET, "/v1/health"),
    ],
    "preprocess": [(apigwv2.HttpMethod.POST, "/v1/embed")],
    "summary": [(apigwv2.HttpMethod.POST, "/v1/documents:batchGet")],
}
# Writes by id (functions/documents), deployed only with `writes=true`: always IAM-signed.
WRITE_ROUTES: list[tuple[apigwv2.HttpMethod, str]] = [
    (apigwv2.HttpMethod.POST, "/v1/documents:batchUpsert"),
    (apigwv2.HttpMethod.POST, "/v1/documents:batchDelete"),
]
# Routes the page never calls: IAM-signed callers only unless `private_embed_and_documents`
# is false (embedding 64 texts is ~9 s of CPU; batchGet reads any stored document).
INTERNAL_ROUTES = frozenset({"POST /v1/embed", "POST /v1/documents:batchGet"})
LIVE = "live"
# One JSON line per request, HTTP API `$context` variables only (REST-only ones such as
# $context.resourcePath are refused by API Gateway at deploy): tests/infra/test_stacks.py
# checks each against the documented list.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "error": "$context.error.message",
    "userAgent": "$context.identity.userAgent",
}


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
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        # Also the indexing stack's: one set of endpoints and security groups per VPC.
        self.network = FunctionNetwork(self, "Network", config=config) if config.vpc_id else None
        self.function_options = self.network.function_options if self.network else {}
        self._options = self.function_options
        if storage.model is None:
            raise ValueError("the storage stack must deploy the served model (model=...)")
        # One pinned model version, recorded on every function; the versions of those that
        # load it are published only after its files are in the bucket.
        self.model_uri = storage.model.uri(config)
        self._model_deployment = storage.model_deployment
        # Each function is told only what it may read: the model (preprocess), the store
        # secrets (search: Milvus, summary: MongoDB); one function running all gets all.
        limits = {
            "MMSEARCH_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "MMSEARCH_MODEL_VERSION": storage.model.version,
            **scenes_environment(config.scenes_file),  # every function sees the same scenes
        }
        model = storage.model.environment(config)
        secrets = self._secrets = storage.secrets
        # Only search checks the debug header (functions/search/bucketing.py): only it reads it.
        self.debug_token = self._debug_token()
        debug = {"MMSEARCH_DEBUG_TOKEN_SECRET": self.debug_token.secret_arn}
        self.functions: dict[str, lambda_.Alias] = {}  # the `live` alias of each function
        self.function_names: dict[str, str] = {}  # their physical names, for other stacks
        if config.split_functions:
            preprocess = self._function(
                "preprocess", code, limits | model, snap_start=config.snap_start
            )
            summary = self._function("summary", code, limits | secrets.environment("mongo"))
            search = self._function(
                "search",
                code,
                limits
                | secrets.environment("milvus")
                | debug
                | {
                    "MMSEARCH_DEPLOYMENT": "lambda",
                    "MMSEARCH_PREPROCESS_FUNCTION": preprocess.function_arn,
                    "MMSEARCH_SUMMARY_FUNCTION": summary.function_arn,
                },
            )
            self._read_models(preprocess)
            secrets.grant_read(summary, "mongo")
            secrets.grant_read(search, "milvus")
            self.debug_token.grant_read(search)
            preprocess.grant_invoke(search)
            summary.grant_invoke(search)
        else:
            search = self._function(
                "search",
                code,
                limits | model | secrets.environment("milvus", "mongo") | debug,
                snap_start=config.snap_start,
                handler=HANDLERS["composed"],
                bundle="composed",  # FastAPI + Mangum + all three functions' dependencies
            )
            self._read_models(search)
            secrets.grant_read(search, "milvus", "mongo")
            self.debug_token.grant_read(search)
            preprocess = summary = search
        self._targets = {"search": search, "preprocess": preprocess, "summary": summary}
        if config.writes:
            self._targets["documents"] = self._writer(code, limits | model)
        if config.search_reserved_concurrency is not None:
            cfn_search = search.version.lambda_.node.default_child
            assert isinstance(cfn_search, lambda_.CfnFunction)
            cfn_search.reserved_concurrent_executions = config.search_reserved_concurrency

        self.api = self._http_api()

    def _debug_token(self) -> secretsmanager.Secret:
        """A random token generated at deploy: callers presenting it in `x-mmsearch-debug`
        may force experiments (the page's debug drawer). Its name is an output."""
        secret = secretsmanager.Secret(
            self,
            "DebugToken",
            description="mmsearch: the debug drawer's token (x-mmsearch-debug header)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",
                generate_string_key="debug_token",
                exclude_punctuation=True,  # sent as a header value: letters and digits only
                password_length=40,
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        CfnOutput(self, "DebugTokenSecretName", value=secret.secret_name)
        acknowledge(
            secret,
            {
                "AwsSolutions-SMG4": "Unlocks forced experiments only (no data, no writes):"
                " replace it with `aws secretsmanager put-secret-value`; new execution"
                " environments, and SnapStart restores, read the new value.",
            },
        )
        return secret

    def _function(
        self,
        name: str,
        code: CodeSource,
        environment: dict[str, str],
        *,
        snap_start: bool = False,
        handler: str | None = None,
        bundle: str | None = None,
    ) -> lambda_.Alias:
        function = service_function(
            self,
            name.title(),
            config=self.config,
            name=name,  # type: ignore[arg-type]
            code=code(bundle or name),  # type: ignore[arg-type]
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
        self.function_names[name] = function_name(self.config.name, name)
        return alias

    def _writer(self, code: CodeSource, environment: dict[str, str]) -> lambda_.Alias:
        """The documents function: embeds and writes both stores, so it runs the indexing
        bundle (encoder, both store clients, `indexing/`) and reads the model and both
        secrets; no reader gains a permission for it."""
        secrets = self._secrets
        writer = self._function(
            "documents",
            code,
            environment
            | secrets.environment("milvus", "mongo")
            | {"MMSEARCH_MEDIA_BUCKET": bucket_name(self.config, "media")},
            handler=HANDLERS["documents"],
            bundle="indexing",
        )
        self._read_models(writer)
        secrets.grant_read(writer, "milvus", "mongo")
        # Images written by id are published as indexing publishes them (indexing/media.py).
        writer.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[f"{bucket_arn(self.config, 'media')}/{MEDIA_PREFIX}*"],
            )
        )
        acknowledge(
            writer.lambda_,
            {
                f"AwsSolutions-IAM5[Resource::{nag_bucket_arn(self.config, 'media')}/"
                f"{MEDIA_PREFIX}*]": "Write-only: images written by id and their thumbnails,"
                " named by their sha256 (known only at run time), under media/.",
            },
        )
        return writer

    def _read_models(self, function: lambda_.Alias) -> None:
        """Read access to this model's objects and nothing else: the runtime fetches the files
        its pinned version's manifest lists, so it never needs to list the bucket. The version
        (where SnapStart runs init) is published only after the model deployment."""
        if self._model_deployment is not None:
            function.version.node.add_dependency(self._model_deployment)
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

    def _cors(self) -> apigwv2.CorsPreflightOptions | None:
        """CORS only for a page served from elsewhere (`web_origin`): the deployed page calls
        the API through its own CloudFront origin."""
        if not self.config.web_origin:
            return None
        return apigwv2.CorsPreflightOptions(
            allow_origins=[self.config.web_origin],
            allow_methods=[
                apigwv2.CorsHttpMethod.GET,
                apigwv2.CorsHttpMethod.POST,
                apigwv2.CorsHttpMethod.OPTIONS,
            ],
            allow_headers=["content-type", "authorization"],
            expose_headers=["retry-after"],
            max_age=Duration.hours(1),
        )

    def _http_api(self) -> apigwv2.HttpApi:
        api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=f"{self.config.name}-api",
            create_default_stage=False,
            cors_preflight=self._cors(),
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
                apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT)),
            ),
        )
        self._routes(api)
        CfnOutput(self, "ApiUrl", value=api.api_endpoint)
        if self.config.auth == "none":
            acknowledge(
                api,
                {
                    "AwsSolutions-APIG4": "A public search API by design (auth=none): the page"
                    " calls it anonymously; each route is throttled. auth=jwt or iam closes it.",
                },
            )
        return api

    def _routes(self, api: apigwv2.HttpApi) -> None:
        """Every route to its function's alias, each with its own throttle; the internal ones
        behind IAM when `private_embed_and_documents`."""
        private = authorizers.HttpIamAuthorizer()
        settings: dict[str, dict[str, float]] = {}
        table = {**ROUTES, "documents": WRITE_ROUTES}
        for name, routes in table.items():
            if name not in self._targets:
                continue  # the documents function exists only with `writes=true`
            target = integrations.HttpLambdaIntegration(
                f"{name.title()}Integration", self._targets[name]
            )
            for method, path in routes:
                key = f"{method.value} {path}"
                internal = name == "documents" or (
                    key in INTERNAL_ROUTES and self.config.private_embed_and_documents
                )
                for route in api.add_routes(
                    path=path,
                    methods=[method],
                    integration=target,
                    authorizer=private if internal else None,
                ):
                    # Route settings name routes by key: the routes must exist first.
                    self.stage.node.add_dependency(route)
                rate, burst = self.config.route_throttle[key]
                settings[key] = {"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}
        stage = self.stage.node.default_child
        assert isinstance(stage, apigwv2.CfnStage)
        stage.add_property_override("RouteSettings", settings)

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
