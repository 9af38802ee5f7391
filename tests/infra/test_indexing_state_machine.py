"""The synthesized indexing state machine, executed by moto's Step Functions engine with its
Lambda invokes routed to our real handler in-process, writing into Milvus Lite and the local
MongoDB-wire server; plus the stack's shape and cdk-nag's verdict."""

from __future__ import annotations

import io
import json
import time
import traceback
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from PIL import Image

from functions.core.http.schemas import SearchRequest
from functions.core.scenes import QA, T2I
from functions.core.settings import Settings
from functions.core.stores.aliases import open_aliases
from functions.core.stores.factory import image_collection, open_document_store, open_vector_store
from functions.preprocess.service import build_preprocessor
from functions.search.clients import InProcessDocuments, InProcessEmbedder
from functions.search.service import build_search_service
from indexing.batch import handler as batch_handler
from indexing.media import S3Media
from infra.config import DeployConfig
from infra.functions import placement
from infra.indexing import IndexingStack
from infra.nag import check
from infra.storage import StorageStack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
FIXTURE_IMAGES = ("china.jpg", "flower.jpg", "camera-web.png")
ACCOUNT, REGION = "123456789012", "us-east-1"
BUCKET = f"mmsearch-data-{ACCOUNT}-{REGION}"  # infra.storage.bucket_name, resolved
MEDIA_BUCKET = f"mmsearch-media-{ACCOUNT}-{REGION}"
MEDIA_BASE_URL = "https://d111111abcdef8.cloudfront.net/media"  # the distribution's /media/*
PSEUDO = {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": REGION}
PSEUDO |= {"AWS::URLSuffix": "amazonaws.com"}


def synthesize(tmp: Path, config: DeployConfig, vpc: bool = False) -> tuple[App, Template]:
    """The storage and indexing stacks with cdk-nag on (synth raises on any finding left)."""
    code_dir = tmp / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "handler.py").write_text("def handler(event, context):\n    return event\n")
    app = App(outdir=str(tmp / "cdk.out"))
    storage = StorageStack(app, "Storage", config=config)
    options = placement(Stack(app, "Network"), config) if vpc else None
    stack = IndexingStack(
        app,
        "Indexing",
        config=config,
        code=lambda_.Code.from_asset(str(code_dir)),
        environment=storage.secrets.environment("milvus", "mongo"),
        data_bucket=storage.data_bucket,
        model_bucket=storage.model_bucket,
        secret=storage.secrets,  # type: ignore[arg-type]
        function_options=options,
    )
    check(app)
    app.synth()
    return app, Template.from_stack(stack)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    # With the opt-in SageMaker branch (-c sagemaker=true): both engines in one definition.
    return synthesize(tmp_path_factory.mktemp("indexing"), DeployConfig(sagemaker=True))[1]


def resources(template: Template, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = template.find_resources(kind)
    return found


def resolve(value: Any, substitutes: dict[str, str]) -> Any:
    """CloudFormation intrinsics of the definition, resolved to plain strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [resolve(v, substitutes) for v in value]
    (function, argument), *_ = value.items()
    if function == "Ref":
        return substitutes.get(argument) or PSEUDO[argument]
    if function == "Fn::GetAtt":  # the function's ARN; other resources' are never called
        return substitutes.get(argument[0], f"arn:aws:iam::{ACCOUNT}:role/{argument[0]}")
    if function == "Fn::Join":
        return argument[0].join(resolve(part, substitutes) for part in argument[1])
    if function == "Fn::Sub":
        text = str(argument)
        for name, plain in PSEUDO.items():
            text = text.replace("${" + name + "}", plain)
        return text
    if function == "Fn::ImportValue":
        return f"imported-{argument}"
    raise AssertionError(f"unexpected intrinsic {function}")


def definition(template: Template, function_arn: str) -> dict[str, Any]:
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    (logical_id,) = resources(template, "AWS::Lambda::Function")
    text = resolve(machine["Properties"]["DefinitionString"], {logical_id: function_arn})
    parsed: dict[str, Any] = json.loads(text)
    return parsed


# --- the state machine, executed ---------------------------------------------------------


@pytest.fixture(scope="module")
def batch_settings(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, mongo_server: Any, milvus_path: str
) -> Iterator[Settings]:
    """The indexing function's environment, as Lambda would set it (shards of 60 documents)."""
    prefix = f"sfn{uuid.uuid4().hex[:8]}_"
    env = {
        "MMSEARCH_HOME": str(tmp_path_factory.mktemp("home")),
        "MMSEARCH_MODEL_DIR": str(model_dir),
        "MMSEARCH_MILVUS_URI": milvus_path,
        "MMSEARCH_MONGO_URI": mongo_server.uri,
        "MMSEARCH_COLLECTION_PREFIX": prefix,
        "MMSEARCH_BATCH_BUCKET": BUCKET,
        "MMSEARCH_SHARD_DOCS": "60",
        "MMSEARCH_MEDIA_BUCKET": MEDIA_BUCKET,
        "MMSEARCH_MEDIA_BASE_URL": MEDIA_BASE_URL,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        batch_handler.runtime.cache_clear()
        yield Settings()
    batch_handler.runtime.cache_clear()


def lambda_runtime(calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """Replaces moto's Docker-free Lambda (which echoes its input): runs our handler as the
    Python runtime does, an exception becoming {errorType, errorMessage} flagged as a
    function error (Step Functions then names the error after the exception's class)."""

    def invoke(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        payload = json.loads(body)
        try:
            result = batch_handler.handler(payload, None)
        except Exception as exc:
            error = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            calls.append((payload.get("step", "?"), error))
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(error).encode()
        calls.append((payload["step"], result))
        return json.dumps(result).encode()

    return invoke


@pytest.fixture(scope="module")
def aws(
    template: Template, batch_settings: Settings
) -> Iterator[tuple[Any, str, list[tuple[str, dict[str, Any]]]]]:
    """moto with a bucket, the function and the synthesized state machine; (sfn client,
    state machine ARN, the handler calls made)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    with mock_aws(config=MOTO_CONFIG), pytest.MonkeyPatch.context() as patch:
        patch.setattr(LambdaSimpleBackend, "invoke", lambda_runtime(calls))
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=MEDIA_BUCKET)
        sfn, machine = deploy(template)
        yield sfn, machine, calls


# moto runs a state machine's executions, and Lambda without Docker (our handler replaces it).
MOTO_CONFIG: Any = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


def deploy(template: Template) -> tuple[Any, str]:
    """Inside moto: the data bucket, the indexing function (a stand-in zip: invokes run our
    handler) and the synthesized state machine calling it; (sfn client, state machine ARN)."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="indexing", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handler.py", "def handler(event, context):\n    return event\n")
    function_arn = boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="mmsearch-indexing",
        Runtime="python3.12",
        Role=role,
        Handler="indexing.batch.handler.handler",
        Code={"ZipFile": archive.getvalue()},
    )["FunctionArn"]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="mmsearch-indexing",
        definition=json.dumps(definition(template, function_arn)),
        roleArn=role,
    )["stateMachineArn"]
    return sfn, machine


def corpus_lines(qa_docs: list[Any], extra: int) -> list[str]:
    """The thirty hand-written documents, `extra` generated ones, and two bad lines."""
    lines = [d.model_dump_json() for d in qa_docs]
    lines += [
        json.dumps({"id": f"gen-{i:04d}", "question": f"What is item {i}?", "answer": f"Item {i}"})
        for i in range(extra)
    ]
    return [*lines[:5], "{broken", *lines[5:], '{"id": ""}']


def start(aws: Any, key: str, lines: list[str], scene: str = "qa") -> dict[str, Any]:
    sfn, machine, _ = aws
    body = ("\n".join(lines) + "\n").encode()
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=key, Body=body)
    arn = sfn.start_execution(
        stateMachineArn=machine,
        name=f"run-{uuid.uuid4().hex[:8]}",
        input=json.dumps({"input": f"s3://{BUCKET}/{key}", "scene": scene}),
    )["executionArn"]
    deadline = time.monotonic() + 300
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish in 5 minutes"
        time.sleep(0.2)
    return dict(execution)


def counts(settings: Settings, alias: str) -> tuple[int, int]:
    return open_vector_store(settings).count(alias), open_document_store(settings).count(QA.store)


def embedded(calls: list[tuple[str, dict[str, Any]]]) -> list[int]:
    return [result["embedded"] for step, result in calls if step == "embed"]


def test_an_execution_indexes_the_corpus_switches_the_alias_and_a_rerun_changes_nothing(
    aws: Any, batch_settings: Settings, qa_docs: list[Any]
) -> None:
    _, _, calls = aws
    lines = corpus_lines(qa_docs, extra=170)  # 200 valid documents: four shards of 60

    first = start(aws, "corpora/qa.jsonl", lines)
    assert first["status"] == "SUCCEEDED", first
    output = json.loads(first["output"])
    plan, result = output["plan"], output["result"]
    assert (plan["valid"], plan["invalid"]) == (200, 2)
    assert [i["line"] for i in plan["invalid_lines"]] == [6, 202]
    assert output["split"] == {**output["split"], "engine": "lambda", "shards": 4}
    assert (result["vectors"], result["documents"]) == (200, 200)
    assert sorted(embedded(calls)) == [20, 60, 60, 60]  # shards run concurrently
    alias = plan["alias"]
    assert open_aliases(batch_settings).target(alias) == plan["collection"]
    assert counts(batch_settings, alias) == (200, 200)
    encoder = batch_handler.runtime().indexer._encoder
    hits = open_vector_store(batch_settings).search(
        alias, encoder.embed(["How do I reset my password?"])[0], 3, {}
    )
    assert hits[0].id == "qa-000"  # the search path reads through the alias

    calls.clear()
    second = start(aws, "corpora/qa-again.jsonl", lines)  # same content, another execution
    assert second["status"] == "SUCCEEDED", second
    again = json.loads(second["output"])
    assert again["plan"]["collection"] == plan["collection"]
    assert embedded(calls) == [0, 0, 0, 0]
    assert counts(batch_settings, alias) == (200, 200)
    assert again["result"]["previous"] is None


def test_an_input_without_a_valid_record_ends_in_the_failed_state_with_the_reason(
    aws: Any,
) -> None:
    execution = start(aws, "corpora/empty.jsonl", ["{nope", "[]"])
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidCorpus"
    assert "no valid records in s3://" in execution["cause"]
    assert "line 1: not JSON" in execution["cause"]


def image_corpus() -> tuple[list[str], dict[str, bytes]]:
    """Five images (the three fixtures and two crops of them) with captions and tags, plus a
    line naming a missing file and one naming a file that is not an image."""
    images = {name: (FIXTURES / name).read_bytes() for name in FIXTURE_IMAGES}
    for name, source in (("flower-crop.png", "flower.jpg"), ("temple-crop.png", "china.jpg")):
        with Image.open(FIXTURES / source) as image:
            out = io.BytesIO()
            image.crop((100, 50, 400, 300)).save(out, "PNG")
            images[name] = out.getvalue()
    images["notes.png"] = b"not an image at all"
    captions = {
        "china.jpg": ("a temple in China", ["photo", "building"]),
        "flower.jpg": ("a flower in bloom", ["photo", "plant"]),
        "camera-web.png": ("a web camera icon", ["icon"]),
        "flower-crop.png": ("close-up of a flower", ["photo", "plant"]),
        "temple-crop.png": ("roof of a temple", ["photo", "building"]),
    }
    lines = [
        json.dumps({"id": f"img-{n}", "file": f"files/{n}", "caption": c, "tags": t})
        for n, (c, t) in captions.items()
    ]
    lines.insert(2, json.dumps({"id": "gone", "file": "files/missing.jpg", "caption": "x"}))
    lines.append(json.dumps({"id": "notes", "file": "files/notes.png", "caption": "notes"}))
    return lines, images


def test_an_image_corpus_in_s3_is_indexed_with_media_in_the_media_bucket_and_found(
    aws: Any, batch_settings: Settings
) -> None:

    s3 = boto3.client("s3", region_name=REGION)
    _, _, calls = aws
    calls.clear()
    lines, images = image_corpus()
    for name, data in images.items():
        s3.put_object(Bucket=BUCKET, Key=f"corpora/tux/files/{name}", Body=data)

    execution = start(aws, "corpora/tux/images.jsonl", lines, scene="t2i")
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    plan, result = output["plan"], output["result"]
    assert (plan["valid"], plan["invalid"]) == (5, 2)
    assert [(i["line"], i["reason"]) for i in plan["invalid_lines"]] == [
        (3, "file files/missing.jpg: not found"),
        (7, "file files/notes.png: not a readable image (UnidentifiedImageError)"),
    ]
    assert output["split"] == {**output["split"], "engine": "lambda", "shards": 1}
    assert (result["vectors"], result["documents"]) == (5, 5)
    vectors = open_vector_store(batch_settings)
    alias = plan["alias"]
    assert vectors.count(alias) == vectors.count(image_collection(alias)) == 5
    assert open_aliases(batch_settings).target(image_collection(alias)) == image_collection(
        plan["collection"]
    )

    # The search path, as the API runs it, finds the images by their captions; every hit's
    # original and thumbnail are objects in the media bucket behind CloudFront's /media/*.
    service = build_search_service(
        batch_settings,
        InProcessEmbedder(build_preprocessor(batch_settings)),
        InProcessDocuments(open_document_store(batch_settings)),
    )
    response = service.search(SearchRequest(scene="t2i", query="a flower", top_k=5))
    assert response.hits[0].id in {"img-flower.jpg", "img-flower-crop.png"}
    media = S3Media(s3, MEDIA_BUCKET, MEDIA_BASE_URL)
    for hit in response.hits:
        assert hit.document is not None
        for field in ("url", "thumbnail_url"):
            url = hit.document[field]
            assert url.startswith(MEDIA_BASE_URL + "/")
            head = s3.head_object(Bucket=MEDIA_BUCKET, Key=media.key(url))
            assert head["ContentType"].startswith("image/")
    documents = open_document_store(batch_settings).count(T2I.store)
    assert documents == 5

    calls.clear()  # the same corpus again: nothing is embedded twice
    again = start(aws, "corpora/tux/images.jsonl", lines, scene="t2i")
    assert again["status"] == "SUCCEEDED", again
    assert embedded(calls) == [0]


# --- the stack's shape and cdk-nag ---------------------------------------------------------


def test_the_definition_runs_validate_split_engine_map_finalize_with_one_failed_state(
    template: Template,
) -> None:
    states = definition(template, "arn:fn")["States"]
    assert definition(template, "arn:fn")["StartAt"] == "Validate"
    assert [states[s]["Next"] for s in ("Validate", "Split")] == ["Split", "Engine"]
    assert states["Engine"]["Default"] == "EmbedShardsOnLambda"
    for name in ("Validate", "Split", "EmbedShardsOnLambda", "EmbedShardsOnSageMaker", "Finalize"):
        assert states[name]["Catch"][0]["Next"] == "IndexingFailed"
    retry = states["Validate"]["Retry"][0]
    assert "StoreUnavailable" in retry["ErrorEquals"]
    assert (retry["BackoffRate"], retry["JitterStrategy"]) == (2, "FULL")
    assert states["IndexingFailed"] == {**states["IndexingFailed"], "ErrorPath": "$.error.Error"}
    lambda_map = states["EmbedShardsOnLambda"]
    assert lambda_map["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert lambda_map["ItemReader"]["Parameters"] == {
        "Bucket": BUCKET,
        "Key.$": "$.split.manifest_key",
    }


def test_the_sagemaker_branch_runs_one_processing_job_per_shard_with_the_same_code(
    template: Template,
) -> None:
    states = definition(template, "arn:fn")["States"]
    job = states["EmbedShardsOnSageMaker"]["ItemProcessor"]["States"]["EmbedShardJob"]
    assert job["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync"
    parameters = job["Parameters"]
    assert ".dkr.ecr." in parameters["AppSpecification"]["ImageUri"]
    assert (
        "'--collection', $.plan.collection"
        in parameters["AppSpecification"]["ContainerArguments.$"]
    )
    assert parameters["ProcessingInputs"][0]["S3Input"]["LocalPath"].startswith(
        "/opt/ml/processing/input"
    )
    dockerfile = (Path(__file__).parents[2] / "indexing/batch/Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "indexing.batch.processing"]' in dockerfile


def test_the_state_machine_logs_every_transition_without_data_and_is_traced(
    template: Template,
) -> None:
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    properties = machine["Properties"]
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["LoggingConfiguration"]["IncludeExecutionData"] is False
    (function,) = resources(template, "AWS::Lambda::Function").values()
    assert function["Properties"]["Handler"] == "indexing.batch.handler.handler"
    assert function["Properties"]["Runtime"] == "python3.12"


def test_the_function_writes_only_under_runs_and_reads_the_model_prefix(
    template: Template,
) -> None:
    policies = json.dumps(resources(template, "AWS::IAM::Policy"))
    assert '"s3:PutObject"' in policies and "/runs/*" in policies
    assert "models/all-MiniLM-L6-v2/*" in policies
    assert '"iam:PassRole"' in policies
    assert "s3:DeleteObject" not in policies


def test_cdk_nag_passes_in_a_vpc_too(tmp_path: Path) -> None:
    config = DeployConfig(vpc_id="vpc-0abc", subnet_ids=["subnet-1", "subnet-2"], sagemaker=True)
    _, template = synthesize(tmp_path, config, vpc=True)
    states = definition(template, "arn:fn")["States"]
    job = states["EmbedShardsOnSageMaker"]["ItemProcessor"]["States"]["EmbedShardJob"]
    assert job["Parameters"]["NetworkConfig"]["VpcConfig"]["Subnets"] == ["subnet-1", "subnet-2"]
