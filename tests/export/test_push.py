"""``otel-trace push`` against a real receiver (``otel-trace serve``)."""

from __future__ import annotations

from pathlib import Path

from otel_run.store._store import Store
from tests.conftest import PYTHON, Runner, Serve

BIG_RUN = (
    "from opentelemetry import trace\n"
    "tracer = trace.get_tracer('bulk')\n"
    "with tracer.start_as_current_span('all'):\n"
    "    for i in range(3000):\n"
    "        with tracer.start_as_current_span('step', attributes={'payload': 'x' * 2000, 'i': i}):\n"
    "            pass\n"
)


def test_a_run_bigger_than_one_request_is_pushed_whole(runner: Runner, tmp_path: Path) -> None:
    """~6 MB of spans: more than serve takes in one request (4 MiB), sent in batches."""
    result = runner.run(PYTHON, "-c", BIG_RUN)
    assert result.returncode == 0, result.stderr
    run, trace = runner.last()
    assert len(trace.spans) > 3000
    home = Serve(tmp_path / "home").start()
    try:
        pushed = runner.trace_cli("push", run.run_id, "--endpoint", home.endpoint)
    finally:
        home.stop()
    assert pushed.returncode == 0, pushed.stderr
    arrived = Store(str(home.store)).load_trace(trace.trace_id)
    assert set(arrived.by_id) == set(trace.by_id)
