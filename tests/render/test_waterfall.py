from __future__ import annotations

import io

from rich.console import Console

from otel_run.render._waterfall import render
from otel_run.store._model import Resource, Span, Trace

T = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_nested_run_shows_only_its_own_subtree() -> None:
    outer = Span(T, "o" * 16, None, "otel-run outer", start_ns=0, end_ns=100, attributes={"otel_run.run.id": "o"})
    inner = Span(T, "i" * 16, "o" * 16, "otel-run inner", start_ns=10, end_ns=90, attributes={"otel_run.run.id": "i"})
    leaf = Span(
        T,
        "l" * 16,
        "i" * 16,
        "work",
        start_ns=20,
        end_ns=80,
        resource=Resource({"service.name": "w"}),
        status_code=2,
        status_message="boom",
    )
    trace = Trace(T, [outer, inner, leaf])
    out = io.StringIO()

    class Run:
        run_id, root_span_id, label, git_commit, exit_code = "i" * 16, "i" * 16, "lbl", None, 1

    render(trace, Run(), Console(file=out, width=120, color_system=None))  # type: ignore[arg-type]
    text = out.getvalue()
    assert "otel-run inner" in text and "work" in text and "label lbl" in text
    assert "otel-run outer" not in text.split("processes")[0]  # the waterfall holds the inner run only
    assert "1 with errors" in text
