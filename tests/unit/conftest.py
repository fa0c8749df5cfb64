"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from ai_pipeline.flow_model import Flow
from ai_pipeline.flow_schema import load_flows


@pytest.fixture(scope="module")
def flows() -> dict[str, Flow]:
    """The four shipped flows, loaded once per test module."""
    return load_flows()
