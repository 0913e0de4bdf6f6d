"""The bootstrap runs in Pythons that are not otel-run's (another version,
another environment without OpenTelemetry): it is standard-library only and
borrows otel-run's libraries (``OTEL_RUN_PYLIB``) only when it needs the SDK."""

from __future__ import annotations

import glob
import os

import pytest

from tests.conftest import Runner, one

OTHERS = sorted(
    {
        os.path.realpath(p)
        for p in glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.*"))
        if p[-1].isdigit()
    }
)


def _version(python: str) -> tuple[int, int]:
    major, minor = os.path.basename(python).removeprefix("python").split(".")[:2]
    return int(major), int(minor)


@pytest.mark.skipif(not OTHERS, reason="no other Python interpreters (pyenv) on this machine")
@pytest.mark.parametrize("python", [p for p in OTHERS if _version(p) >= (3, 8)] or ["none"])
def test_foreign_interpreter_is_traced(runner: Runner, python: str) -> None:
    code = "import subprocess, sys; subprocess.run(['true']); print(sys.version_info[:2])"
    result = runner.run(python, "-c", code)
    assert result.returncode == 0, result.stderr
    _, trace = runner.last()
    process = one(trace, lambda s: s.is_process and s.name.startswith("python3"))
    assert process.resource.attributes["process.runtime.version"].startswith(".".join(map(str, _version(python))))
    assert "python.started" in {e.name for e in process.events}
    call = one(trace, lambda s: s.name == "subprocess true")
    assert call.parent is process


@pytest.mark.skipif(not [p for p in OTHERS if _version(p) >= (3, 9)], reason="no other Python >= 3.9 (pyenv)")
def test_foreign_interpreter_borrows_the_sdk_when_it_needs_it(runner: Runner) -> None:
    python = (
        next(p for p in OTHERS if _version(p) >= (3, 12)) if any(_version(p) >= (3, 12) for p in OTHERS) else OTHERS[-1]
    )
    code = (
        "import sys\n"
        "assert 'opentelemetry' not in sys.modules\n"
        # what the post-import hook does when the program imports an instrumented library:
        "from otel_run.instrument._loader import load; load('')\n"
        "from opentelemetry import trace\n"
        "trace.get_tracer('app').start_span('made in another python').end()\n"
    )
    result = runner.run(python, "-c", code)
    assert result.returncode == 0, result.stderr
    _, trace = runner.last()
    span = one(trace, lambda s: s.name == "made in another python")
    assert span.parent is not None and span.parent.is_process
