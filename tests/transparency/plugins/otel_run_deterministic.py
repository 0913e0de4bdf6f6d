"""A pytest plugin the transparency tests load into the third-party suites they
run (``-p otel_run_deterministic``), bare and traced alike: Hypothesis draws
the same examples in both runs and has no deadline, so the outcomes of the two
runs can differ only through the tracer, never through this machine's speed."""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)  # after the suite's own conftest loaded its profile
def pytest_configure(config: pytest.Config) -> None:
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:
        return
    settings.register_profile(
        "otel-run-transparency",
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    settings.load_profile("otel-run-transparency")
