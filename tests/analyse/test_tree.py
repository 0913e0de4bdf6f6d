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


def _recursive_critical_path(root: Span) -> list[tuple[str, int]]:
    """The walk as it was written before (recursive), to check the stack-based one against."""
    out: list[tuple[Span, int]] = []

    def walk(span: Span, bound: int) -> None:
        last = min(span.end_ns, bound)
        for child in sorted(span.children, key=lambda c: c.end_ns, reverse=True):
            if child.start_ns >= last or child.end_ns <= span.start_ns:
                continue
            child_end = min(child.end_ns, last)
            if last > child_end:
                out.append((span, last - child_end))
            walk(child, child_end)
            last = max(child.start_ns, span.start_ns)
        if last > span.start_ns:
            out.append((span, last - span.start_ns))

    walk(root, root.end_ns)
    out.reverse()
    merged: list[tuple[str, int]] = []
    for span, ns in out:
        if merged and merged[-1][0] == span.span_id:
            merged[-1] = (span.span_id, merged[-1][1] + ns)
        elif ns > 0:
            merged.append((span.span_id, ns))
    return merged


def test_the_critical_path_without_recursion_is_the_same_path() -> None:
    import random

    rng = random.Random(7)
    for _ in range(200):
        spans = [mk("s0", None, 0, 1000)]
        for i in range(1, rng.randint(2, 40)):
            parent = spans[rng.randrange(len(spans))]
            start = rng.randint(parent.start_ns - 5, parent.end_ns)
            spans.append(mk(f"s{i}", parent.span_id, start, start + rng.randint(0, 400)))
        root = Trace(T, spans).by_id["s0"]
        assert [(s.span_id, ns) for s, ns in critical_path(root)] == _recursive_critical_path(root)


def test_a_chain_100000_deep_is_walked_whole() -> None:
    n = 100_000
    spans = [mk("0", None, 0, 2 * n)] + [mk(str(i), str(i - 1), i, 2 * n - i) for i in range(1, n)]
    trace = Trace(T, spans)
    path = critical_path(trace.roots[0])
    assert len(path) == 2 * n - 1 and path[0][0].span_id == "0" and path[n - 1][0].span_id == str(n - 1)
    assert sum(ns for _, ns in path) == 2 * n  # every nanosecond of the root, once
    assert trace.depth == n - 1 and len(process_totals(trace)) == 0
    assert summary(trace)["wall_ms"] == 2 * n / 1e6


def test_loops_and_self_parents_become_roots_with_a_warning() -> None:
    spans = [mk("a", "c", 0, 10), mk("b", "a", 1, 9), mk("c", "b", 2, 8), mk("s", "s", 3, 4)]
    trace = Trace(T, spans, source="t.jsonl")
    assert [r.span_id for r in trace.roots] == ["a", "s"]
    assert [c.span_id for c in trace.by_id["a"].children] == ["b"]
    assert len(trace.warnings) == 2 and all(w.startswith("t.jsonl: ") for w in trace.warnings)
    assert [s.span_id for s, _ in critical_path(trace.by_id["a"])] == ["a", "b", "c", "b", "a"]


def test_a_span_ending_before_it_starts_lasts_zero() -> None:
    trace = Trace(T, [mk("root", None, 0, 10), mk("back", "root", 8, 3)])
    assert trace.by_id["back"].duration_ns == 0 and trace.by_id["back"].end_ns == 8
    assert trace.warnings == [f"trace {T}: span back ends before it starts: taken as lasting 0"]
