"""Property-based fuzzing (hypothesis) of the media protocols and the HTTP control plane.

Two settings profiles are registered here so every fuzz module shares them:

- ``fuzz`` (the default): derandomized, a modest number of examples per test, no
  deadline and no example database, so a CI run is repeatable and stays quick on a
  shared machine;
- ``fuzz-deep``: ten times the examples, still derandomized, for a longer local hunt
  (``HYPOTHESIS_PROFILE=fuzz-deep pytest tests/fuzz``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["EXAMPLES"]

EXAMPLES = 10 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz-deep" else 1
"""Multiplier for per-test ``max_examples`` overrides (1 in the default profile)."""

# Fixtures here are async servers shared by all examples of one test on purpose: one
# server per example would spend the whole budget starting servers.
_SUPPRESSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
settings.register_profile(
    "fuzz", max_examples=100, deadline=None, derandomize=True, database=None,
    suppress_health_check=_SUPPRESSED,
)
settings.register_profile(
    "fuzz-deep", max_examples=1000, deadline=None, derandomize=True, database=None,
    suppress_health_check=_SUPPRESSED,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fuzz"))
