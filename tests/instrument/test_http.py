"""A request made by a grandchild is continued by a loopback server that uses
the official OpenTelemetry WSGI instrumentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DEMO, PYTHON, Runner, one, settled_trace, wait_for


@pytest.mark.parametrize("client", ["requests", "httpx", "urllib3"])
def test_grandchild_request_is_continued_by_the_server(runner: Runner, service: int, client: str) -> None:
    worker = f"{PYTHON} {DEMO / 'worker.py'} --port {service} --client {client} --calls 2 --ms 1"
    result = runner.run("sh", "-c", worker)
    assert result.returncode == 0, result.stderr
    run, trace = settled_trace(runner, lambda t: sum(1 for s in t.spans if s.kind == 2) >= 2)
    worker_span = one(trace, lambda s: s.is_process and s.name.startswith("worker.py"))
    clients = [
        s
        for s in trace.spans
        if s.kind == 3 and s.attributes.get("http.request.method", s.attributes.get("http.method")) == "GET"
    ]
    servers = [s for s in trace.spans if s.kind == 2]
    assert len(clients) == 2 and len(servers) == 2
    for server in servers:
        assert server.service == "service"
        assert server.parent is not None and server.parent in clients
        assert server.trace_id == run.trace_id
    for client_span in clients:
        # the client span hangs under the worker's process span (or its load span chain)
        ancestors = []
        node = client_span.parent
        while node is not None:
            ancestors.append(node)
            node = node.parent
        assert worker_span in ancestors
        assert trace.by_id[run.root_span_id] in ancestors


def test_server_spans_land_in_the_callers_trace_not_the_servers(runner: Runner, service: int, tmp_path: Path) -> None:
    result = runner.run(PYTHON, str(DEMO / "worker.py"), "--port", str(service), "--calls", "1")
    assert result.returncode == 0
    from otel_run.store._store import Store

    # the service has flushed its server span (into the caller's trace) before the service's trace is looked at
    caller, _ = settled_trace(runner, lambda t: any(s.kind == 2 for s in t.spans))
    store = Store(str(runner.store))
    wait_for(lambda: any("service.py" in " ".join(r.command) for r in store.runs()), what="the service's run")
    service_run = next(r for r in store.runs() if "service.py" in " ".join(r.command))
    assert service_run.trace_id != caller.trace_id
    service_trace = store.load_trace(service_run.trace_id)
    assert not [s for s in service_trace.spans if s.kind == 2]
