"""Function init, run under exactly the permissions the synthesized templates grant.

The app is synthesized, each function's role statements are read back from its template, and
the real init code (`materialize_models`, `resolve_connection`, the indexing `load_settings`)
runs with that function's environment against moto, every S3 and Secrets Manager call checked
against those statements (tests/infra/aws_rules.py): a missing grant is AccessDenied, and a
missing key read without `s3:ListBucket` is 403, as in AWS. The account starts empty, as a
newcomer's does: the model bucket holds only what the deployment's own BucketDeployment copies
there (emulated from the template: its asset folder synced under its key prefix) or what
`mmsearch push-model` put there.
"""

from __future__ import annotations

import json
import os
import shutil
import string
from collections.abc import Iterator
from pathlib import Path
from secrets import choice
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.core.errors import ModelUnavailable
from functions.core.models.manifest import MANIFEST_FILE, TOKENIZER_FILE, ModelManifest, sha256_file
from functions.core.settings import Settings
from functions.core.snapstart import RestorableHandler
from functions.core.stores.connection import ConnectionSecretError
from functions.search.bucketing import DebugAccess
from offline.model_push import push_model
from tests.infra.aws_rules import ACCOUNT, REGION, Policy, Templates, enforce
from tests.infra.conftest import Synth

MODELS = f"mmsearch-models-{ACCOUNT}-{REGION}"
MILVUS = {"milvus_uri": "https://in01-x.zillizcloud.invalid", "milvus_token": "db_admin:t-1"}
MONGO = {"mongo_uri": "mongodb+srv://app:pw-1@cluster0.invalid"}
BATCH = "indexing.batch.handler.handler"


@pytest.fixture(scope="module")
def split_out(synthesized: dict[str, Synth]) -> Path:
    """Defaults: split functions, the exported model shipped with the deployment."""
    return synthesized["split"].outdir


@pytest.fixture(scope="module")
def pinned(synthesized: dict[str, Synth]) -> Synth:
    """One function and the SageMaker branch, serving a version pushed earlier
    (`-c model_version=<v>`)."""
    synth = synthesized["one"]
    assert synth.config.model_version and not synth.config.split_functions
    return synth


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def fresh_account(out: Path) -> Templates:
    """Empty buckets and the stores' secrets, as the storage stack creates them; the templates
    resolved against them (a secret's Ref is the ARN Secrets Manager gave it)."""
    s3 = boto3.client("s3", region_name=REGION)
    templates = Templates(out)
    for stack, _, bucket in templates.resources("AWS::S3::Bucket"):
        if "BucketName" in bucket["Properties"]:
            s3.create_bucket(Bucket=templates.resolve(bucket["Properties"]["BucketName"], stack))
    secrets = boto3.client("secretsmanager", region_name=REGION)
    physical = {}
    for _, logical, secret in templates.resources("AWS::SecretsManager::Secret"):
        stores = [v for k, v in {"Milvus": MILVUS, "Mongo": MONGO}.items() if logical.startswith(k)]
        value = stores[0] if stores else MILVUS | MONGO  # the older secret held both
        if generate := secret["Properties"].get("GenerateSecretString"):
            value = generated(generate)
        name = f"{logical}-{secret['Properties'].get('Description', '')[:8]}".replace(" ", "")
        physical[logical] = secrets.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]
    return Templates(out, physical)


def generated(spec: dict[str, Any]) -> dict[str, str]:
    """What Secrets Manager stores for a GenerateSecretString: the template with one random
    key of the given length (letters and digits when punctuation is excluded)."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += string.punctuation
    value: dict[str, str] = json.loads(spec["SecretStringTemplate"])
    length = spec.get("PasswordLength", 32)
    value[spec["GenerateStringKey"]] = "".join(choice(alphabet) for _ in range(length))
    return value


def run_bucket_deployments(templates: Templates) -> list[str]:
    """What each Custom::CDKBucketDeployment into the model bucket does on create: its asset's
    files synced under its key prefix. Returns the keys written."""
    s3 = boto3.client("s3", region_name=REGION)
    written = []
    for stack, _, resource in templates.resources("Custom::CDKBucketDeployment"):
        props = templates.resolve(resource["Properties"], stack)
        if props["DestinationBucketName"] != MODELS:
            continue
        for key in props["SourceObjectKeys"]:
            asset = templates.out / f"asset.{key.removesuffix('.zip')}"
            for path in sorted(p for p in asset.rglob("*") if p.is_file()):
                target = (
                    props.get("DestinationBucketKeyPrefix", "") + path.relative_to(asset).as_posix()
                )
                s3.upload_file(str(path), MODELS, target)
                written.append(target)
    return written


def functions(templates: Templates) -> dict[str, tuple[str, str, dict[str, str]]]:
    """{handler: (stack, role logical id, resolved environment)} of every mmsearch function."""
    found = {}
    for stack, _, function in templates.resources("AWS::Lambda::Function"):
        props = function["Properties"]
        handler = props.get("Handler", "")
        if handler.startswith(("functions.", "indexing.")):
            role = props["Role"]["Fn::GetAtt"][0]
            env = templates.resolve(props["Environment"]["Variables"], stack)
            found[handler] = (stack, role, env)
    return found


def run_init(
    handler: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp: Path
) -> Settings:
    """The function's real init with its deployed environment (home and cache under `tmp`)."""
    for name in [n for n in os.environ if n.startswith("MMSEARCH_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MMSEARCH_HOME", str(tmp / "home"))
    monkeypatch.setenv("MMSEARCH_MODEL_CACHE_DIR", str(tmp / "cache"))
    if handler == BATCH:
        from indexing.batch.settings import load_settings

        return load_settings()
    from functions.core.models.model_source import materialize_models
    from functions.core.stores.connection import resolve_connection

    return materialize_models(resolve_connection(Settings()))


def init_under_role(
    templates: Templates, handler: str, monkeypatch: pytest.MonkeyPatch, tmp: Path
) -> tuple[Settings, Policy]:
    stack, role, env = functions(templates)[handler]
    policy = Policy(f"{stack}/{role}", templates.role_statements(stack, role))
    with enforce(policy):
        settings = run_init(handler, env, monkeypatch, tmp / handler)
    return settings, policy


def secret_values(settings: Settings) -> dict[str, str | None]:
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    mongo = settings.mongo_uri.get_secret_value() if settings.mongo_uri else None
    return {"milvus_uri": settings.milvus_uri, "milvus_token": token, "mongo_uri": mongo}


# What each function must end up with: its model, and only its own stores' secrets.
SPLIT = {
    "functions.preprocess.handler.handler": (True, set()),
    "functions.search.handler.handler": (False, {"milvus"}),
    "functions.summary.handler.handler": (False, {"mongo"}),
    BATCH: (True, {"milvus", "mongo"}),
}


@pytest.mark.parametrize("handler", list(SPLIT))
def test_a_first_deploy_inits_every_function_under_its_own_grants(
    split_out: Path, aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, handler: str
) -> None:
    """A fresh account: the storage stack's model deployment runs before the api stack
    publishes a version (SnapStart runs init then), and init succeeds with only its grants."""
    templates = fresh_account(split_out)
    written = run_bucket_deployments(templates)

    settings, policy = init_under_role(templates, handler, monkeypatch, tmp_path)

    assert policy.refused == []
    assert any(k.endswith(f"/{MANIFEST_FILE}") for k in written)
    loads_model, stores = SPLIT[handler]
    if loads_model:
        local = ModelManifest.read(settings.resolved_model_dir)
        assert settings.resolved_model_dir.is_relative_to(tmp_path)
        assert settings.model_s3_uri and settings.model_s3_uri.endswith(
            f"/{local.content_version()}/"
        )
    else:
        assert settings.model_s3_uri is None
    values = secret_values(settings)
    assert (values["milvus_token"] == MILVUS["milvus_token"]) == ("milvus" in stores)
    assert (values["mongo_uri"] == MONGO["mongo_uri"]) == ("mongo" in stores)


def test_the_api_stack_and_its_versions_come_after_the_model_deployment(split_out: Path) -> None:
    manifest = json.loads((split_out / "manifest.json").read_text())
    deployments = Templates(split_out).resources("Custom::CDKBucketDeployment")
    (holder,) = {stack for stack, logical, _ in deployments if logical.startswith("Model")}
    for stack in ("mmsearch-api", "mmsearch-indexing"):
        assert holder in manifest["artifacts"][stack].get("dependencies", [])


def test_every_function_records_the_one_served_version(split_out: Path) -> None:
    templates = Templates(split_out)
    outputs = templates.stacks["mmsearch-storage"]["Outputs"]
    version = outputs["ModelVersion"]["Value"]
    envs = {h: env for h, (_, _, env) in functions(templates).items()}
    assert set(envs) == set(SPLIT)
    assert {env["MMSEARCH_MODEL_VERSION"] for env in envs.values()} == {version}
    uris = {env["MMSEARCH_MODEL_S3_URI"] for env in envs.values() if "MMSEARCH_MODEL_S3_URI" in env}
    assert uris == {f"s3://{MODELS}/models/all-MiniLM-L6-v2/{version}/"}


def push_other_version(model_dir: Path, tmp: Path, version: str) -> str:
    """`mmsearch push-model --version <version>` of a model other than the local export."""
    other = tmp / "other"
    shutil.copytree(model_dir, other)
    (other / TOKENIZER_FILE).write_text('{"other": true}')
    manifest = ModelManifest.read(other)
    manifest.files[TOKENIZER_FILE] = sha256_file(other / TOKENIZER_FILE)
    manifest.write(other)
    return push_model(other, MODELS, version=version, s3=boto3.client("s3", region_name=REGION)).uri


def processing_role(templates: Templates) -> tuple[str, str]:
    """(stack, logical id) of the role SageMaker processing jobs assume."""
    (found,) = [
        (stack, logical)
        for stack, logical, role in templates.resources("AWS::IAM::Role")
        if "sagemaker.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    ]
    return found


@pytest.mark.parametrize("runner", ["functions.composed.handler.handler", BATCH, "processing"])
def test_a_pinned_version_inits_under_the_grants_without_any_latest_pointer(
    pinned: Synth,
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    deployed_model: Path,
    runner: str,
) -> None:
    """`-c model_version=<v>`: the one function, the indexing function and the processing jobs
    (same environment as the indexing function) load models/<name>/<v>/ directly; S3 would
    answer the old code's LATEST read with 403, as their roles hold no s3:ListBucket."""
    templates = fresh_account(pinned.outdir)
    assert run_bucket_deployments(templates) == []  # a pinned other version ships nothing
    uri = push_other_version(deployed_model, tmp_path, str(pinned.config.model_version))

    if runner == "processing":
        stack, role = processing_role(templates)
        policy = Policy(f"{stack}/{role}", templates.role_statements(stack, role))
        with enforce(policy):
            settings = run_init(BATCH, functions(templates)[BATCH][2], monkeypatch, tmp_path)
    else:
        settings, policy = init_under_role(templates, runner, monkeypatch, tmp_path)

    assert policy.refused == []
    assert settings.model_s3_uri == uri
    assert ModelManifest.read(settings.resolved_model_dir).files[TOKENIZER_FILE] == sha256_file(
        tmp_path / "other" / TOKENIZER_FILE
    )
    assert secret_values(settings) == {**MILVUS, **MONGO}


def test_a_pinned_version_never_pushed_fails_init_naming_it(
    pinned: Synth, aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    templates = fresh_account(pinned.outdir)
    version = pinned.config.model_version

    with pytest.raises(
        ModelUnavailable,
        match=f"no manifest.json under s3://{MODELS}/models/all-MiniLM-L6-v2/{version}/",
    ):
        init_under_role(templates, "functions.composed.handler.handler", monkeypatch, tmp_path)


# The checker itself: what it must refuse, as AWS would.


def test_the_checker_refuses_a_secret_the_role_was_not_granted(
    split_out: Path, aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    templates = fresh_account(split_out)
    stack, role, env = functions(templates)["functions.summary.handler.handler"]
    milvus_arn = functions(templates)["functions.search.handler.handler"][2][
        "MMSEARCH_MILVUS_SECRET"
    ]
    policy = Policy("summary", templates.role_statements(stack, role))
    with enforce(policy), pytest.raises(ConnectionSecretError, match="AccessDenied"):
        run_init("x", {**env, "MMSEARCH_MILVUS_SECRET": milvus_arn}, monkeypatch, tmp_path)
    assert policy.refused == [f"secretsmanager:GetSecretValue {milvus_arn}"]


def test_the_checker_answers_a_missing_key_with_403_without_list_bucket(aws: None) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=MODELS)
    reader = Policy(
        "reader",
        [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{MODELS}/*"}],
    )
    lister = Policy(
        "lister",
        [
            *reader.statements,
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{MODELS}"},
        ],
    )

    with enforce(reader), pytest.raises(Exception) as without_list:
        s3.get_object(Bucket=MODELS, Key="models/x/LATEST")
    with enforce(lister), pytest.raises(Exception) as with_list:
        s3.get_object(Bucket=MODELS, Key="models/x/LATEST")
    with enforce(reader), pytest.raises(Exception) as elsewhere:
        s3.get_object(Bucket="another-bucket", Key="k")

    assert without_list.value.response["Error"]["Code"] == "AccessDenied"  # type: ignore[attr-defined]
    assert with_list.value.response["Error"]["Code"] == "NoSuchKey"  # type: ignore[attr-defined]
    assert elsewhere.value.response["Error"]["Code"] == "AccessDenied"  # type: ignore[attr-defined]
    assert reader.refused == ["s3:GetObject arn:aws:s3:::another-bucket/k"]


# The debug drawer's token (MMSEARCH_DEBUG_TOKEN in AWS): a secret the api stack generates,
# told to and readable by the search function alone.

SEARCH = "functions.search.handler.handler"
DEBUG_SECRET = "MMSEARCH_DEBUG_TOKEN_SECRET"


def debug_token(arn: str) -> str:
    value = boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=arn)
    token: str = json.loads(value["SecretString"])["debug_token"]
    return token


def test_search_alone_is_told_the_generated_debug_token_and_the_drawer_opens_with_it(
    split_out: Path, aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    templates = fresh_account(split_out)
    found = functions(templates)
    assert {h for h, (_, _, env) in found.items() if DEBUG_SECRET in env} == {SEARCH}
    assert "DebugTokenSecretName" in templates.stacks["mmsearch-api"]["Outputs"]

    settings, policy = init_under_role(templates, SEARCH, monkeypatch, tmp_path)

    assert policy.refused == []
    token = debug_token(found[SEARCH][2][DEBUG_SECRET])
    assert len(token) == 40 and token.isalnum()
    assert settings.debug_token is not None
    assert settings.debug_token.get_secret_value() == token
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "mmsearch-search")  # closed unless the token
    access = DebugAccess.from_settings(settings)
    assert access.allows(token)
    assert not access.allows(token[:-1] + "x") and not access.allows(None)


@pytest.mark.parametrize("handler", [h for h in SPLIT if h != SEARCH])
def test_no_other_function_may_read_the_debug_token(
    split_out: Path, aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, handler: str
) -> None:
    templates = fresh_account(split_out)
    run_bucket_deployments(templates)
    arn = functions(templates)[SEARCH][2][DEBUG_SECRET]
    stack, role, env = functions(templates)[handler]
    policy = Policy(handler, templates.role_statements(stack, role))

    with enforce(policy), pytest.raises(ConnectionSecretError, match="AccessDenied"):
        run_init(handler, {**env, DEBUG_SECRET: arn}, monkeypatch, tmp_path)

    assert policy.refused == [f"secretsmanager:GetSecretValue {arn}"]


def test_a_snapstart_restore_picks_up_a_replaced_debug_token_under_the_same_grants(
    split_out: Path, aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Read once at init (the snapshot holds it); after a restore the secret is read again
    and, when it changed (`put-secret-value`), init runs again with the new value."""
    templates = fresh_account(split_out)
    stack, role, env = functions(templates)[SEARCH]
    policy = Policy(SEARCH, templates.role_statements(stack, role))
    new = "N3wDebugToken0123456789abcdefghijklmnopq"

    def init() -> tuple[Settings, Any]:
        return run_init(SEARCH, env, monkeypatch, tmp_path), lambda event, context: {}

    with enforce(policy):
        restorable = RestorableHandler(init)
    before = restorable.settings
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=env[DEBUG_SECRET], SecretString=json.dumps({"debug_token": new})
    )  # the operator replaces it
    with enforce(policy):
        restorable.after_restore()

    assert policy.refused == []
    assert before.debug_token is not None and before.debug_token.get_secret_value() != new
    assert restorable.settings.debug_token is not None
    assert restorable.settings.debug_token.get_secret_value() == new
