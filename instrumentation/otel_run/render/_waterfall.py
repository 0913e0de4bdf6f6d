"""``otel-trace show``: a terminal waterfall of a trace, its processes, the
critical path and the spans with the most self time."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from otel_run.analyse._tree import ProcessTotal, critical_path, process_totals, run_root, self_time, top_self_time
from otel_run.store._model import Span, Trace
from otel_run.store._store import Run

_PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta")


def render(trace: Trace, run: Run | None, console: Console, *, max_rows: int = 60, top: int = 10) -> None:
    root = run_root(trace, run.root_span_id if run else None)
    if root is None:
        console.print(f"trace {trace.trace_id}: no spans stored")
        return
    colours: dict[str, str] = {}
    for span in trace.spans:
        colours.setdefault(span.service, _PALETTE[len(colours) % len(_PALETTE)])
    console.print(_header(trace, run, root))
    for warning in trace.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    console.print(_waterfall(trace, root, colours, console.width, max_rows))
    console.print(_processes(trace, colours))
    for table in _boundaries(trace):
        console.print(table)
    console.print(_critical(root, colours))
    console.print(_top(trace, colours, top))


def _header(trace: Trace, run: Run | None, root: Span) -> Text:
    text = Text()
    text.append("trace ", style="bold")
    text.append(trace.trace_id)
    if run is not None:
        text.append(f"  run {run.run_id}")
        if run.label:
            text.append(f"  label {run.label}", style="bold")
        if run.git_commit:
            text.append(f"  commit {run.git_commit[:12]}")
        exit_code = run.exit_code
        if exit_code is not None:
            text.append(f"  exit {exit_code}", style="red" if exit_code else "green")
    processes = trace.processes
    outside = sum(1 for p in processes if p.seen_from_outside)
    text.append(
        f"\n{_ms(root.duration_ns)} wall · {_count(len(trace.spans), 'span')} · {_count(len(processes), 'process')}"
    )
    if outside:
        text.append(f" ({outside} seen only by {'its' if outside == 1 else 'their'} parent)")
    errors = sum(1 for s in trace.spans if s.status_code == 2)
    if errors:
        text.append(f" · {errors} with errors", style="red")
    return text


def _waterfall(trace: Trace, root: Span, colours: dict[str, str], width: int, max_rows: int) -> Table:
    rows = _rows(trace, root)
    t0 = min(span.start_ns for _, span in rows)
    total = max(1, max(span.end_ns for _, span in rows) - t0)
    bar_width = max(10, min(50, width - 70))
    table = Table(title="waterfall", title_justify="left", box=None, pad_edge=False, show_header=True)
    table.add_column("span", no_wrap=True, overflow="ellipsis", max_width=max(30, width - bar_width - 30))
    table.add_column("service", no_wrap=True, overflow="ellipsis", max_width=16)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for prefix, span in rows[:max_rows]:
        name = Text(prefix)
        name.append(span.name, style="red" if span.status_code == 2 else ("bold" if span.is_process else ""))
        if span.unfinished:
            name.append(" (unfinished)", style="red")
        bar = _bar(span, t0, total, bar_width, colours[span.service])
        table.add_row(name, Text(span.service, style=colours[span.service]), _ms(span.duration_ns), bar)
    if len(rows) > max_rows:
        table.add_row(Text(f"… {len(rows) - max_rows} more spans (--all shows them)", style="dim"), "", "", "")
    return table


def _rows(trace: Trace, root: Span) -> list[tuple[str, Span]]:
    out: list[tuple[str, Span]] = []
    # the run's tree, then spans whose parent is missing (when the run is the trace's root)
    tops = [root] + ([r for r in trace.roots if r is not root] if root in trace.roots else [])

    def visit(span: Span, lead: str, last: bool, top: bool) -> None:
        out.append(("" if top else lead + ("└─ " if last else "├─ "), span))
        child_lead = "" if top else lead + ("   " if last else "│  ")
        for i, child in enumerate(span.children):
            visit(child, child_lead, i == len(span.children) - 1, False)

    for top in tops:
        visit(top, "", True, True)
    return out


def _bar(span: Span, t0: int, total: int, width: int, colour: str) -> Text:
    start = int((span.start_ns - t0) * width / total)
    length = max(1, int(span.duration_ns * width / total + 0.5))
    start = max(0, min(width - 1, start))
    length = min(length, width - start)
    return Text(" " * start + "█" * length + " " * (width - start - length), style=colour)


def _processes(trace: Trace, colours: dict[str, str]) -> Table:
    totals = process_totals(trace)
    # CPU with the descendants a process waited for, where that differs from its own
    with_tree = any(_tree_differs(p) for p in totals)
    table = Table(title="processes", title_justify="left", box=None, pad_edge=False)
    for col, justify in (
        ("pid", "right"),
        ("process", "left"),
        ("service", "left"),
        ("wall", "right"),
        ("start-up", "right"),
        ("cpu user", "right"),
        ("cpu sys", "right"),
        *((("cpu +desc.", "right"),) if with_tree else ()),
        ("max rss", "right"),
        ("spans", "right"),
        ("exit", "right"),
    ):
        table.add_column(
            col,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=True,
            overflow="ellipsis",
            max_width=40 if col == "process" else None,
        )
    for p in totals:
        tree = (p.cpu_tree_user or 0.0) + (p.cpu_tree_system or 0.0)
        table.add_row(
            str(p.pid or ""),
            Text("  " * p.depth + p.name, style="red" if p.span.status_code == 2 else ""),
            Text(p.service, style=colours.get(p.service, "")),
            _ms(p.wall_ns),
            _ms(p.startup_ns) if p.startup_ns is not None else "",
            _s(p.cpu_user),
            _s(p.cpu_system),
            *((_s(tree) if _tree_differs(p) else "",) if with_tree else ()),
            # seen only by its reaper: wait4's peak is an upper bound (descendants, the image before exec)
            _mib(p.max_rss) if p.max_rss else ("≤ " + _mib(p.max_rss_tree) if p.max_rss_tree else ""),
            str(p.spans),
            "?" if p.span.unfinished else str(p.exit_code if p.exit_code is not None else ""),
        )
    return table


def _boundaries(trace: Trace) -> list[Table]:
    """The boundary ledger (analyse._ledger) as tables; empty parts are left out."""
    from otel_run.analyse._ledger import llm_calls, round_trips, servers, subprocesses

    tables = []
    trips = round_trips(trace)
    if trips:
        table = _table(
            "HTTP round-trips",
            "caller",
            "endpoint",
            "server",
            "calls",
            "total",
            "median",
            "up",
            "down",
            "ser.",
            "deser.",
            "new conn",
            "connect",
            "errors",
        )
        for r in trips:
            table.add_row(
                r["caller"],
                r["endpoint"],
                r["server"] + (" (internet)" if r["internet"] else ""),
                str(r["calls"]),
                _ms(r["total_ms"] * 1e6),
                _ms(r["median_ms"] * 1e6),
                _size(r["bytes_up"]),
                _size(r["bytes_down"]),
                _ms(r["serialize_ms"] * 1e6),
                _ms(r["deserialize_ms"] * 1e6),
                f"{r['new_connections']}/{r['calls']}",
                _ms(r["connect_ms"] * 1e6),
                str(r["errors"] or ""),
            )
        tables.append(table)
    server = servers(trace)
    if server:
        table = _table(
            "server side",
            "service",
            "route",
            "requests",
            "total",
            "LLM",
            "overhead",
            "deser.",
            "prompt",
            "parse",
            "db",
            "ser.",
        )
        for r in server:
            table.add_row(
                r["service"],
                r["route"],
                str(r["requests"]),
                _ms(r["total_ms"] * 1e6),
                _ms(r["llm_ms"] * 1e6),
                _ms(r["overhead_ms"] * 1e6),
                _ms(r["deserialize_ms"] * 1e6),
                _ms(r["prompt_ms"] * 1e6),
                _ms(r["parse_ms"] * 1e6),
                _ms(r["db_ms"] * 1e6),
                _ms(r["serialize_ms"] * 1e6),
            )
        tables.append(table)
    llm = llm_calls(trace)
    if llm:
        table = _table("LLM calls", "service", "model", "calls", "total", "tokens in", "tokens out", "first token")
        for r in llm:
            ttft = r["median_ttft_ms"]
            table.add_row(
                r["service"],
                r["model"],
                str(r["calls"]),
                _ms(r["total_ms"] * 1e6),
                str(r["input_tokens"]),
                str(r["output_tokens"]),
                _ms(ttft * 1e6) if ttft is not None else "",
            )
        tables.append(table)
    procs = [r for r in subprocesses(trace) if r["count"] > 1 or r["python"]]
    if procs:
        table = _table(
            "processes by service", "service", "count", "busy", "at once", "start-up (median)", "start-up (total)"
        )
        for r in procs:
            median = r["median_startup_ms"]
            table.add_row(
                r["service"],
                str(r["count"]),
                _ms(r["busy_ms"] * 1e6),
                str(r["max_concurrent"]),
                _ms(median * 1e6) if median is not None else "",
                _ms(r["total_startup_ms"] * 1e6) if r["python"] else "",
            )
        tables.append(table)
    return tables


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for i, column in enumerate(columns):
        table.add_column(
            column,
            justify="left" if i < 3 else "right",
            no_wrap=True,
            overflow="ellipsis",
            max_width=44 if i < 3 else None,
        )
    return table


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1048576:.1f} MiB"


def _critical(root: Span, colours: dict[str, str]) -> Group:
    path = critical_path(root)
    total = max(1, root.duration_ns)
    table = Table(title="critical path", title_justify="left", box=None, pad_edge=False)
    table.add_column("span", no_wrap=True, overflow="ellipsis", max_width=60)
    table.add_column("service", no_wrap=True)
    table.add_column("on path", justify="right")
    table.add_column("share", justify="right")
    on_path: dict[str, list[Any]] = {}  # one row per span: a span the path leaves and re-enters sums its segments
    for span, ns in path:
        on_path.setdefault(span.span_id, [span, 0])[1] += ns
    for span, ns in on_path.values():
        if ns * 200 < total:  # under 0.5 %: noise in this view
            continue
        table.add_row(
            span.name, Text(span.service, style=colours.get(span.service, "")), _ms(ns), f"{100 * ns / total:.1f}%"
        )
    return Group(table)


def _top(trace: Trace, colours: dict[str, str], top: int) -> Table:
    table = Table(title="top self time", title_justify="left", box=None, pad_edge=False)
    table.add_column("span", no_wrap=True, overflow="ellipsis", max_width=60)
    table.add_column("service", no_wrap=True)
    table.add_column("self", justify="right")
    table.add_column("total", justify="right")
    for span, ns in top_self_time(trace, top):
        table.add_row(
            span.name, Text(span.service, style=colours.get(span.service, "")), _ms(ns), _ms(span.duration_ns)
        )
    return table


def _ms(ns: int | None) -> str:
    if ns is None:
        return ""
    ms = ns / 1e6
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def _s(value: Any) -> str:
    return f"{float(value):.3f} s" if isinstance(value, (int, float)) else ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else ("es" if noun.endswith("s") else "s"))


def _tree_differs(p: ProcessTotal) -> bool:
    own = (p.cpu_user or 0.0) + (p.cpu_system or 0.0)
    tree = (p.cpu_tree_user or 0.0) + (p.cpu_tree_system or 0.0)
    return tree - own > max(0.005, 0.05 * own)


def _mib(value: Any) -> str:
    return f"{value / 1048576:.1f} MiB" if isinstance(value, (int, float)) and value else ""


__all__ = ["render", "self_time"]
