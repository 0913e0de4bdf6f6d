"""Grafana dashboards as code (grafana-foundation-sdk), generated into dashboards/*.json.

    .venv/bin/python dashboards/build.py            # write the JSON
    .venv/bin/python dashboards/build.py --check    # exit 1 when the JSON and this code drift apart
    .venv/bin/python dashboards/build.py --queries results/dashboards.md   # the query behind every panel

Queries are PromQL over the collector's span metrics (collector/config.yaml:
``spanmetrics`` → ``traces_span_metrics_*``; ``signaltometrics`` →
``otel_run_http_*_body_size_bytes``, ``otel_run_gen_ai_usage_tokens``) and
TraceQL / TraceQL metrics over Tempo. Every panel's description says what it
shows and which spans feed it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, histogram, prometheus, table, tempo, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

HERE = Path(__file__).resolve().parent
PROM = DataSourceRef(type_val="prometheus", uid="prometheus")
TEMPO = DataSourceRef(type_val="tempo", uid="tempo")
DURATION = "traces_span_metrics_duration_milliseconds"
CALLS = "traces_span_metrics_calls_total"
SEL = 'service_name=~"$service"'


def _variables(board: dashboard.Dashboard) -> dashboard.Dashboard:
    return (
        board.with_variable(
            dashboard.QueryVariable("service")
            .label("service")
            .datasource(PROM)
            .query(f"label_values({CALLS}, service_name)")
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .with_variable(
            dashboard.QueryVariable("command")
            .label("command")
            .datasource(PROM)
            .query(f'label_values({CALLS}{{span_name=~"otel-run .*"}}, span_name)')
            .multi(True)
            .include_all(True)
            .all_value("otel-run .*")
        )
        .with_variable(
            dashboard.QueryVariable("label")
            .label("run label")
            .datasource(PROM)
            .query(f"label_values({CALLS}, otel_run_label)")
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )


def _prom(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(PROM)


def _traceql(query: str, ref: str = "A") -> tempo.TempoQuery:
    return tempo.TempoQuery().query(query).ref_id(ref).datasource(TEMPO).limit(50)


def _series(title: str, description: str, unit: str, *queries: Any, w: int = 12, h: int = 8) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).unit(unit).height(h).span(w)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def runs() -> dashboard.Dashboard:
    root = f'{SEL}, span_name=~"$command", otel_run_label=~"$label"'
    return (
        _variables(dashboard.Dashboard("otel-run: Runs").uid("otel-run-runs").tags(["otel-run"]).refresh("30s"))
        .time("now-24h", "now")
        .with_panel(
            _series(
                "Runs per hour by command and label",
                "Root spans otel-run writes for each run (span name 'otel-run COMMAND'), counted by the spanmetrics "
                "connector.",
                "short",
                _prom(
                    f"sum by (span_name, otel_run_label) (increase({CALLS}{{{root}}}[1h]))",
                    "{{span_name}} {{otel_run_label}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Wall time of runs (p50 / p95)",
                "Duration of otel-run's root spans: the whole command, from spawn to exit, per command.",
                "ms",
                _prom(
                    f"histogram_quantile(0.5, sum by (le, span_name) (rate({DURATION}_bucket{{{root}}}[$__rate_interval])))",
                    "p50 {{span_name}}",
                ),
                _prom(
                    f"histogram_quantile(0.95, sum by (le, span_name) (rate({DURATION}_bucket{{{root}}}[$__rate_interval])))",
                    "p95 {{span_name}}",
                    "B",
                ),
            )
        )
        .with_panel(
            _series(
                "Failed runs",
                "Root spans with error status (a non-zero exit code or a signal), per command.",
                "short",
                _prom(
                    f'sum by (span_name) (increase({CALLS}{{{root}, status_code="STATUS_CODE_ERROR"}}[1h]))',
                    "{{span_name}}",
                ),
            )
        )
        .with_panel(
            table.Panel()
            .title("Recent runs")
            .description("The latest otel-run root spans in Tempo (TraceQL); a trace id opens the trace explorer.")
            .span(12)
            .height(10)
            .with_target(_traceql('{ span.otel_run.run.id != nil && resource.service.name =~ "$service" }'))
        )
    )


def boundaries() -> dashboard.Dashboard:
    client = f'{SEL}, span_kind="SPAN_KIND_CLIENT"'
    return (
        _variables(dashboard.Dashboard("otel-run: Boundary costs").uid("otel-run-boundaries").tags(["otel-run"]))
        .time("now-6h", "now")
        .with_panel(
            _series(
                "Round-trips per endpoint",
                "HTTP client spans per second by endpoint (codeflash's aiservice/cfapi calls carry "
                "codeflash.api.endpoint; other clients their route).",
                "reqps",
                _prom(
                    f"sum by (codeflash_api_endpoint, span_name) (rate({CALLS}{{{client}}}[$__rate_interval]))",
                    "{{codeflash_api_endpoint}} {{span_name}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Round-trip latency (p50 / p95) per endpoint",
                "Duration of HTTP client spans, per endpoint.",
                "ms",
                _prom(
                    f"histogram_quantile(0.5, sum by (le, codeflash_api_endpoint) (rate({DURATION}_bucket{{{client}}}[$__rate_interval])))",
                    "p50 {{codeflash_api_endpoint}}",
                ),
                _prom(
                    f"histogram_quantile(0.95, sum by (le, codeflash_api_endpoint) (rate({DURATION}_bucket{{{client}}}[$__rate_interval])))",
                    "p95 {{codeflash_api_endpoint}}",
                    "B",
                ),
            )
        )
        .with_panel(
            histogram.Panel()
            .title("Request and response body sizes")
            .description(
                "http.request.body.size and http.response.body.size of HTTP client spans, as histograms "
                "made by the collector's signaltometrics connector."
            )
            .span(12)
            .height(8)
            .with_target(
                _prom(
                    f"sum by (le) (increase(otel_run_http_request_body_size_bytes_bucket{{{SEL}}}[$__range]))",
                    "request",
                )
            )
            .with_target(
                _prom(
                    f"sum by (le) (increase(otel_run_http_response_body_size_bytes_bucket{{{SEL}}}[$__range]))",
                    "response",
                    "B",
                )
            )
        )
        .with_panel(
            _series(
                "Serialization and deserialization time",
                "The 'serialize request' and 'deserialize response' children of codeflash's API call spans, and the "
                "backend's request.deserialize / response.serialize stages.",
                "ms",
                _prom(
                    f'sum by (span_name) (rate({DURATION}_sum{{{SEL}, span_name=~"serialize request|deserialize response|request.deserialize|response.serialize"}}[$__rate_interval]))',
                    "{{span_name}}",
                ),
            )
        )
        .with_panel(
            _series(
                "New TCP connections vs requests",
                "'connect' spans (a new TCP connection) against HTTP client spans: equal lines mean no reuse "
                "(codeflash sends Connection: close).",
                "short",
                _prom(f'sum(rate({CALLS}{{{SEL}, span_name="connect"}}[$__rate_interval]))', "new connections"),
                _prom(f"sum(rate({CALLS}{{{client}}}[$__rate_interval]))", "requests", "B"),
            )
        )
        .with_panel(
            _series(
                "Subprocess spawn cost",
                "Duration of 'subprocess …' spans (spawn to exit as the parent sees it) by program.",
                "ms",
                _prom(
                    f'histogram_quantile(0.5, sum by (le, span_name) (rate({DURATION}_bucket{{{SEL}, span_name=~"subprocess .*"}}[$__rate_interval])))',
                    "{{span_name}}",
                ),
            )
        )
    )


def llm() -> dashboard.Dashboard:
    genai = f'{SEL}, span_name=~"chat .*"'
    return (
        _variables(dashboard.Dashboard("otel-run: LLM").uid("otel-run-llm").tags(["otel-run"]))
        .time("now-6h", "now")
        .with_panel(
            _series(
                "LLM latency by model (p50 / p95)",
                "GenAI client spans ('chat MODEL', gen_ai.* conventions, from opentelemetry-instrumentation-openai-v2).",
                "ms",
                _prom(
                    f"histogram_quantile(0.5, sum by (le, gen_ai_request_model) (rate({DURATION}_bucket{{{genai}}}[$__rate_interval])))",
                    "p50 {{gen_ai_request_model}}",
                ),
                _prom(
                    f"histogram_quantile(0.95, sum by (le, gen_ai_request_model) (rate({DURATION}_bucket{{{genai}}}[$__rate_interval])))",
                    "p95 {{gen_ai_request_model}}",
                    "B",
                ),
            )
        )
        .with_panel(
            _series(
                "Backend time vs LLM time per endpoint",
                "Server spans of the backend (http.route) against the GenAI spans under them: the gap is the "
                "backend's own overhead (prompt assembly, parsing, storage).",
                "ms",
                _prom(
                    f'sum by (http_route) (rate({DURATION}_sum{{{SEL}, span_kind="SPAN_KIND_SERVER"}}[$__rate_interval]))',
                    "server {{http_route}}",
                ),
                _prom(f"sum(rate({DURATION}_sum{{{genai}}}[$__rate_interval]))", "LLM", "B"),
            )
        )
        .with_panel(
            histogram.Panel()
            .title("Tokens per call")
            .description("gen_ai.usage.input_tokens + output_tokens per GenAI span (collector signaltometrics).")
            .span(12)
            .height(8)
            .with_target(
                _prom(f"sum by (le) (increase(otel_run_gen_ai_usage_tokens_bucket{{{SEL}}}[$__range]))", "tokens")
            )
        )
        .with_panel(
            table.Panel()
            .title("Slowest LLM calls")
            .description("GenAI spans over 2 s in Tempo (TraceQL), with their model.")
            .span(12)
            .height(10)
            .with_target(_traceql("{ span.gen_ai.operation.name != nil && duration > 2s }"))
        )
    )


def startup() -> dashboard.Dashboard:
    return (
        _variables(dashboard.Dashboard("otel-run: Start-up").uid("otel-run-startup").tags(["otel-run"]))
        .time("now-24h", "now")
        .with_panel(
            _series(
                "Process wall time by program (p50)",
                "otel-run's process spans (one per process in the tree) by program: pytest subprocesses, codeflash, "
                "git, …",
                "ms",
                _prom(
                    f'histogram_quantile(0.5, sum by (le, span_name) (rate({DURATION}_bucket{{{SEL}, span_kind="SPAN_KIND_INTERNAL", process_executable_name!=""}}[$__rate_interval])))',
                    "{{span_name}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Instrumentation load cost",
                "'otel-run load NAME' spans: what the tracer itself costs each process (SDK, instrumentations).",
                "ms",
                _prom(
                    f'sum by (span_name) (rate({DURATION}_sum{{{SEL}, span_name=~"otel-run load .*"}}[$__rate_interval]))',
                    "{{span_name}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Container start-up stages (p50)",
                "The container span's children from the engine's own records: create, start, boot (until the Python "
                "inside is ready), workload, teardown.",
                "ms",
                _prom(
                    f'histogram_quantile(0.5, sum by (le, span_name) (rate({DURATION}_bucket{{{SEL}, span_name=~"container\\\\..*"}}[$__rate_interval])))',
                    "{{span_name}}",
                ),
            )
        )
        .with_panel(
            table.Panel()
            .title("Slow interpreter start-ups")
            .description(
                "Process spans whose Python took over 100 ms to be ready (TraceQL over the python.started "
                "event is not possible; this lists the slowest process spans instead)."
            )
            .span(12)
            .height(10)
            .with_target(
                _traceql("{ span.process.pid != nil && duration > 100ms } | select(span.process.command_args)")
            )
        )
    )


BOARDS = {"runs": runs, "boundaries": boundaries, "llm": llm, "startup": startup}


def render(name: str) -> str:
    """The dashboard's JSON, as committed."""
    built = BOARDS[name]().build()
    data = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(built))
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def queries_markdown() -> str:
    """Every panel's queries, as a Markdown page (results/dashboards.md)."""
    out = [
        "# Dashboards: the query behind each panel",
        "",
        "Made by `.venv/bin/python dashboards/build.py --queries results/dashboards.md`. PromQL runs over the "
        "collector's span metrics (`traces_span_metrics_*` from the `spanmetrics` connector, `otel_run_*` histograms "
        "from `signaltometrics`; see `collector/config.yaml`), TraceQL over Tempo. `$service`, `$command` and "
        "`$label` are the dashboards' variables.",
        "",
    ]
    for name in BOARDS:
        board = json.loads(render(name))
        out += [f"## {board['title']} (`{name}.json`)", "", "| panel | language | query |", "|---|---|---|"]
        for panel in board["panels"]:
            for target in panel["targets"]:
                language = "PromQL" if target["datasource"]["uid"] == "prometheus" else "TraceQL"
                query = (target.get("expr") or target.get("query") or "").replace("|", "\\|")
                out.append(f"| {panel['title']} | {language} | `{query}` |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed JSON differs from the code")
    parser.add_argument("--queries", metavar="FILE", help="also write every panel's queries as Markdown to FILE")
    args = parser.parse_args(argv)
    if args.queries:
        Path(args.queries).write_text(queries_markdown())
    drift = []
    for name in BOARDS:
        path = HERE / f"{name}.json"
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text() != text:
                drift.append(path.name)
        else:
            path.write_text(text)
    if drift:
        sys.stderr.write(f"dashboards out of date: {', '.join(drift)} (run dashboards/build.py)\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
