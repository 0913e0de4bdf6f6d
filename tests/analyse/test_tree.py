from __future__ import annotations

from otel_run.analyse._tree import critical_path, process_totals, self_time, summary
from otel_run.store._model import Event, Resource, Span, Trace

T = "4bf92f3577b34da6a3ce929d0e0e4736"


def mk(span_id: str, parent: str | None, start: int, end: int, **attrs: object) -> Span:
    return Span(T, span_id, parent, span_id, start_ns=start, end_ns=end, attributes=dict(attrs))


def test_self_time_subtracts_the_union_of_children() -> None:
    trace = Trace(
        T, [mk("root", None, 0, 100), mk("a", "root", 10, 40), mk("b", "root", 30, 60), mk("c", "root", 90, 120)]
    )
    assert self_time(trace.by_id["root"]) == 100 - 50 - 10


def test_critical_path_follows_the_last_finishing_child_backwards() -> None:
    # root 0..100: a 0..30, b 20..90 (b has child b1 40..85), c 25..50 runs inside b, so it is off the path
    spans = [
        mk("root", None, 0, 100),
        mk("a", "root", 0, 30),
        mk("b", "root", 20, 90),
        mk("b1", "b", 40, 85),
        mk("c", "root", 25, 50),
    ]
    trace = Trace(T, spans)
    path = [(s.span_id, ns) for s, ns in critical_path(trace.by_id["root"])]
    assert path == [("a", 20), ("b", 20), ("b1", 45), ("b", 5), ("root", 10)]
    assert sum(ns for _, ns in path) == 100
    assert "c" not in {name for name, _ in path}


def test_process_totals_and_summary() -> None:
    proc = Span(
        T,
        "p1",
        "root",
        "worker.py",
        start_ns=10,
        end_ns=60,
        scope_name="otel-run",
        attributes={
            "process.pid": 42,
            "process.parent_pid": 1,
            "process.exit.code": 0,
            "otel_run.process.cpu.user": 0.5,
            "otel_run.process.max_rss": 1 << 20,
        },
        events=[Event("python.started", 25, {})],
        resource=Resource({"service.name": "worker", "process.pid": 42}),
    )
    trace = Trace(
        T,
        [
            mk("root", None, 0, 100, **{"otel_run.run.id": "root"}),
            proc,
            Span(T, "h", "p1", "GET", start_ns=30, end_ns=40, resource=proc.resource),
        ],
    )
    [total] = process_totals(trace)
    assert (total.pid, total.service, total.wall_ns, total.startup_ns, total.spans) == (42, "worker", 50, 15, 2)
    data = summary(trace, "root")
    assert data["spans"] == 3 and data["wall_ms"] == 100 / 1e6
    assert data["processes"][0]["startup_ms"] == 15 / 1e6
    assert [c["span_id"] for c in data["critical_path"]] == ["root", "p1", "h", "p1", "root"]


def test_a_process_seen_only_from_outside_gets_its_tree_less_its_children_as_its_own_cpu() -> None:
    def proc(span_id: str, parent: str | None, **attrs: object) -> Span:
        attributes = {"process.pid": len(span_id), "process.parent_pid": 1, **attrs}
        return Span(T, span_id, parent, span_id, start_ns=0, end_ns=10, scope_name="otel-run", attributes=attributes)

    trace = Trace(
        T,
        [
            # sh, reaped by its parent: wait4 says 1.0 s user for sh and everything it waited for
            proc("sh", None, **{"otel_run.process.cpu.tree.user": 1.0, "otel_run.process.cpu.tree.system": 0.2}),
            # a Python child of sh read its own 0.6 s and 0.1 s of its own children from inside
            proc(
                "py",
                "sh",
                **{
                    "otel_run.process.cpu.user": 0.6,
                    "otel_run.process.cpu.system": 0.05,
                    "otel_run.process.children.cpu.user": 0.1,
                    "otel_run.process.children.cpu.system": 0.0,
                },
            ),
        ],
    )
    sh, py = process_totals(trace)
    assert (py.cpu_user, py.cpu_tree_user) == (0.6, 0.7)
    assert sh.cpu_tree_user == 1.0 and abs(sh.cpu_user - 0.3) < 1e-9  # type: ignore[operator]
    assert abs(sh.cpu_system - 0.15) < 1e-9  # type: ignore[operator]
