"""The subprocess instrumentation under stock OpenTelemetry tooling."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import BIN, PYTHON, clean_env

INSTRUMENT = BIN / "opentelemetry-instrument"


@pytest.mark.skipif(not INSTRUMENT.exists(), reason="opentelemetry-distro (extra 'bench') is not installed")
def test_opentelemetry_instrument_loads_it_from_the_entry_point() -> None:
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import os; print(os.environ[\"TRACEPARENT\"])'])"
    env = clean_env(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    result = subprocess.run([str(INSTRUMENT), PYTHON, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    traceparent, _, console = result.stdout.partition("\n")
    span = json.loads(console[console.index("{") :])
    assert span["name"] == f"subprocess {PYTHON.rsplit('/', 1)[-1]}"
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["attributes"]["process.exit.code"] == 0
    # the child got the context of that span
    _, trace_id, span_id, _ = traceparent.split("-")
    assert span["context"]["trace_id"] == "0x" + trace_id
    assert span["context"]["span_id"] == "0x" + span_id
