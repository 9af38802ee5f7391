"""Docker-free Lambda bundles: manylinux wheels for Python 3.12 plus our own source, per function.

`lambda_bundle("search")` returns a folder for `lambda_.Code.from_asset`. Every third-party
package is installed at exactly the version requirements.lock pins (what the tests ran), once
per requirement set (keyed by a hash of the requirements, their pins, platform and exclusions)
and reused; our source is copied again only when it changed.

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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from infra.scenes import BUNDLED_SCENES

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
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

# One bundle per deployed function: the split deployment's three, `composed` (the one
# function of `split_functions=false`, serving all three through FastAPI and Mangum) and the
# indexing function.
BundleName = Literal["preprocess", "search", "summary", "composed", "indexing"]
BUNDLES: tuple[BundleName, ...] = ("preprocess", "search", "summary", "composed", "indexing")

# Distributions from pyproject's `lambda` extra that each bundle imports, installed at the
# lock's versions. boto3 is left out on purpose: the python3.12 runtime has it.
# Every function serving HTTP (functions/core/http/lambda_adapter.py) reads multipart search forms;
# functions/core/scenes.py reads the scene definitions (YAML) that every function imports.
_HTTP = ("pydantic", "aws-lambda-powertools", "python-multipart", "pyyaml")
_ENCODING = ("onnxruntime", "tokenizers", "numpy", "pillow", *_HTTP)
# Split search invokes preprocess and summary: no encoder (onnxruntime, tokenizers: 90 MB).
# jieba: highlights of Chinese/Japanese fields, segmented as Milvus' jieba analyzer does.
_SEARCH = (
    *("numpy", *_HTTP, "snowballstemmer", "symspellpy", "jieba"),
    *("pymilvus", "pymongo"),
)
_EVERYTHING = tuple(dict.fromkeys(_ENCODING + _SEARCH))
# Indexing embeds and writes both stores; the documents function (writes, `-c writes=true`)
# runs this bundle too and serves HTTP. Neither suggests spellings.
_INDEXING = (*_ENCODING, "snowballstemmer", "pymilvus", "pymongo")
DEPENDENCIES: dict[BundleName, tuple[str, ...]] = {
    "preprocess": _ENCODING,
    "search": _SEARCH,
    "summary": ("numpy", "pymongo", *_HTTP),
    "composed": (*_EVERYTHING, "fastapi", "mangum"),
    "indexing": _INDEXING,
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

SOURCES: dict[BundleName, tuple[str, ...]] = {
    "preprocess": ("functions/__init__.py", "functions/core", "functions/preprocess"),
    "search": ("functions/__init__.py", "functions/core", "functions/search"),
    "composed": (
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

# Pure-Python packages on PyPI as source only, wheeled here for Lambda (`pure_wheels`).
PURE_SDISTS = ("jieba",)
# Test suites shipped inside wheels: never imported at run time, tens of MB. And jieba's
# part-of-speech tagger, keyword extraction and paddle model (34 MB): segmentation uses the
# tokenizer, its dictionary and the HMM for unknown words (finalseg) only.
_TEST_FOLDERS = ("pandas/tests", "numpy/*/tests", "numpy/tests", "pymilvus/tests")
_TEST_FOLDERS += ("jieba/posseg", "jieba/analyse", "jieba/lac_small")
_JUNK = ("__pycache__", "*.pyc", "*.pyo")
_EXTRA_MARKER = re.compile(r"\bextra\s*==")


def lambda_bundle(
    name: BundleName, *, build_root: Path = BUILD_ROOT, scenes_file: str | Path | None = None
) -> Path:
    """A folder holding bundle `name`'s dependencies and source, ready to zip for Lambda; with
    `scenes_file`, also that file at `BUNDLED_SCENES` (in a folder of its own, named by the
    file's hash, so the default bundles stay as they are)."""
    if name not in BUNDLES:
        raise ValueError(f"unknown bundle {name!r}; expected one of {BUNDLES}")
    deps = installed_dependencies(requirements(name), build_root=build_root)
    scenes = Path(scenes_file).read_bytes() if scenes_file else None
    scenes_key = hashlib.sha256(scenes).hexdigest()[:12] if scenes is not None else ""
    bundle = build_root / (f"{name}+scenes-{scenes_key}" if scenes_key else name)
    source_key = _source_digest(name) + ":" + deps.name + (f":{scenes_key}" if scenes_key else "")
    marker = bundle / ".mmsearch-bundle"
    if marker.exists() and marker.read_text() == source_key:
        # Bytecode a local run left behind (python without -B in the folder) is not ours to ship.
        for cache in list(bundle.rglob("__pycache__")):
            shutil.rmtree(cache)
        return bundle
    staging = build_root / f".{bundle.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    # Hard links: a source change costs a copy of our few hundred kB, not of the wheels.
    shutil.copytree(deps, staging, symlinks=True, copy_function=_link)
    for relative in SOURCES[name]:
        _copy_source(REPO / relative, staging / relative)
    if scenes is not None:
        (staging / BUNDLED_SCENES).write_bytes(scenes)
    (staging / marker.name).write_text(source_key)
    shutil.rmtree(bundle, ignore_errors=True)
    staging.rename(bundle)
    return bundle


def requirements(name: BundleName) -> list[str]:
    """Bundle `name`'s requirement specifiers, as pyproject's `lambda` extra states them."""
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


def lock_pins(lock: Path = LOCK) -> dict[str, str]:
    """requirements.lock as {canonical distribution name: version}."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            if not version:
                raise ValueError(f"{lock}: {line!r} is not pinned with ==")
            pins[_canonical(name)] = version.strip()
    return pins


def installed_dependencies(
    reqs: Iterable[str], *, build_root: Path = BUILD_ROOT, lock: Path = LOCK
) -> Path:
    """Third-party packages for `reqs` installed for Lambda at the lock's versions, cached by
    a hash of their inputs (the lock's pins included, so a changed pin rebuilds)."""
    reqs = sorted(reqs)
    pins = lock_pins(lock)
    key = dependency_key(reqs, pins)
    target = build_root / "deps" / key
    if (target / ".complete").exists():
        return target
    staging = build_root / "deps" / f".{key}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    links = ("--find-links", str(pure_wheels(reqs, pins, build_root)))
    resolved = _resolve(reqs, staging, lock, links)
    check_pinned(resolved, pins)
    wanted = [f"{d}=={v}" for d, v in resolved.items()]
    _pip("install", "--no-deps", "--target", str(staging), *links, *wanted)
    _strip(staging)
    (staging / "requirements.lock").write_text("\n".join(sorted(wanted)) + "\n")
    (staging / ".complete").write_text("")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def pure_wheels(reqs: Iterable[str], pins: Mapping[str, str], build_root: Path) -> Path:
    """A folder of wheels built here for the pure-Python packages PyPI has only as source
    (jieba): a Lambda install takes binaries only (`--only-binary=:all:`, as installing for
    another platform requires), and a pure-Python wheel is the same on every platform."""
    folder = build_root / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    for name in PURE_SDISTS:
        if name not in {_canonical(_distribution(r)) for r in reqs}:
            continue
        version = pins[name]
        if not list(folder.glob(f"{name}-{version}-py3-none-any.whl")):
            command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
            command += ["--disable-pip-version-check", "-w", str(folder), f"{name}=={version}"]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"pip wheel {name} failed:\n{done.stderr[-4000:]}")
    return folder


def dependency_key(reqs: Iterable[str], pins: Mapping[str, str]) -> str:
    """The cache key of an installed requirement set: changes with any pin, the platform or
    the exclusions."""
    inputs = [sorted(reqs), sorted(pins.items()), PLATFORMS, PYTHON_VERSION, sorted(EXCLUDED)]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]


def bundle_size(folder: Path) -> int:
    """Unzipped size in bytes: what Lambda's 250 MB limit counts."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def check_pinned(resolved: Mapping[str, str], pins: Mapping[str, str]) -> None:
    """Every package to bundle is one the lock pins, at the pinned version."""
    unpinned = sorted(n for n in resolved if n not in pins)
    if unpinned:
        raise RuntimeError(f"{unpinned} are not in requirements.lock: run `make lock`")
    drift = {n: (v, pins[n]) for n, v in resolved.items() if v != pins[n]}
    if drift:
        raise RuntimeError(f"resolved versions differ from requirements.lock: {drift}")


def _resolve(
    reqs: list[str], scratch: Path, lock: Path = LOCK, links: Sequence[str] = ()
) -> dict[str, str]:
    """{canonical name: version} of everything `reqs` need on Lambda's platform at the lock's
    versions (its pins as constraints), minus `EXCLUDED` and whatever only they depend on
    (pip reads the wheels' metadata only)."""
    report = scratch / "resolution.json"
    _pip(
        "install",
        "--dry-run",
        "--ignore-installed",
        "--report",
        str(report),
        "--constraint",
        str(lock),
        *links,
        *reqs,
    )
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


def _source_digest(name: BundleName) -> str:
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
