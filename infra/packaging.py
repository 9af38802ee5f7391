"""Docker-free Lambda bundles: manylinux wheels for Python 3.12 plus our own source, per function.

`lambda_bundle("search")` returns a folder for `lambda_.Code.from_asset`. Third-party packages
are installed once per requirement set (keyed by a hash of the requirements, platform and
exclusions) and reused; our source is copied again only when it changed.

Keep this module free of `import packaging` (the PyPA library): if the CDK app is ever run as
`python infra/app.py`, `infra/` heads sys.path and this file would shadow it. Run the app as
`python -m infra.app`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

from infra.config import FUNCTIONS, FunctionName

REPO = Path(__file__).resolve().parents[1]
BUILD_ROOT = REPO / "build" / "lambda"
# The python3.12 runtime is Amazon Linux 2023 (glibc 2.34). pip takes --platform tags
# literally (no expansion to older glibc), and onnxruntime ships manylinux_2_28 wheels only,
# so every manylinux tag up to 2.34 is listed.
GLIBC_MINOR = 34
PLATFORMS = (
    "manylinux2014_x86_64",
    *(f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MINOR, 16, -1)),
)
PYTHON_VERSION = "3.12"

# Distributions from pyproject's `lambda` extra that each function imports (pins come from
# pyproject, so they cannot drift). boto3 is left out on purpose: the python3.12 runtime has it.
_ENCODING = ("onnxruntime", "tokenizers", "numpy", "pillow", "pydantic", "aws-lambda-powertools")
# Search can run preprocess and summary in-process (functions/composed), so it needs theirs too;
# indexing (indexing/indexer.py, indexing/batch) needs the same set, which then installs once.
_EVERYTHING = (*_ENCODING, "pyyaml", "snowballstemmer", "pymilvus", "pymongo")
DEPENDENCIES: dict[FunctionName, tuple[str, ...]] = {
    "preprocess": _ENCODING,
    "search": _EVERYTHING,
    "summary": ("numpy", "pydantic", "pymongo", "aws-lambda-powertools"),
    "indexing": _EVERYTHING,
}

# Never bundled, whoever depends on them:
# - boto3, botocore, s3transfer: provided by the Lambda python3.12 runtime;
# - milvus-lite: pymilvus's embedded engine, used only for local-file URIs (never in Lambda);
# - setuptools: a pymilvus 2.5 requirement that pymilvus itself never imports;
# - huggingface-hub (and all it alone pulls in: hf-xet, httpx2, fsspec...): tokenizers needs it
#   only for `from_pretrained`; we load tokenizer.json from the model folder.
EXCLUDED = frozenset(
    {"boto3", "botocore", "s3transfer", "milvus-lite", "setuptools", "huggingface-hub"}
)

SOURCES: dict[FunctionName, tuple[str, ...]] = {
    "preprocess": ("functions/__init__.py", "functions/core", "functions/preprocess"),
    "search": (
        "functions/__init__.py",
        "functions/core",
        "functions/preprocess",
        "functions/search",
        "functions/summary",
        "functions/composed",
    ),
    "summary": ("functions/__init__.py", "functions/core", "functions/summary"),
    "indexing": ("functions", "indexing"),
}

# Test suites shipped inside wheels: never imported at run time, tens of MB.
_TEST_FOLDERS = ("pandas/tests", "numpy/*/tests", "numpy/tests", "pymilvus/tests")
_JUNK = ("__pycache__", "*.pyc", "*.pyo")
_EXTRA_MARKER = re.compile(r"\bextra\s*==")


def lambda_bundle(name: FunctionName, *, build_root: Path = BUILD_ROOT) -> Path:
    """A folder holding function `name`'s dependencies and source, ready to zip for Lambda."""
    if name not in FUNCTIONS:
        raise ValueError(f"unknown function {name!r}; expected one of {FUNCTIONS}")
    deps = installed_dependencies(requirements(name), build_root=build_root)
    bundle = build_root / name
    source_key = _source_digest(name) + ":" + deps.name
    marker = bundle / ".mmsearch-bundle"
    if marker.exists() and marker.read_text() == source_key:
        return bundle
    staging = build_root / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    # Hard links: a source change costs a copy of our few hundred kB, not of the wheels.
    shutil.copytree(deps, staging, symlinks=True, copy_function=_link)
    for relative in SOURCES[name]:
        _copy_source(REPO / relative, staging / relative)
    (staging / marker.name).write_text(source_key)
    shutil.rmtree(bundle, ignore_errors=True)
    staging.rename(bundle)
    return bundle


def requirements(name: FunctionName) -> list[str]:
    """Function `name`'s requirement specifiers, as pinned in pyproject's `lambda` extra."""
    pinned = lambda_requirements()
    missing = [d for d in DEPENDENCIES[name] if _canonical(d) not in pinned]
    if missing:
        raise KeyError(f"{missing} are not in pyproject's `lambda` extra")
    return [pinned[_canonical(d)] for d in DEPENDENCIES[name]]


def lambda_requirements(pyproject: Path = REPO / "pyproject.toml") -> dict[str, str]:
    """pyproject's `lambda` extra as {canonical distribution name: requirement specifier}."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extra: list[str] = project["optional-dependencies"]["lambda"]
    return {_canonical(_distribution(spec)): spec for spec in extra}


def installed_dependencies(reqs: Iterable[str], *, build_root: Path = BUILD_ROOT) -> Path:
    """Third-party packages for `reqs` installed for Lambda, cached by a hash of their inputs."""
    reqs = sorted(reqs)
    key = hashlib.sha256(
        json.dumps([reqs, PLATFORMS, PYTHON_VERSION, sorted(EXCLUDED)]).encode()
    ).hexdigest()[:16]
    target = build_root / "deps" / key
    if (target / ".complete").exists():
        return target
    staging = build_root / "deps" / f".{key}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    wanted = [f"{d}=={v}" for d, v in _resolve(reqs, staging).items()]
    _pip("install", "--no-deps", "--target", str(staging), *wanted)
    _strip(staging)
    (staging / "requirements.lock").write_text("\n".join(sorted(wanted)) + "\n")
    (staging / ".complete").write_text("")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def bundle_size(folder: Path) -> int:
    """Unzipped size in bytes: what Lambda's 250 MB limit counts."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _resolve(reqs: list[str], scratch: Path) -> dict[str, str]:
    """{canonical name: version} of everything `reqs` need on Lambda's platform, minus
    `EXCLUDED` and whatever only they depend on (pip reads the wheels' metadata only)."""
    report = scratch / "resolution.json"
    _pip("install", "--dry-run", "--ignore-installed", "--report", str(report), *reqs)
    items = json.loads(report.read_text())["install"]
    report.unlink()
    versions = {_canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in items}
    # pip already evaluated the markers: a dependency it did not resolve is not needed here.
    edges = {
        _canonical(i["metadata"]["name"]): [
            _canonical(_distribution(spec))
            for spec in i["metadata"].get("requires_dist", [])
            if not _EXTRA_MARKER.search(spec)
        ]
        for i in items
    }
    kept: set[str] = set()
    pending = [_canonical(_distribution(r)) for r in reqs]
    while pending:
        name = pending.pop()
        if name not in kept and name not in EXCLUDED:
            kept.add(name)
            pending += [d for d in edges[name] if d in versions]
    return {name: versions[name] for name in sorted(kept)}


def _pip(*args: str) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        *args[:1],
        *(f"--platform={tag}" for tag in PLATFORMS),
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--quiet",
        "--disable-pip-version-check",
        *args[1:],
    ]
    # No prompts, and nothing from a user site folder leaks into the resolution.
    env = {**os.environ, "PIP_NO_INPUT": "1", "PYTHONNOUSERSITE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip {args[0]} failed:\n{done.stderr[-4000:]}")


def _strip(folder: Path) -> None:
    for pattern in _TEST_FOLDERS:
        for path in folder.glob(pattern):
            shutil.rmtree(path)
    for pattern in _JUNK:
        for path in list(folder.rglob(pattern)):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(folder / "bin", ignore_errors=True)  # console scripts: no use in Lambda


def _link(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another file system
        shutil.copy2(source, dest)


def _copy_source(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        shutil.copy2(source, dest)
    else:
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*_JUNK), dirs_exist_ok=True)


def _source_digest(name: FunctionName) -> str:
    digest = hashlib.sha256()
    for relative in SOURCES[name]:
        root = REPO / relative
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _distribution(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if not match:
        raise ValueError(f"cannot read a distribution name from {spec!r}")
    return match.group(1)


def _canonical(name: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", name).lower()
