"""Fixtures for the API's tests: which front door a test goes through. The indexed QA corpus
they read (`qa_once`, `qa_and_images_once`) is tests/conftest.py's, one per session."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["lambda", "http"])
def door(request: pytest.FixtureRequest) -> str:
    """Which front door a test goes through: the Lambda handler or the FastAPI app."""
    return str(request.param)
