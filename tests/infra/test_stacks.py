"""The synthesized CloudFormation: functions, routes, grants, SnapStart, the page, alarms, and
cdk-nag's AwsSolutions pack with every finding acknowledged (else the synth itself fails)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from infra.config import DeployConfig
from infra.nag import check
from tests.infra.conftest import Synth

ROOT = Path(__file__).resolve().parents[2]
ROUTE_KEYS = {
    "POST /v1/search",
    "GET /v1/scenes",
    "GET /v1/health",
    "POST /v1/embed",
    "POST /v1/documents:batchGet",
}


@pytest.fixture(scope="module")
def split(synthesized: dict[str, Synth]) -> dict[str, Template]:
    """The default deployment's templates."""
    return synthesized["split"].templates


@pytest.fixture(scope="module")
def one(synthesized: dict[str, Synth]) -> dict[str, Template]:
    """One function, IAM auth, in a VPC, with the SageMaker branch."""
    return synthesized["one"].templates


@pytest.fixture(scope="module")
def jwt(synthesized: dict[str, Synth]) -> dict[str, Template]:
    """JWT auth, kept buckets adopted, internal routes following `auth`."""
    return synthesized["jwt"].templates


def functions_by_handler(template: Template) -> dict[str, dict[str, Any]]:
    found = template.find_resources("AWS::Lambda::Function")
    return {
        r["Properties"]["Handler"]: {"id": logical_id, **r["Properties"]}
        for logical_id, r in found.items()
        if r["Properties"].get("Handler", "").startswith(("functions.", "indexing."))
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


@pytest.mark.parametrize("variant", ["split", "one"])
def test_a_function_is_told_of_the_model_or_secret_exactly_when_it_may_read_them(
    synthesized: dict[str, Synth], variant: str
) -> None:
    """A handler fetches the model when MMSEARCH_MODEL_S3_URI is set and reads a secret when
    an MMSEARCH_*_SECRET is: either without its grant would fail at init."""
    templates = synthesized[variant].templates
    for name in ("api", "indexing"):
        for props in functions_by_handler(templates[name]).values():
            variables = props["Environment"]["Variables"]
            role = props["Role"]["Fn::GetAtt"][0]
            actions = actions_of(policy_statements(templates[name], role))
            assert ("MMSEARCH_MODEL_S3_URI" in variables) == ("s3:GetObject" in actions)
            told = any(v.startswith("MMSEARCH_") and v.endswith("_SECRET") for v in variables)
            assert told == ("secretsmanager:GetSecretValue" in actions)


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
    assert "SearchLive" in by_route["GET /v1/health"]  # the page asks it for the image space
    assert "PreprocessLive" in by_route["POST /v1/embed"]
    assert "SummaryLive" in by_route["POST /v1/documents:batchGet"]


def test_stage_is_throttled_and_logs_every_request_and_no_cors_without_a_foreign_page(split):
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
    # The page calls its own origin (CloudFront forwards /v1/*): no origin is let in by CORS.
    assert "CorsConfiguration" not in api["Properties"]


def test_cors_allows_exactly_the_web_origin_when_the_page_lives_elsewhere(jwt):
    api = next(iter(jwt["api"].find_resources("AWS::ApiGatewayV2::Api").values()))
    cors = api["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["https://search.example.com"]
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
    web.resource_count_is("AWS::CloudFront::OriginAccessControl", 2)  # the page, the media
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


def test_the_page_calls_its_own_origin_which_forwards_v1_to_the_api_uncached(split):
    """Item 15's CSP: connect-src names only the page's own origin, which is the API's too."""
    assert json.loads((ROOT / "frontend" / "config.json").read_text()) == {"apiBaseUrl": ""}
    assert not split["api"].find_resources("Custom::CDKBucketDeployment")  # no cross-stack write
    web = split["web"]
    (distribution,) = web.find_resources("AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    behaviors = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert set(behaviors) == {"/v1/*", "/media/*"}  # /media/*: tests/infra/test_media.py
    behavior = behaviors["/v1/*"]
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert set(behavior["AllowedMethods"]) >= {"GET", "POST", "OPTIONS"}
    assert behavior["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled
    origin = next(o for o in config["Origins"] if o["Id"] == behavior["TargetOriginId"])
    domain = json.dumps(origin["DomainName"])
    assert ".execute-api." in domain and "ImportValue" in domain and "Api" in domain
    policy = next(iter(web.find_resources("AWS::CloudFront::ResponseHeadersPolicy").values()))
    csp = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"][
        "ContentSecurityPolicy"
    ]["ContentSecurityPolicy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["connect-src"] == "'self'"
    assert "*" not in csp.replace("'none'", "")
    outputs = web.to_json()["Outputs"]
    assert "search page" in json.dumps(outputs)


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
    storage.resource_count_is("AWS::SecretsManager::Secret", 2)  # one per store


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


def test_one_function_deployment_serves_every_route_with_snapstart(one):
    templates = one
    functions = functions_by_handler(templates["api"])
    assert list(functions) == ["functions.composed.handler.handler"]
    (props,) = functions.values()
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    routes = templates["api"].find_resources("AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == ROUTE_KEYS
    assert "lambda:InvokeFunction" not in actions_of(
        policy_statements(templates["api"], "SearchServiceRole")
    )


def test_jwt_and_iam_auth_protect_every_route(jwt, one):
    jwt["api"].has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {"AuthorizerType": "JWT", "JwtConfiguration": {"Issuer": "https://issuer.example.com"}},
    )
    for template, kind in ((jwt["api"], "JWT"), (one["api"], "AWS_IAM")):
        for route in template.find_resources("AWS::ApiGatewayV2::Route").values():
            if route["Properties"]["RouteKey"] not in WRITE_KEYS:  # IAM whatever `auth` is
                assert route["Properties"]["AuthorizationType"] == kind


def test_functions_can_be_placed_in_a_vpc(one):
    placed = functions_by_handler(one["api"]) | functions_by_handler(one["indexing"])
    assert len(placed) == 2  # the one function and the indexing function
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


# --- issue 14: what a first deploy and a redeploy meet -------------------------------------

# "Customize HTTP API access logs", API Gateway developer guide (http-api-logging-variables):
# every `$context` variable an HTTP API stage's access-log format may use. REST-only variables
# (resourcePath, resourceId, identity.apiKey, ...) make the stage fail to deploy.
HTTP_API_CONTEXT_VARIABLES = {
    "accountId", "apiId", "authorizer.error", "awsEndpointRequestId", "awsEndpointRequestId2",
    "customDomain.basePathMatched", "dataProcessed", "domainName", "domainPrefix",
    "error.message", "error.messageString", "error.responseType", "extendedRequestId",
    "httpMethod", "identity.accountId", "identity.caller",
    "identity.cognitoAuthenticationProvider", "identity.cognitoAuthenticationType",
    "identity.cognitoIdentityId", "identity.cognitoIdentityPoolId", "identity.principalOrgId",
    "identity.clientCert.clientCertPem", "identity.clientCert.subjectDN",
    "identity.clientCert.issuerDN", "identity.clientCert.serialNumber",
    "identity.clientCert.validity.notBefore", "identity.clientCert.validity.notAfter",
    "identity.sourceIp", "identity.user", "identity.userAgent", "identity.userArn",
    "integration.error", "integration.integrationStatus", "integration.latency",
    "integration.requestId", "integration.status", "integrationErrorMessage",
    "integrationLatency", "integrationStatus", "path", "protocol", "requestId", "requestTime",
    "requestTimeEpoch", "responseLatency", "responseLength", "routeKey", "stage", "status",
}  # fmt: skip


def assets(synth: Synth) -> dict[str, dict[str, Any]]:
    """{kind: {asset id: asset}} over every stack's asset manifest (what `cdk deploy` builds
    and uploads before the first stack)."""
    found: dict[str, dict[str, Any]] = {"files": {}, "dockerImages": {}}
    for manifest in synth.outdir.glob("*.assets.json"):
        loaded = json.loads(manifest.read_text())
        for kind in found:
            found[kind] |= loaded.get(kind, {})
    return found


def test_the_default_deployment_builds_no_docker_image(synthesized):
    """Item 4: the CLI builds every Docker asset before it deploys the first stack."""
    assert assets(synthesized["split"])["dockerImages"] == {}
    indexing = synthesized["split"].templates["indexing"]
    policies = json.dumps(indexing.find_resources("AWS::IAM::Policy"))
    assert "sagemaker:" not in policies and "iam:PassRole" not in policies
    assert "sagemaker" not in json.dumps(indexing.find_resources("AWS::IAM::Role"))
    (image,) = assets(synthesized["one"])["dockerImages"].values()  # -c sagemaker=true
    assert image["source"]["platform"] == "linux/amd64"


def test_without_sagemaker_every_corpus_embeds_on_lambda(split):
    (indexer,) = functions_by_handler_prefix(split["indexing"], "indexing.").values()
    variables = indexer["Environment"]["Variables"]
    assert int(variables["MMSEARCH_SAGEMAKER_MIN_DOCS"]) >= 2**62


def functions_by_handler_prefix(template: Template, prefix: str) -> dict[str, dict[str, Any]]:
    found = template.find_resources("AWS::Lambda::Function")
    return {
        r["Properties"]["Handler"]: r["Properties"]
        for r in found.values()
        if r["Properties"].get("Handler", "").startswith(prefix)
    }


def test_the_processing_image_installs_boto3_at_the_locks_pins():
    """Item 5: Lambda's runtime provides boto3, a processing container does not."""
    from infra.processing import processing_image_context

    context = processing_image_context()
    assert "boto3" in (context / "requirements.txt").read_text().split()
    lock = (ROOT / "requirements.lock").read_text()
    assert (context / "constraints.txt").read_text() == lock
    assert {"boto3", "botocore", "s3transfer"} <= {
        line.split("==")[0] for line in lock.splitlines() if "==" in line
    }
    dockerfile = (context / "Dockerfile").read_text()
    assert "-c /opt/mmsearch/constraints.txt -r /opt/mmsearch/requirements.txt" in dockerfile
    assert "import boto3" in dockerfile  # the build fails if it did not install


def test_the_processing_role_may_list_the_runs_prefix_its_s3prefix_input_lists(one):
    """Item 5: an S3Prefix input is listed first; without ListBucket S3 answers 403."""
    statements = policy_statements(one["indexing"], "ProcessingRole")
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert json.dumps(listing["Resource"]).endswith(
        '-data-", {"Ref": "AWS::AccountId"}, "-", {"Ref": "AWS::Region"}]]}'
    )
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["runs/*"]}}


def state_machine_definition(template: Template) -> str:
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    return json.dumps(machine["Properties"]["DefinitionString"])


def test_each_shard_map_writes_its_results_to_s3_not_into_the_state(one, split):
    """Item 5: without a ResultWriter every child's output returns in the Map's state output
    (256 KB at most), which caps the shard count; Finalize reads the shards, not results."""
    for templates, maps in ((split, 1), (one, 2)):
        text = state_machine_definition(templates["indexing"])
        assert text.count('\\"ResultWriter\\":') == maps
        assert text.count('\\"Prefix\\":\\"runs/map-results\\"') == maps
        assert (
            text.count('\\"ResultSelector\\":{\\"results.$\\":\\"$.ResultWriterDetails\\"}') == maps
        )
    statements = policy_statements(split["indexing"], "StateMachineRole")
    assert "s3:PutObject" in actions_of(statements)


def test_alarm_topic_is_encrypted_with_a_rotating_key_cloudwatch_may_use(split):
    """Item 6: alarms cannot publish to a topic under the AWS-managed alias/aws/sns."""
    observability = split["observability"]
    ((key_id, key),) = observability.find_resources("AWS::KMS::Key").items()
    assert key["Properties"]["EnableKeyRotation"] is True
    (grant,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert set(grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    (topic,) = observability.find_resources("AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert "alias/aws/sns" not in json.dumps(observability.to_json())


def imports(template: Template) -> set[str]:
    """The export names a template imports (Fn::ImportValue), as JSON text."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "Fn::ImportValue" in value:
                found.add(json.dumps(value["Fn::ImportValue"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(template.to_json())
    return found


def exports(template: Template) -> set[str]:
    outputs = template.to_json().get("Outputs", {})
    return {json.dumps(o["Export"]["Name"]) for o in outputs.values() if "Export" in o}


def test_switching_split_functions_removes_no_export_another_stack_imports(split, one):
    """Item 7: CloudFormation refuses to update the api stack while another stack imports an
    export the update would delete: what the observability and web stacks import in one mode
    is exported in the other too."""
    exported = {
        variant: set().union(*(exports(t) for t in templates.values()))
        for variant, templates in (("split", split), ("one", one))
    }
    # Either way round, the stacks updated first still export what the others import.
    for before, after in (("split", "one"), ("one", "split")):
        templates = split if before == "split" else one
        for stack in ("observability", "web"):
            assert imports(templates[stack]) <= exported[after], (before, stack)
    assert imports(split["observability"]) == imports(one["observability"])
    for stack in (split, one):  # functions are watched by name, not through an export
        assert not any(
            "Function" in name or "Live" in name for name in imports(stack["observability"])
        )
        for fn in functions_by_handler_prefix(stack["api"], "functions.").values():
            assert fn["FunctionName"].startswith("mmsearch-")
        alarms = json.dumps(stack["observability"].find_resources("AWS::CloudWatch::Alarm"))
        assert '"Value": "mmsearch-search"' in alarms and '"Value": "mmsearch-indexing"' in alarms


def fixed_name_buckets(template: Template) -> dict[str, str]:
    """{bucket name as JSON: deletion policy} of buckets created with a fixed name."""
    return {
        json.dumps(b["Properties"]["BucketName"]): b.get("DeletionPolicy", "Delete")
        for b in template.find_resources("AWS::S3::Bucket").values()
        if "BucketName" in b["Properties"]
    }


def test_a_redeploy_after_destroy_adopts_the_kept_buckets_instead_of_recreating_them(split, jwt):
    """Item 7: `make destroy` keeps the model and data buckets; their fixed names then exist,
    so a second deploy that creates them fails. With -c existing_buckets=true the storage
    stack creates neither and every reader still finds them by name."""
    kept = {n for n, policy in fixed_name_buckets(split["storage"]).items() if policy == "Retain"}
    assert {"models" in n for n in kept} == {True, False} and len(kept) == 2
    assert fixed_name_buckets(jwt["storage"]) == {}
    for stacks in (split, jwt):  # the indexing function still writes to the kept bucket
        (indexer,) = functions_by_handler_prefix(stacks["indexing"], "indexing.").values()
        bucket = json.dumps(indexer["Environment"]["Variables"]["MMSEARCH_BATCH_BUCKET"])
        assert bucket.startswith('{"Fn::Join": ["", ["mmsearch-data-"')


def test_access_logs_use_only_http_api_context_variables(split):
    """Item 8: $context.resourcePath (REST only) made the stage fail to deploy."""
    (stage,) = split["api"].find_resources("AWS::ApiGatewayV2::Stage").values()
    log_format = stage["Properties"]["AccessLogSettings"]["Format"]
    fields = json.loads(log_format)
    used = {value.removeprefix("$context.") for value in fields.values()}
    assert all(v.startswith("$context.") for v in fields.values())
    assert used <= HTTP_API_CONTEXT_VARIABLES, used - HTTP_API_CONTEXT_VARIABLES
    assert {"requestId", "routeKey", "status", "responseLatency"} <= used


def test_the_vpc_variant_reaches_s3_secrets_and_lambda_through_endpoints(one):
    """Item 9: private subnets have no way out; endpoints take HTTPS from the functions."""
    api = one["api"]
    endpoints = api.find_resources("AWS::EC2::VPCEndpoint")
    services = {
        json.dumps(e["Properties"]["ServiceName"]): e["Properties"] for e in endpoints.values()
    }
    by_kind = {
        name: next(p for s, p in services.items() if name in s)
        for name in (".s3", ".secretsmanager", ".lambda")
    }
    assert by_kind[".s3"]["VpcEndpointType"] == "Gateway"
    assert by_kind[".s3"]["RouteTableIds"] == ["rtb-0123456789abcdef0"]
    for name in (".secretsmanager", ".lambda"):
        assert by_kind[name]["VpcEndpointType"] == "Interface"
        assert by_kind[name]["PrivateDnsEnabled"] is True
        assert by_kind[name]["SubnetIds"] == [
            "subnet-0123456789abcdef0",
            "subnet-0123456789abcdef1",
        ]
    (function,) = functions_by_handler_prefix(api, "functions.").values()
    (function_group,) = function["VpcConfig"]["SecurityGroupIds"]
    ingress = api.find_resources("AWS::EC2::SecurityGroupIngress")
    rules = [r["Properties"] for r in ingress.values()]
    assert rules and all(r["FromPort"] == r["ToPort"] == 443 for r in rules)
    assert {json.dumps(r["SourceSecurityGroupId"]) for r in rules} == {json.dumps(function_group)}
    groups = api.find_resources("AWS::EC2::SecurityGroup")
    endpoint_group = next(
        g for g in groups.values() if "endpoints" in g["Properties"]["GroupDescription"]
    )
    assert "SecurityGroupIngress" not in endpoint_group["Properties"]  # nothing else may enter
    # The indexing function sits in the same security group (one placement for the VPC).
    (indexer,) = functions_by_handler_prefix(one["indexing"], "indexing.").values()
    assert "ImportValue" in json.dumps(indexer["VpcConfig"]["SecurityGroupIds"])


def test_with_jwt_or_iam_the_page_is_not_served_and_the_web_stack_says_so(jwt, one, split):
    """Item 10: the page sends no token and signs nothing; auth modes are API-only."""
    for stacks, auth in ((jwt, "jwt"), (one, "iam")):
        web = stacks["web"]
        served = web.to_json()["Outputs"]["Served"]["Value"]
        assert f"not served: auth={auth}" in served
        (distribution,) = web.find_resources("AWS::CloudFront::Distribution").values()
        behaviors = distribution["Properties"]["DistributionConfig"]["CacheBehaviors"]
        assert [b["PathPattern"] for b in behaviors] == ["/media/*"]  # images, not the API
    assert "the search page" in split["web"].to_json()["Outputs"]["Served"]["Value"]


# --- issue 15: per-client fairness ---------------------------------------------------------


def test_every_route_has_its_own_throttle_and_the_stage_waits_for_the_routes(split):
    (stage,) = split["api"].find_resources("AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["RouteSettings"]
    assert set(settings) == ROUTE_KEYS
    assert settings["POST /v1/embed"] == {"ThrottlingRateLimit": 5, "ThrottlingBurstLimit": 10}
    assert settings["POST /v1/search"]["ThrottlingRateLimit"] == 50
    routes = split["api"].find_resources("AWS::ApiGatewayV2::Route")
    assert set(routes) <= set(stage["DependsOn"])  # route settings fail on a missing route


def test_embed_and_batch_get_take_iam_signed_callers_only_by_default(split, jwt):
    auth = {
        r["Properties"]["RouteKey"]: r["Properties"]["AuthorizationType"]
        for r in split["api"].find_resources("AWS::ApiGatewayV2::Route").values()
    }
    assert auth == {
        "POST /v1/search": "NONE",
        "GET /v1/scenes": "NONE",
        "GET /v1/health": "NONE",
        "POST /v1/embed": "AWS_IAM",
        "POST /v1/documents:batchGet": "AWS_IAM",
    }
    # private_embed_and_documents=false: they follow `auth` like every other route.
    for route in jwt["api"].find_resources("AWS::ApiGatewayV2::Route").values():
        if route["Properties"]["RouteKey"] not in WRITE_KEYS:
            assert route["Properties"]["AuthorizationType"] == "JWT"


WRITE_KEYS = {"POST /v1/documents:batchUpsert", "POST /v1/documents:batchDelete"}


def test_writes_are_off_by_default_and_when_on_take_iam_signed_callers_only(split, jwt):
    """Without `writes` no write route or documents function exists; with it (the jwt variant)
    the two routes go to the documents function's alias behind IAM although `auth` is jwt,
    and only that function gains the model and both secrets."""
    routes = split["api"].find_resources("AWS::ApiGatewayV2::Route").values()
    assert not WRITE_KEYS & {r["Properties"]["RouteKey"] for r in routes}
    assert "functions.documents.handler.handler" not in functions_by_handler(split["api"])
    template = jwt["api"]
    routes = {
        r["Properties"]["RouteKey"]: r
        for r in template.find_resources("AWS::ApiGatewayV2::Route").values()
    }
    integrations = template.find_resources("AWS::ApiGatewayV2::Integration")
    for key in WRITE_KEYS:
        assert routes[key]["Properties"]["AuthorizationType"] == "AWS_IAM"
        target = routes[key]["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        assert "DocumentsLive" in json.dumps(integrations[target]["Properties"]["IntegrationUri"])
    (stage,) = template.find_resources("AWS::ApiGatewayV2::Stage").values()
    assert set(stage["Properties"]["RouteSettings"]) >= WRITE_KEYS
    functions = functions_by_handler(template)
    writer = functions["functions.documents.handler.handler"]
    variables = writer["Environment"]["Variables"]
    assert "MMSEARCH_MODEL_S3_URI" in variables
    assert sum(v.startswith("MMSEARCH_") and v.endswith("_SECRET") for v in variables) == 2
    statements = policy_statements(template, writer["Role"]["Fn::GetAtt"][0])
    actions = actions_of(statements)
    assert {"s3:GetObject", "secretsmanager:GetSecretValue", "s3:PutObject"} <= actions
    # Images written by id are published to the media bucket, under media/ only.
    assert "MMSEARCH_MEDIA_BUCKET" in variables
    puts = [s for s in statements if "s3:PutObject" in json.dumps(s["Action"])]
    assert puts and all("/media/*" in json.dumps(s["Resource"]) for s in puts), puts
    search = functions["functions.search.handler.handler"]["Environment"]["Variables"]
    # Readers keep their one store; search alone also reads the debug token.
    assert {v for v in search if v.endswith("_SECRET")} == {
        "MMSEARCH_MILVUS_SECRET",
        "MMSEARCH_DEBUG_TOKEN_SECRET",
    }


def test_search_gets_reserved_concurrency_only_when_asked(split, one):
    assert (
        "ReservedConcurrentExecutions"
        not in functions_by_handler(split["api"])["functions.search.handler.handler"]
    )
    (composed,) = functions_by_handler(one["api"]).values()
    assert composed["ReservedConcurrentExecutions"] == 20


def test_deploy_config_checks_route_throttles_and_vpc_endpoints():
    with pytest.raises(ValueError, match="unknown routes"):
        DeployConfig(route_throttle={"POST /v1/nothing": [1, 1]})
    config = DeployConfig.from_context({"route_throttle": '{"POST /v1/embed": [1, 2]}'}.get)
    assert config.route_throttle["POST /v1/embed"] == (1, 2)
    assert config.route_throttle["POST /v1/search"] == (50, 100)
    app = App()
    with pytest.raises(ValueError, match="route_table_ids"):
        from infra.network import FunctionNetwork

        FunctionNetwork(
            Stack(app, "s"), "n", config=DeployConfig(vpc_id="vpc-1", subnet_ids=["subnet-1"])
        )
