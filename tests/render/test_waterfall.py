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


def test_the_critical_path_has_one_row_per_span() -> None:
    # root waits on a, which waits on b in the middle: the path is root, a, b, a, root
    root = Span(T, "r" * 16, None, "root-span", start_ns=0, end_ns=100, attributes={"otel_run.run.id": "r"})
    a = Span(T, "a" * 16, "r" * 16, "a-span", start_ns=10, end_ns=90)
    b = Span(T, "b" * 16, "a" * 16, "b-span", start_ns=30, end_ns=60)
    out = io.StringIO()
    render(Trace(T, [root, a, b]), None, Console(file=out, width=120, color_system=None))
    critical = out.getvalue().split("critical path")[1].split("top self time")[0]
    assert [line.split()[0] for line in critical.strip().splitlines()[1:]] == ["root-span", "a-span", "b-span"]
    assert "50 ms" not in critical and "20.0%" in critical  # root: 10 + 10 ns of 100, merged
