"""Docker-free Lambda bundles: small enough, free of the batch side's heavy packages, and
importable by the Python Lambda runs (3.12) with nothing but the bundle on its path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from functions.core.http.invoke_events import http_event
from infra.packaging import (
    BUNDLES,
    DEPENDENCIES,
    EXCLUDED,
    BundleName,
    bundle_size,
    check_pinned,
    dependency_key,
    lambda_bundle,
    lambda_requirements,
    lock_pins,
    requirements,
)

LAMBDA_UNZIPPED_LIMIT = 250 * 10**6  # bytes; Lambda's own limit is 250 MiB, this is stricter
NEVER_BUNDLED = {"torch", "transformers", "sentence_transformers", "typer", "rich", "uvicorn"}
NEVER_BUNDLED |= {"milvus_lite", "secantusdb", "boto3", "botocore", "huggingface_hub"}
# FastAPI (and Mangum) only where the one function serves the app; the split search function
# invokes preprocess, so it carries no encoder.
NOT_IN: dict[BundleName, set[str]] = {
    "preprocess": {"fastapi", "starlette", "mangum", "pymilvus", "pymongo"},
    "search": {"fastapi", "starlette", "mangum", "onnxruntime", "tokenizers", "PIL"},
    "summary": {"fastapi", "starlette", "mangum", "onnxruntime", "tokenizers", "pymilvus"},
    "composed": set(),
    "indexing": {"fastapi", "starlette", "mangum"},
}

EXPECTED_PACKAGES: dict[BundleName, set[str]] = {
    "preprocess": {"onnxruntime", "tokenizers", "numpy", "PIL", "pydantic"},
    "search": {"pymilvus", "pymongo", "yaml", "snowballstemmer", "symspellpy", "numpy"},
    "summary": {"pymongo", "pydantic", "aws_lambda_powertools"},
    "composed": {"onnxruntime", "tokenizers", "pymilvus", "pymongo", "fastapi", "mangum"},
    "indexing": {"onnxruntime", "tokenizers", "pymilvus", "pymongo", "PIL"},
}
EXPECTED_SOURCES: dict[BundleName, set[str]] = {
    "preprocess": {
        "functions/__init__.py",
        "functions/core/models/model_source.py",
        "functions/preprocess/handler.py",
    },
    "search": {"functions/search/handler.py", "functions/search/pipeline.yaml"},
    "composed": {
        "functions/search/pipeline.yaml",
        "functions/preprocess/service.py",
        "functions/summary/service.py",
        "functions/composed/handler.py",
    },
    "summary": {"functions/summary/handler.py", "functions/core/stores/connection.py"},
    "indexing": {
        "indexing/indexer.py",
        "indexing/corpus.py",
        "functions/core/models/text_encoder.py",
    },
}
# What each bundle must import on Python 3.12 from the bundle alone (boto3 comes with Lambda).
IMPORTS: dict[BundleName, list[str]] = {
    "preprocess": ["functions.preprocess.service", "functions.core.http.lambda_adapter"],
    "search": [
        *("functions.search.service", "functions.search.clients", "pymilvus", "pymongo"),
        *("jieba", "jieba.finalseg"),  # CJK highlights (the rest of jieba is stripped)
    ],
    "composed": ["functions.composed.app", "functions.composed.asgi_lambda", "pymilvus", "jieba"],
    "summary": ["functions.summary.service", "functions.core.stores.connection", "pymongo"],
    "indexing": [
        *("indexing.indexer", "indexing.image_indexer", "indexing.batch.handler", "pymilvus"),
        *(
            "functions.documents.service",
            "functions.core.http.lambda_adapter",
        ),  # the writes function
    ],
}


def lambda_python() -> str | None:
    """A CPython 3.12 on this machine (Lambda's runtime version), if any."""
    candidates = [os.environ.get("MMSEARCH_TEST_PYTHON312", "")]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    candidates += ["python3.12"]
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run([candidate, "--version"], capture_output=True, text=True)
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.startswith("Python 3.12"):
            return candidate
    return None


def run_in_bundle(bundle: Path, code: str, env: dict[str, str] | None = None) -> str:
    """Run `code` with Python 3.12 in isolated mode: only the bundle and the stdlib importable."""
    python = lambda_python()
    if python is None:
        pytest.skip("no CPython 3.12 here to import the manylinux cp312 wheels")
    prelude = f"import sys; sys.path.insert(0, {str(bundle)!r})\n"
    done = subprocess.run(
        [python, "-I", "-B", "-c", prelude + code],  # -B: no bytecode left in the bundle
        capture_output=True,
        text=True,
        cwd=bundle,
        env={"PATH": os.environ["PATH"], **(env or {})},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def top_level(bundle: Path) -> set[str]:
    return {p.name.removesuffix(".py") for p in bundle.iterdir()}


def test_every_bundle_names_only_dependencies_of_pyprojects_lambda_extra() -> None:
    pinned = lambda_requirements()
    for name in BUNDLES:
        assert len(requirements(name)) == len(DEPENDENCIES[name])
        assert all(spec in pinned.values() for spec in requirements(name))
    assert pinned["pymilvus"] == "pymilvus==2.5.18"


def test_bundles_fit_lambda_and_carry_no_batch_side_packages(
    lambda_bundles: dict[BundleName, Path],
) -> None:
    for name, bundle in lambda_bundles.items():
        size = bundle_size(bundle)
        print(f"{name}: {size / 1e6:.1f} MB unzipped")
        assert size < LAMBDA_UNZIPPED_LIMIT, name
        packages = top_level(bundle)
        assert packages.isdisjoint(NEVER_BUNDLED), (name, packages & NEVER_BUNDLED)
        assert packages.isdisjoint(NOT_IN[name]), (name, packages & NOT_IN[name])
        assert EXPECTED_PACKAGES[name] <= packages, (name, EXPECTED_PACKAGES[name] - packages)
        sources = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
        assert EXPECTED_SOURCES[name] <= sources, (name, EXPECTED_SOURCES[name] - sources)
        assert not list(bundle.rglob("__pycache__")), name
        assert not (bundle / "tests").exists(), name  # our tests never ship


def test_every_package_in_every_bundle_is_at_the_locks_version(
    lambda_bundles: dict[BundleName, Path],
) -> None:
    # What is deployed is what the tests ran: requirements.lock, not pyproject's ranges.
    pins = lock_pins()
    for name, bundle in lambda_bundles.items():
        installed = {}
        for dist_info in bundle.glob("*.dist-info"):
            fields = dict(
                line.split(": ", 1)
                for line in (dist_info / "METADATA").read_text(errors="replace").splitlines()
                if line.startswith(("Name: ", "Version: "))
            )
            installed[canonical(fields["Name"])] = fields["Version"]
        assert len(installed) >= len(DEPENDENCIES[name]), name
        differing = {d: (v, pins.get(d)) for d, v in installed.items() if pins.get(d) != v}
        assert not differing, (name, differing)
    assert installed["numpy"] == pins["numpy"]  # the indexing bundle's, say


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_bundles_keep_dist_info_that_packages_read_at_import(
    lambda_bundles: dict[BundleName, Path],
) -> None:
    # pymilvus reads its own version with importlib.metadata when imported.
    assert list(lambda_bundles["search"].glob("pymilvus-2.5.18.dist-info/METADATA"))
    lock = (lambda_bundles["search"] / "requirements.lock").read_text().split()
    assert "pymilvus==2.5.18" in lock
    assert not {line.split("==")[0] for line in lock} & EXCLUDED


def test_each_bundle_imports_its_code_on_python_3_12_from_the_bundle_alone(
    lambda_bundles: dict[BundleName, Path],
) -> None:
    for name, modules in IMPORTS.items():
        out = run_in_bundle(
            lambda_bundles[name],
            "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            + f"{sorted(NEVER_BUNDLED)!r}))",
        )
        assert out.strip() == "[]", name


def test_search_bundle_segments_chinese_as_the_index_does(
    lambda_bundles: dict[BundleName, Path],
) -> None:
    # jieba ships stripped of its tagger and models: what highlights use must still work.
    out = run_in_bundle(
        lambda_bundles["search"],
        "from functions.search.segmentation import terms\n"
        "print([t[0] for t in terms('大象是一种有长鼻子的大型动物', 'chinese')])",
    )
    assert "大象" in out and "鼻子" in out, out


def test_preprocess_bundle_answers_an_embed_event_on_python_3_12(
    lambda_bundles: dict[BundleName, Path], model_dir: Path
) -> None:
    event = http_event("POST", "/v1/embed", {"texts": ["how long is delivery"]})
    out = run_in_bundle(
        lambda_bundles["preprocess"],
        "import json\n"
        "from functions.preprocess.handler import handler\n"
        f"print(json.dumps(handler(json.loads({json.dumps(json.dumps(event))}), None)))",
        env={"MMSEARCH_MODEL_DIR": str(model_dir)},
    )
    response = json.loads(out.strip().splitlines()[-1])
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["dim"] == 384


def test_a_second_build_reuses_the_installed_dependencies(
    lambda_bundles: dict[BundleName, Path],
) -> None:
    (lambda_bundles["summary"] / "__pycache__").mkdir(exist_ok=True)  # a run without -B
    start = time.perf_counter()
    for name in BUNDLES:
        assert lambda_bundle(name) == lambda_bundles[name]
        assert not list(lambda_bundles[name].rglob("__pycache__")), name
    elapsed = time.perf_counter() - start
    print(f"cached rebuild of all five bundles: {elapsed:.2f} s")
    assert elapsed < 10


def test_a_changed_pin_changes_the_dependency_cache_key() -> None:
    pins = lock_pins()
    reqs = requirements("search")
    bumped = {**pins, "numpy": pins["numpy"] + ".post1"}
    assert dependency_key(reqs, pins) == dependency_key(reversed(reqs), dict(pins))
    assert dependency_key(reqs, pins) != dependency_key(reqs, bumped)


def test_a_resolution_that_leaves_the_lock_is_refused() -> None:
    pins = {"numpy": "2.4.6", "python-dateutil": "2.9.0.post0"}
    check_pinned({"numpy": "2.4.6"}, pins)
    with pytest.raises(RuntimeError, match=r"differ from requirements\.lock.*numpy"):
        check_pinned({"numpy": "2.3.0"}, pins)
    with pytest.raises(RuntimeError, match=r"not in requirements\.lock"):
        check_pinned({"six": "1.17.0"}, pins)
