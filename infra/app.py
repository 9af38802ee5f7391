"""The CDK app: `cdk synth` / `cdk deploy` run `python -m infra.app` (cdk.json)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_cdk import App, Environment, Tags
from aws_cdk import aws_lambda as lambda_
from pydantic import ValidationError

from infra.api import ApiStack
from infra.config import DeployConfig
from infra.functions import CodeSource
from infra.indexing import IndexingStack
from infra.model_asset import model_release
from infra.nag import check
from infra.observability import ObservabilityStack
from infra.scenes import scenes_environment
from infra.storage import StorageStack
from infra.web import WebStack

if TYPE_CHECKING:
    from infra.packaging import BundleName


def bundled_code(config: DeployConfig) -> CodeSource:
    """Each function's docker-free bundle (built on first use, cached under build/), carrying
    the deployment's scenes file when it has one."""

    def code(name: BundleName) -> lambda_.Code:
        from infra.packaging import lambda_bundle  # pip runs only when an app is synthesized

        return lambda_.Code.from_asset(str(lambda_bundle(name, scenes_file=config.scenes_file)))

    return code  # type: ignore[return-value]  # the documents function runs "indexing"


def build_app(
    app: App, config: DeployConfig | None = None, code: CodeSource | None = None
) -> dict[str, Any]:
    """Every mmsearch stack in `app`, checked by cdk-nag's AwsSolutions pack at synth."""
    config = config or DeployConfig.from_context(app.node.try_get_context)
    code = code or bundled_code(config)
    env = Environment(account=config.account, region=config.region)
    prefix = config.name
    release = model_release(config)  # the one model version every function serves
    storage = StorageStack(app, f"{prefix}-storage", config=config, model=release, env=env)
    api = ApiStack(app, f"{prefix}-api", config=config, code=code, storage=storage, env=env)
    # The page calls the API through its own distribution (/v1/*): the web stack follows it.
    web = WebStack(app, f"{prefix}-web", config=config, storage=storage, api=api.api, env=env)
    indexing = IndexingStack(
        app,
        f"{prefix}-indexing",
        config=config,
        code=code("indexing"),
        environment={
            **storage.secrets.environment("milvus", "mongo"),
            **release.environment(config),
            **scenes_environment(config.scenes_file),
            # Image hits carry absolute URLs: they resolve whichever URL a caller uses the API by.
            "MMSEARCH_MEDIA_BASE_URL": web.media_base_url,
        },
        data_bucket=storage.data_bucket,
        model_bucket=storage.model_bucket,
        secret=storage.secrets,  # type: ignore[arg-type]  # grant_read: both stores
        function_options=api.function_options,  # one VPC placement (endpoints) for all
        env=env,
    )
    observability = ObservabilityStack(
        app,
        f"{prefix}-observability",
        config=config,
        api=api.api,
        functions={**api.function_names, "indexing": indexing.function_name},
        state_machine=indexing.state_machine,
        env=env,
    )
    stacks = {
        "storage": storage,
        "web": web,
        "api": api,
        "indexing": indexing,
        "observability": observability,
    }
    for stack in stacks.values():
        Tags.of(stack).add("project", prefix)
    check(app)
    return stacks


def main() -> None:
    """Entry point for the CDK CLI."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    app = App()
    try:
        config = DeployConfig.from_context(app.node.try_get_context)
    except ValidationError as exc:
        # One line per problem, as the loaders word it (a scenes file's names the scene and
        # key), instead of a traceback.
        problems = (
            f"{'.'.join(map(str, e['loc'])) or 'context'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise SystemExit("invalid deployment configuration:\n  " + "\n  ".join(problems)) from None
    build_app(app, config)
    app.synth()


if __name__ == "__main__":
    main()
