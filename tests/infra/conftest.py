"""The four Lambda bundles, built for real once per session (cached under build/lambda)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import FUNCTIONS, FunctionName
from infra.packaging import lambda_bundle


@pytest.fixture(scope="session")
def lambda_bundles() -> dict[FunctionName, Path]:
    """{function name: bundle folder}; the first build on a machine takes a minute or two."""
    return {name: lambda_bundle(name) for name in FUNCTIONS}
