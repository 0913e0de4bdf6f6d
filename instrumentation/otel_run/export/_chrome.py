"""A trace as Chrome trace-event JSON (``chrome://tracing``, Perfetto's UI).

Each span is a complete event (``ph: X``) on the row of its process (pid from
the resource) and thread (``thread.id`` when the span has it, else the main
thread); each process gets its service name; a flow arrow joins a span to a
child span in another process (a subprocess call to the child's process span,
an HTTP client span to the server span).
"""

from __future__ import annotations

from typing import Any

from otel_run.store._model import Span, Trace


def to_chrome(trace: Trace) -> dict[str, Any]:
    t0 = trace.start_ns
    events: list[dict[str, Any]] = []
    names: dict[int, str] = {}
    flow = 0
    for span in sorted(trace.spans, key=lambda s: s.start_ns):
        pid = _pid(span)
        tid = _int(span.attributes.get("thread.id")) or pid
        names.setdefault(pid, f"{span.service} ({pid})" if pid else span.service)
        args: dict[str, Any] = {"span_id": span.span_id, "service": span.service, **span.attributes}
        if span.status_code == 2:
            args["status"] = span.status_message or "error"
        events.append(
            {
                "name": span.name,
                "cat": span.scope_name or "span",
                "ph": "X",
                "ts": (span.start_ns - t0) / 1000,
                "dur": span.duration_ns / 1000,
                "pid": pid,
                "tid": tid,
                "args": args,
            }
        )
        parent = span.parent
        if parent is not None and _pid(parent) != pid:
            flow += 1
            ppid = _pid(parent)
            ptid = _int(parent.attributes.get("thread.id")) or ppid
            start = (max(span.start_ns, parent.start_ns) - t0) / 1000
            events.append(
                {
                    "name": "spawn" if span.is_process else "call",
                    "cat": "flow",
                    "ph": "s",
                    "id": flow,
                    "pid": ppid,
                    "tid": ptid,
                    "ts": start,
                }
            )
            events.append(
                {
                    "name": "spawn" if span.is_process else "call",
                    "cat": "flow",
                    "ph": "f",
                    "bp": "e",
                    "id": flow,
                    "pid": pid,
                    "tid": tid,
                    "ts": (span.start_ns - t0) / 1000,
                }
            )
    meta = [
        {"name": "process_name", "ph": "M", "pid": pid, "tid": pid, "args": {"name": name}}
        for pid, name in names.items()
    ]
    return {
        "traceEvents": meta + events,
        "displayTimeUnit": "ms",
        "otherData": {"trace_id": trace.trace_id, "start_unix_nano": t0},
    }


def _pid(span: Span) -> int:
    return _int(span.resource.attributes.get("process.pid")) or _int(span.attributes.get("process.pid")) or 0


def _int(value: Any) -> int:
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0
