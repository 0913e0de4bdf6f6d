"""Instrumentations (and the SDK) load only when their library is imported."""

from __future__ import annotations

import json
import textwrap

from tests.conftest import PYTHON, PYTHON_NAME, Runner, one

SHOW_MODULES = "import json, sys; print(json.dumps(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'otel_run', 'wrapt', 'packaging')))))"


def test_a_process_that_imports_nothing_loads_no_opentelemetry(runner: Runner) -> None:
    result = runner.run(PYTHON, "-c", SHOW_MODULES)
    loaded = json.loads(result.stdout)
    assert not [m for m in loaded if m.startswith(("opentelemetry", "wrapt", "packaging"))]
    assert set(loaded) <= {
        "otel_run",
        "otel_run._env",
        "otel_run.bootstrap",
        "otel_run.bootstrap._boot",
        "otel_run.bootstrap._redact",
        "otel_run.instrument",
        "otel_run.bootstrap._registry",
    }


def test_subprocess_is_traced_without_the_sdk(runner: Runner) -> None:
    code = "import subprocess; subprocess.run(['true']);" + SHOW_MODULES
    result = runner.run(PYTHON, "-c", code)
    assert not [m for m in json.loads(result.stdout) if m.startswith("opentelemetry")]
    _, trace = runner.last()
    call = one(trace, lambda s: s.name == "subprocess true")
    assert one(trace, lambda s: s.parent is call).attributes["process.exit.code"] == 0


def test_importing_requests_loads_its_instrumentation_and_records_the_cost(runner: Runner) -> None:
    result = runner.run(PYTHON, "-c", "import requests;" + SHOW_MODULES)
    loaded = json.loads(result.stdout)
    assert "opentelemetry.instrumentation.requests" in loaded
    assert "opentelemetry.instrumentation.urllib3" in loaded
    assert "opentelemetry.instrumentation.httpx" not in loaded
    _, trace = runner.last()
    loads = {s.name for s in trace.spans if s.name.startswith("otel-run load")}
    assert loads == {"otel-run load urllib3", "otel-run load requests"}


def test_disabled_instrumentations_are_not_loaded(runner: Runner) -> None:
    env = runner.env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="requests, urllib3")
    result = runner.run(PYTHON, "-c", "import requests;" + SHOW_MODULES, env=env)
    loaded = json.loads(result.stdout)
    assert "opentelemetry.instrumentation.requests" not in loaded
    assert "opentelemetry.instrumentation.urllib3" not in loaded


def test_sdk_disabled_turns_in_process_tracing_off(runner: Runner) -> None:
    result = runner.run(PYTHON, "-c", "import requests;" + SHOW_MODULES, env=runner.env(OTEL_SDK_DISABLED="true"))
    assert result.returncode == 0
    assert not [m for m in json.loads(result.stdout) if m.startswith("opentelemetry")]
    _, trace = runner.last()
    assert [s.name for s in trace.spans if not s.is_run] == [
        f"{PYTHON_NAME} -c import requests;{SHOW_MODULES}"[:99] + "…"
    ]


def test_program_using_the_api_gets_spans_under_its_process(runner: Runner) -> None:
    code = textwrap.dedent(
        """
        import threading
        from opentelemetry import trace
        tracer = trace.get_tracer("app")
        with tracer.start_as_current_span("main work"):
            pass
        t = threading.Thread(target=lambda: tracer.start_span("in a thread").end())
        t.start(); t.join()
        """
    )
    runner.run(PYTHON, "-c", code)
    run, trace = runner.last()
    process = one(trace, lambda s: s.is_process)
    assert one(trace, lambda s: s.name == "main work").parent is process
    assert one(trace, lambda s: s.name == "in a thread").parent is process
    assert {s.trace_id for s in trace.spans} == {run.trace_id}
