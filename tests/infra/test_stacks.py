"""The synthesized CloudFormation: functions, routes, grants, SnapStart, the page, alarms, and
cdk-nag's AwsSolutions pack with every finding acknowledged (else the synth itself fails)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from infra.app import build_app
from infra.config import DeployConfig
from infra.nag import check

ROOT = Path(__file__).resolve().parents[2]
ROUTE_KEYS = {"POST /v1/search", "GET /v1/scenes", "POST /v1/embed", "POST /v1/documents:batchGet"}


def synthesize(tmp: Path, **config: Any) -> dict[str, Template]:
    """Every stack of the app, synthesized with cdk-nag on; a small code folder stands in for
    the bundles (their content is tests/infra/test_packaging.py's business)."""
    code_dir = tmp / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "handler.py").write_text("def handler(event, context):\n    return event\n")
    app = App(outdir=str(tmp / "cdk.out"))
    stacks = build_app(
        app, DeployConfig(**config), code=lambda name: lambda_.Code.from_asset(str(code_dir))
    )
    app.synth()  # raises when cdk-nag has an unacknowledged finding
    return {name: Template.from_stack(stack) for name, stack in stacks.items()}


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    return synthesize(tmp_path_factory.mktemp("split"))


def functions_by_handler(template: Template) -> dict[str, dict[str, Any]]:
    found = template.find_resources("AWS::Lambda::Function")
    return {
        r["Properties"]["Handler"]: {"id": logical_id, **r["Properties"]}
        for logical_id, r in found.items()
        if r["Properties"].get("Handler", "").startswith(("functions.", "offline."))
    }


def policy_statements(template: Template, role_prefix: str) -> list[dict[str, Any]]:
    """The statements of the default policy attached to the role whose id starts so."""
    statements = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        roles = json.dumps(policy["Properties"]["Roles"])
        if f'"{role_prefix}' in roles:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        value = statement["Action"]
        actions |= {value} if isinstance(value, str) else set(value)
    return actions


def test_three_functions_run_python_312_with_json_logs_and_tracing(split):
    functions = functions_by_handler(split["api"])
    assert set(functions) == {
        "functions.preprocess.handler.handler",
        "functions.search.handler.handler",
        "functions.summary.handler.handler",
    }
    for props in functions.values():
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["x86_64"]
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["TracingConfig"] == {"Mode": "Active"}


@pytest.mark.parametrize("split_functions", [True, False])
def test_a_function_is_told_of_the_model_or_secret_exactly_when_it_may_read_them(
    tmp_path, split_functions
):
    """A handler fetches the model when MMSEARCH_MODEL_S3_URI is set and reads the secret when
    MMSEARCH_CONNECTION_SECRET is: either without its grant would fail at init."""
    templates = synthesize(tmp_path, split_functions=split_functions)
    for name in ("api", "indexing"):
        for props in functions_by_handler(templates[name]).values():
            variables = props["Environment"]["Variables"]
            role = props["Role"]["Fn::GetAtt"][0]
            actions = actions_of(policy_statements(templates[name], role))
            assert ("MMSEARCH_MODEL_S3_URI" in variables) == ("s3:GetObject" in actions)
            assert ("MMSEARCH_CONNECTION_SECRET" in variables) == (
                "secretsmanager:GetSecretValue" in actions
            )


def test_snapstart_is_on_preprocess_only_and_every_function_has_a_live_alias(split):
    functions = functions_by_handler(split["api"])
    snap = {h: p.get("SnapStart") for h, p in functions.items()}
    assert snap["functions.preprocess.handler.handler"] == {"ApplyOn": "PublishedVersions"}
    assert snap["functions.search.handler.handler"] is None
    assert snap["functions.summary.handler.handler"] is None
    aliases = split["api"].find_resources("AWS::Lambda::Alias")
    assert sorted(a["Properties"]["Name"] for a in aliases.values()) == ["live"] * 3
    versions = split["api"].find_resources("AWS::Lambda::Version")
    assert len(versions) == 3
    assert {v["DeletionPolicy"] for v in versions.values()} == {"Delete"}


def test_preprocess_reads_the_model_from_s3_and_nothing_else(split):
    env = functions_by_handler(split["api"])["functions.preprocess.handler.handler"]
    uri = json.dumps(env["Environment"]["Variables"]["MMSEARCH_MODEL_S3_URI"])
    assert "mmsearch-models-" in uri and "/models/all-MiniLM-L6-v2/" in uri
    statements = policy_statements(split["api"], "PreprocessServiceRole")
    assert actions_of(statements) == {
        "s3:GetObject",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    get = next(s for s in statements if s["Action"] == "s3:GetObject")
    assert json.dumps(get["Resource"]).endswith('/models/all-MiniLM-L6-v2/*"]]}')


def test_search_may_invoke_preprocess_and_summary_aliases_and_read_the_secret(split):
    statements = policy_statements(split["api"], "SearchServiceRole")
    invoke = [s for s in statements if s["Action"] == "lambda:InvokeFunction"]
    targets = json.dumps([s["Resource"] for s in invoke])
    assert "PreprocessLive" in targets and "SummaryLive" in targets
    assert "secretsmanager:GetSecretValue" in actions_of(statements)
    assert not {a for a in actions_of(statements) if a.startswith("s3:")}
    variables = functions_by_handler(split["api"])["functions.search.handler.handler"]
    variables = variables["Environment"]["Variables"]
    assert variables["MMSEARCH_DEPLOYMENT"] == "lambda"
    assert "PreprocessLive" in json.dumps(variables["MMSEARCH_PREPROCESS_FUNCTION"])
    assert "SummaryLive" in json.dumps(variables["MMSEARCH_SUMMARY_FUNCTION"])


def test_summary_reads_the_secret_and_invokes_nothing(split):
    actions = actions_of(policy_statements(split["api"], "SummaryServiceRole"))
    assert "secretsmanager:GetSecretValue" in actions
    assert not {a for a in actions if a.startswith(("lambda:", "s3:"))}


def test_http_api_routes_go_to_the_live_alias_of_their_function(split):
    template = split["api"]
    routes = template.find_resources("AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == ROUTE_KEYS
    integrations = template.find_resources("AWS::ApiGatewayV2::Integration")
    by_route = {}
    for route in routes.values():
        target = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        uri = json.dumps(integrations[target]["Properties"]["IntegrationUri"])
        by_route[route["Properties"]["RouteKey"]] = uri
    assert "SearchLive" in by_route["POST /v1/search"]
    assert "SearchLive" in by_route["GET /v1/scenes"]
    assert "PreprocessLive" in by_route["POST /v1/embed"]
    assert "SummaryLive" in by_route["POST /v1/documents:batchGet"]


def test_stage_is_throttled_and_logs_every_request_and_cors_allows_only_the_page(split):
    template = split["api"]
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "AutoDeploy": True,
            "DefaultRouteSettings": {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100},
            "AccessLogSettings": {"DestinationArn": Match.any_value(), "Format": Match.any_value()},
        },
    )
    api = next(iter(template.find_resources("AWS::ApiGatewayV2::Api").values()))
    cors = api["Properties"]["CorsConfiguration"]
    origins = json.dumps(cors["AllowOrigins"])
    assert len(cors["AllowOrigins"]) == 1
    assert "https://" in origins and "Distribution" in origins and "DomainName" in origins
    assert "*" not in origins
    assert sorted(cors["AllowMethods"]) == ["GET", "OPTIONS", "POST"]


def test_function_bodies_are_capped_below_the_6_mb_lambda_event_limit(split):
    for props in functions_by_handler(split["api"]).values():
        limit = int(props["Environment"]["Variables"]["MMSEARCH_MAX_BODY_BYTES"])
        assert limit * 4 / 3 < 6 * 2**20  # base64 growth of binary bodies included


def test_page_bucket_is_private_and_served_only_through_cloudfront_with_security_headers(split):
    web = split["web"]
    web.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            }
        },
    )
    web.resource_count_is("AWS::CloudFront::OriginAccessControl", 1)
    web.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": Match.object_like(
                {
                    "DefaultRootObject": "index.html",
                    "DefaultCacheBehavior": Match.object_like(
                        {"ViewerProtocolPolicy": "redirect-to-https"}
                    ),
                }
            )
        },
    )
    policy = next(iter(web.find_resources("AWS::CloudFront::ResponseHeadersPolicy").values()))
    headers = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert "script-src 'self'" in headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] == 365 * 86400


def test_the_api_stack_writes_config_json_with_the_api_url_beside_the_page(split):
    deployment = split["api"].find_resources("Custom::CDKBucketDeployment")
    (props,) = (d["Properties"] for d in deployment.values())
    assert props["Prune"] is False
    assert "mmsearch-site-" in json.dumps(props["DestinationBucketName"])
    page = next(iter(split["web"].find_resources("Custom::CDKBucketDeployment").values()))
    assert page["Properties"]["Exclude"] == ["config.json"]  # never pruned by the page deploy


def test_every_bucket_enforces_tls_and_encryption(split):
    for name in ("storage", "web"):
        for bucket in split[name].find_resources("AWS::S3::Bucket").values():
            assert bucket["Properties"]["BucketEncryption"]
        policies = split[name].find_resources("AWS::S3::BucketPolicy")
        denies = json.dumps(policies)
        assert '"aws:SecureTransport": "false"' in denies


def test_model_bucket_is_versioned_and_the_connection_secret_comes_from_noecho_parameters(split):
    storage = split["storage"]
    storage.has_resource_properties(
        "AWS::S3::Bucket",
        {"VersioningConfiguration": {"Status": "Enabled"}, "BucketName": Match.any_value()},
    )
    parameters = storage.to_json()["Parameters"]
    for name in ("MilvusUri", "MilvusToken", "MongoUri"):
        assert parameters[name]["NoEcho"] is True
    storage.resource_count_is("AWS::SecretsManager::Secret", 1)


def test_alarms_cover_5xx_rate_p99_latency_throttles_and_failed_indexing_runs(split):
    alarms = split["observability"].find_resources("AWS::CloudWatch::Alarm")
    described = sorted(a["Properties"]["AlarmDescription"] for a in alarms.values())
    text = "\n".join(described)
    assert "API 5xx rate above 1" in text
    assert "API p99 latency (ms) above 1500" in text
    for name in ("preprocess", "search", "summary", "indexing"):
        assert f"{name} throttles above 0" in text
    assert "failed indexing runs above 0" in text
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"]  # each one notifies the SNS topic
    split["observability"].resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_one_function_deployment_serves_every_route_with_snapstart(tmp_path):
    templates = synthesize(tmp_path, split_functions=False)
    functions = functions_by_handler(templates["api"])
    assert list(functions) == ["functions.composed.handler.handler"]
    (props,) = functions.values()
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    routes = templates["api"].find_resources("AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == ROUTE_KEYS
    assert "lambda:InvokeFunction" not in actions_of(
        policy_statements(templates["api"], "SearchServiceRole")
    )


def test_jwt_and_iam_auth_protect_every_route(tmp_path):
    jwt = synthesize(
        tmp_path / "jwt",
        auth="jwt",
        jwt_issuer="https://issuer.example.com",
        jwt_audience=["mmsearch"],
    )["api"]
    jwt.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {"AuthorizerType": "JWT", "JwtConfiguration": {"Issuer": "https://issuer.example.com"}},
    )
    iam = synthesize(tmp_path / "iam", auth="iam")["api"]
    for template, kind in ((jwt, "JWT"), (iam, "AWS_IAM")):
        for route in template.find_resources("AWS::ApiGatewayV2::Route").values():
            assert route["Properties"]["AuthorizationType"] == kind


def test_functions_can_be_placed_in_a_vpc(tmp_path):
    templates = synthesize(
        tmp_path,
        vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        availability_zones=["us-east-1a", "us-east-1b"],
    )
    placed = functions_by_handler(templates["api"]) | functions_by_handler(templates["indexing"])
    assert len(placed) == 4
    for props in placed.values():
        assert props["VpcConfig"]["SubnetIds"] == [
            "subnet-0123456789abcdef0",
            "subnet-0123456789abcdef1",
        ]


def test_cdk_nag_fails_the_synth_on_an_unacknowledged_finding(tmp_path):
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "careless")
    s3.Bucket(stack, "Open")  # no TLS enforcement, no access logs
    check(app)
    with pytest.raises(RuntimeError, match="AwsSolutions-S10"):
        app.synth()


def test_deploy_config_rejects_inconsistent_context():
    with pytest.raises(ValueError, match="jwt_issuer"):
        DeployConfig(auth="jwt")
    with pytest.raises(ValueError, match="subnet_ids"):
        DeployConfig(vpc_id="vpc-0123456789abcdef0")
    config = DeployConfig.from_context(
        {"snap_start": "false", "memory_mb": '{"preprocess": 1024}', "model_version": "2026"}.get
    )
    assert config.snap_start is False and config.model_version == "2026"
    assert config.memory_mb["preprocess"] == 1024 and config.memory_mb["search"] == 1024


def test_cdk_json_runs_the_app_module():
    assert json.loads((ROOT / "cdk.json").read_text())["app"] == "python -m infra.app"
