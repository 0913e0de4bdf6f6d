"""Instrumentations (and the SDK) load only when their library is imported."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.conftest import PYTHON, PYTHON_NAME, Runner, one, settled_trace

SHOW_MODULES = "import json, sys; print(json.dumps(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'otel_run', 'wrapt', 'packaging')))))"


def test_a_process_that_imports_nothing_loads_no_opentelemetry(runner: Runner) -> None:
    result = runner.run(PYTHON, "-c", SHOW_MODULES)
    loaded = json.loads(result.stdout)
    assert not [m for m in loaded if m.startswith(("opentelemetry", "wrapt", "packaging"))]
    assert set(loaded) <= {
        "otel_run",
        "otel_run._env",
        "otel_run._redact",
        "otel_run._wire",
        "otel_run.bootstrap",
        "otel_run.bootstrap._boot",
        "otel_run.bootstrap._children",
        "otel_run.bootstrap._imports",
    }


def test_subprocess_is_traced_without_the_sdk(runner: Runner) -> None:
    code = "import subprocess; subprocess.run(['true']);" + SHOW_MODULES
    result = runner.run(PYTHON, "-c", code)
    assert not [m for m in json.loads(result.stdout) if m.startswith("opentelemetry")]
    _, trace = runner.last()
    call = one(trace, lambda s: s.name == "subprocess true")
    assert one(trace, lambda s: s.parent is call).attributes["process.exit.code"] == 0


SHOW = "print(json.dumps(sorted(m for m in sys.modules if m.startswith('opentelemetry.instrumentation.'))))"


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_an_http_client_is_instrumented_at_its_first_request_not_its_import(
    runner: Runner, service: int, client: str
) -> None:
    # a pytest run under codeflash imports requests and never sends a request: it must not pay for the SDK
    code = f"import json, sys, {client};{SHOW};{client}.get('http://127.0.0.1:{service}/work');{SHOW}"
    result = runner.run(PYTHON, "-c", code)
    assert result.returncode == 0, result.stderr
    after_import, after_request = (json.loads(line) for line in result.stdout.splitlines())
    assert after_import == []
    assert f"opentelemetry.instrumentation.{client}" in after_request
    _, trace = settled_trace(runner, lambda t: any(s.kind == 2 for s in t.spans))
    loads = {s.name for s in trace.spans if s.name.startswith("otel-run load")}
    assert loads == (
        {"otel-run load urllib3", "otel-run load requests"} if client == "requests" else {"otel-run load httpx"}
    )
    [request] = [s for s in trace.spans if s.kind == 3]  # the very first request is traced
    [server] = [s for s in trace.spans if s.kind == 2]
    assert server.parent is request and any(c.name == "connect" for c in request.children)


def test_a_library_that_wraps_the_method_after_the_import_keeps_its_wrapper(runner: Runner, service: int) -> None:
    # sentry-sdk and others patch Session.send at their own set-up, after the import we armed on
    code = textwrap.dedent(
        f"""
        import requests
        from requests.sessions import Session
        calls = []
        inner = Session.send
        def wrapper(self, request, **kwargs):
            calls.append(request.url)
            return inner(self, request, **kwargs)
        Session.send = wrapper
        for _ in range(2):
            assert requests.get("http://127.0.0.1:{service}/work").status_code == 200
        assert len(calls) == 2, calls
        print("ok")
        """
    )
    result = runner.run(PYTHON, "-c", code)
    assert result.stdout.strip() == b"ok", result.stderr
    _, trace = settled_trace(runner, lambda t: sum(1 for s in t.spans if s.kind == 2) >= 2)
    assert len([s for s in trace.spans if s.kind == 3]) >= 1  # traced from the second call on, at worst


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
