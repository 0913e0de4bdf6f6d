"""Where the time of a trace went: self time, the critical path, per-process
totals. Pure functions over :class:`otel_run.store._model.Trace`."""

from __future__ import annotations

from typing import Any

from otel_run import _wire
from otel_run.analyse._ledger import ledger
from otel_run.store._model import Span, Trace


class ProcessTotal:
    """One process of the tree."""

    __slots__ = (
        "cpu_system",
        "cpu_tree_system",
        "cpu_tree_user",
        "cpu_user",
        "depth",
        "exit_code",
        "max_rss",
        "max_rss_tree",
        "name",
        "pid",
        "service",
        "span",
        "spans",
        "startup_ns",
        "wall_ns",
    )

    def __init__(self, span: Span, spans: int, depth: int) -> None:
        attrs = span.attributes
        self.span = span
        self.pid = int(attrs.get("process.pid", 0) or 0)
        self.service = span.service
        self.name = span.name
        self.wall_ns = span.duration_ns
        started = next((e.time_ns for e in span.events if e.name == "python.started"), None)
        self.startup_ns = started - span.start_ns if started is not None and started >= span.start_ns else None
        # the process's own numbers (read from inside) and the tree's (the
        # reaper's wait4: with every descendant it waited for); see _wire
        self.cpu_user: float | None = _number(attrs.get(_wire.CPU_USER))
        self.cpu_system: float | None = _number(attrs.get(_wire.CPU_SYSTEM))
        self.cpu_tree_user = _tree(attrs, _wire.CPU_TREE_USER, self.cpu_user, _wire.CPU_CHILDREN_USER)
        self.cpu_tree_system = _tree(attrs, _wire.CPU_TREE_SYSTEM, self.cpu_system, _wire.CPU_CHILDREN_SYSTEM)
        self.max_rss = attrs.get(_wire.MAX_RSS)
        self.max_rss_tree = attrs.get(_wire.MAX_RSS_TREE)
        self.exit_code = attrs.get("process.exit.code")
        self.spans = spans
        self.depth = depth

    def to_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span.span_id,
            "pid": self.pid,
            "service": self.service,
            "name": self.name,
            "depth": self.depth,
            "wall_ms": self.wall_ns / 1e6,
            "startup_ms": self.startup_ns / 1e6 if self.startup_ns is not None else None,
            "cpu_user_s": self.cpu_user,
            "cpu_system_s": self.cpu_system,
            "cpu_tree_user_s": self.cpu_tree_user,
            "cpu_tree_system_s": self.cpu_tree_system,
            "max_rss_bytes": self.max_rss,
            "max_rss_tree_bytes": self.max_rss_tree,
            "exit_code": self.exit_code,
            "spans": self.spans,
            "unfinished": self.span.unfinished,
            "seen_from_outside": self.span.seen_from_outside,
        }


def self_time(span: Span) -> int:
    """The span's duration minus the time covered by its children (clipped to it)."""
    if not span.children:
        return span.duration_ns
    covered = 0
    cursor = span.start_ns
    for child in sorted(span.children, key=lambda c: c.start_ns):
        start = max(child.start_ns, cursor)
        end = min(child.end_ns, span.end_ns)
        if end > start:
            covered += end - start
            cursor = end
    return max(0, span.duration_ns - covered)


def critical_path(root: Span) -> list[tuple[Span, int]]:
    """The chain of spans that determined when ``root`` ended, as
    ``(span, nanoseconds it contributed)`` in time order.

    Walks back from the end: the child that ended last is on the path, then the
    child that ended last before it started, and so on; time no child covers is
    the parent's own (the algorithm Jaeger's critical path uses).
    """
    out: list[tuple[Span, int]] = []
    _walk(root, out)
    out.reverse()
    merged: list[tuple[Span, int]] = []
    for span, ns in out:
        if merged and merged[-1][0] is span:
            merged[-1] = (span, merged[-1][1] + ns)
        elif ns > 0:
            merged.append((span, ns))
    return merged


def _walk(root: Span, out: list[tuple[Span, int]]) -> None:
    """Jaeger's walk back from the end, with a stack instead of recursion (a
    chain 100,000 spans deep is walked like any other)."""
    # a frame: [span, the end still to account for, its children latest end first]
    stack: list[list[Any]] = [[root, root.end_ns, iter(sorted(root.children, key=_end, reverse=True))]]
    while stack:
        frame = stack[-1]
        span, last, children = frame
        for child in children:
            if child.start_ns >= last or child.end_ns <= span.start_ns:
                continue
            child_end = min(child.end_ns, last)
            if last > child_end:
                out.append((span, last - child_end))
            frame[1] = max(child.start_ns, span.start_ns)  # where the parent goes on once the child is walked
            stack.append([child, child_end, iter(sorted(child.children, key=_end, reverse=True))])
            break
        else:
            if last > span.start_ns:
                out.append((span, last - span.start_ns))
            stack.pop()


def _end(span: Span) -> int:
    return span.end_ns


def process_totals(trace: Trace) -> list[ProcessTotal]:
    """Each process span, in tree order, with the number of spans it holds."""
    counts: dict[int, int] = {}
    for span in trace.spans:
        pid = span.resource.attributes.get("process.pid")
        if isinstance(pid, int):
            counts[pid] = counts.get(pid, 0) + 1
    out: list[ProcessTotal] = []
    children: dict[int, list[ProcessTotal]] = {}  # by id() of the parent's ProcessTotal
    for root in trace.roots:
        stack: list[tuple[Span, int, ProcessTotal | None]] = [(root, 0, None)]
        while stack:
            span, depth, parent = stack.pop()
            if span.is_process:
                pid = int(span.attributes.get("process.pid", 0) or 0)
                total = ProcessTotal(span, counts.get(pid, 0), depth)
                out.append(total)
                if parent is not None:
                    children.setdefault(id(parent), []).append(total)
                parent, depth = total, depth + 1
            stack.extend((c, depth, parent) for c in reversed(span.children))
    for total in out:  # seen only from outside: its own CPU is the tree's less its children's trees
        if total.cpu_user is None and total.cpu_tree_user is not None:
            kids = children.get(id(total), [])
            total.cpu_user = max(0.0, total.cpu_tree_user - sum(k.cpu_tree_user or 0.0 for k in kids))
            total.cpu_system = max(0.0, (total.cpu_tree_system or 0.0) - sum(k.cpu_tree_system or 0.0 for k in kids))
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _tree(attrs: dict[str, Any], key: str, own: float | None, children_key: str) -> float | None:
    """The tree's CPU: for a process that read its own numbers, its own plus
    its waited-for children's, read at the same moment (the reaper's view
    would add the interpreter's finalisation to the children); else the
    reaper's view."""
    if own is not None:
        return own + (_number(attrs.get(children_key)) or 0.0)
    return _number(attrs.get(key))


def top_self_time(trace: Trace, limit: int = 10) -> list[tuple[Span, int]]:
    ranked = sorted(((s, self_time(s)) for s in trace.spans), key=lambda pair: pair[1], reverse=True)
    return ranked[:limit]


def run_root(trace: Trace, root_span_id: str | None = None) -> Span | None:
    """The span a view starts from: the run's root span if given and present,
    else the earliest, longest root."""
    if root_span_id and root_span_id in trace.by_id:
        return trace.by_id[root_span_id]
    return trace.roots[0] if trace.roots else None


def summary(trace: Trace, root_span_id: str | None = None, top: int = 10) -> dict[str, Any]:
    """Everything ``otel-trace show`` reports, as plain data."""
    root = run_root(trace, root_span_id)
    path = critical_path(root) if root is not None else []
    return {
        "trace_id": trace.trace_id,
        "root_span_id": root.span_id if root is not None else None,
        "wall_ms": root.duration_ns / 1e6 if root is not None else 0.0,
        "spans": len(trace.spans),
        "errors": sum(1 for s in trace.spans if s.status_code == 2),
        "unfinished": sum(1 for s in trace.spans if s.unfinished),
        "warnings": list(trace.warnings),
        "processes": [p.to_dict() for p in process_totals(trace)],
        "critical_path": [_span_ref(s, ns) for s, ns in path],
        "top_self_time": [_span_ref(s, ns) for s, ns in top_self_time(trace, top)],
        "boundaries": ledger(trace),
    }


def _span_ref(span: Span, ns: int) -> dict[str, Any]:
    return {
        "span_id": span.span_id,
        "name": span.name,
        "service": span.service,
        "ms": ns / 1e6,
        "duration_ms": span.duration_ns / 1e6,
    }
