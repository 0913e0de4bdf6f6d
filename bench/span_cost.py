"""Cost per span: otel-run's recording path vs the OpenTelemetry SDK with a no-op exporter.

    .venv/bin/python bench/span_cost.py [pyperf options] [--report results/span_cost.md]

Every variant makes the same span an HTTP client instrumentation makes (start as
current, four attributes, one more on the way out, end) through an SDK
``TracerProvider``; only what happens to the finished span differs:

* ``sdk + BatchSpanProcessor(no-op exporter)``: the SDK's production set-up with
  an exporter that drops everything (the baseline of the goal);
* ``sdk + SimpleSpanProcessor(no-op exporter)``;
* ``sdk + otel-run store``: otel-run's processor, which encodes each span to
  OTLP JSON (with redaction) and appends it to the store on disk; the timed
  section includes the final flush, so encoding and writing are all counted;
* ``otel-run light span``: the record otel-run writes without the SDK for a
  process or subprocess span (encoding + write), for scale.

pyperf runs each variant in fresh worker processes and calibrates loops.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyperf

REPO = Path(__file__).resolve().parents[1]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ATTRIBUTES = {
    "http.request.method": "GET",
    "url.full": "http://127.0.0.1:8000/ai/optimize?trace=1",
    "server.address": "127.0.0.1",
    "server.port": 8000,
}


def _sdk_loop(processor: Any, resource: Any = None) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace import SpanKind

    class RunTrace(RandomIdGenerator):  # type: ignore[misc]
        """All spans in one trace, as in a run (otel-run's provider does this)."""

        def generate_trace_id(self) -> int:
            return int(TRACE_ID, 16)

    provider = TracerProvider(resource=resource, shutdown_on_exit=False, id_generator=RunTrace())
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def run(loops: int) -> float:
        t0 = time.perf_counter()
        for _ in range(loops):
            with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes=ATTRIBUTES) as span:
                span.set_attribute("http.response.status_code", 200)
        provider.force_flush()
        return time.perf_counter() - t0

    return run


def _noop_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Noop(SpanExporter):  # type: ignore[misc]
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return Noop()


def _store_process() -> Any:
    from otel_run.bootstrap import _boot

    store = tempfile.mkdtemp(prefix="otel-run-bench-")
    process = _boot.Process({}, store, TRACE_ID, "00f067aa0ba902b7")
    process.adopt(None)
    process.describe()
    return process


def bench_batch_noop() -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return _sdk_loop(BatchSpanProcessor(_noop_exporter()))


def bench_simple_noop() -> Any:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    return _sdk_loop(SimpleSpanProcessor(_noop_exporter()))


def bench_otel_run_store() -> Any:
    from opentelemetry.sdk.resources import Resource

    from otel_run.instrument._sdk import OtlpJsonLinesProcessor

    process = _store_process()
    return _sdk_loop(OtlpJsonLinesProcessor(process), Resource(process.resource))


def bench_light_span() -> Any:
    from otel_run.bootstrap import _boot

    process = _store_process()
    attrs = dict(ATTRIBUTES, **{"process.pid": 4242, "process.exit.code": 0})

    def run(loops: int) -> float:
        t0 = time.perf_counter()
        for _ in range(loops):
            now = time.time_ns()
            span = _boot.span_json(TRACE_ID, _boot.new_span_id(), process.span_id, "subprocess true", now, now, attrs)
            process.writer.write(TRACE_ID, _boot.request_json(process.resource_json, _boot.OTEL_RUN_SCOPE, [span]))
        return time.perf_counter() - t0

    return run


VARIANTS = {
    "sdk + BatchSpanProcessor(no-op exporter)": bench_batch_noop,
    "sdk + SimpleSpanProcessor(no-op exporter)": bench_simple_noop,
    "sdk + otel-run store": bench_otel_run_store,
    "otel-run light span (no SDK)": bench_light_span,
}


def main() -> None:
    report = str(REPO / "results" / "span_cost.md")
    if "--report" in sys.argv:
        i = sys.argv.index("--report")
        report = sys.argv[i + 1]
        del sys.argv[i : i + 2]
    runner = pyperf.Runner()
    results = {}
    for name, factory in VARIANTS.items():
        results[name] = runner.bench_time_func(name, factory())
    if runner.args.worker or not all(results.values()):
        return
    baseline = results["sdk + BatchSpanProcessor(no-op exporter)"].mean()
    lines = [
        "# Cost per span: otel-run's recording path vs the OpenTelemetry SDK",
        "",
        f"Made by `make bench` (`.venv/bin/python bench/span_cost.py`), pyperf "
        f"{pyperf.__version__}, {time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores. The span: an HTTP client span (start as current, 4 attributes + 1, end). "
        "The otel-run rows include encoding to OTLP JSON, redaction and the write to disk.",
        "",
        "| variant | µs per span (mean ± σ) | × SDK + batch no-op |",
        "|---|---:|---:|",
    ]
    for name, bench in results.items():
        lines.append(
            f"| {name} | {bench.mean() * 1e6:.2f} ± {bench.stdev() * 1e6:.2f} | {bench.mean() / baseline:.2f}× |"
        )
    Path(report).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
