"""``otel-trace show``: a terminal waterfall of a trace, its processes, the
critical path and the spans with the most self time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from otel_run.analyse._stacks import hottest
from otel_run.analyse._tree import ProcessTotal, critical_path, process_totals, run_root, self_time, top_self_time
from otel_run.store._model import Span, Trace
from otel_run.store._profiles import ProcessProfile
from otel_run.store._store import Run

MAX_INDENT = 12
"""Tree levels the waterfall indents; deeper rows say their level instead
(``[13] └─ name``), so a row's width stays bounded and the output linear in
the number of spans however deep the tree goes."""
_PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta")


def render(
    trace: Trace,
    run: Run | None,
    console: Console,
    *,
    max_rows: int = 60,
    top: int = 10,
    profiles: Sequence[ProcessProfile] = (),
) -> None:
    """The whole view; with ``profiles`` (``otel-run --profile cpu``) the top
    self-time table names each span's three hottest functions."""
    root = run_root(trace, run.root_span_id if run else None)
    if root is None:
        console.print(f"trace {trace.trace_id}: no spans stored")
        return
    colours: dict[str, str] = {}
    for span in trace.spans:
        colours.setdefault(span.service, _PALETTE[len(colours) % len(_PALETTE)])
    console.print(_header(trace, run, root))
    width = console.width
    console.print(_waterfall(trace, root, colours, width, max_rows))
    if trace.depth > MAX_INDENT:
        console.print(
            Text(
                f"(the tree is {trace.depth} levels deep: rows deeper than {MAX_INDENT} are not indented, "
                "[N] gives their level)",
                style="dim",
            )
        )
    console.print(_processes(trace, colours, width))
    for table in _boundaries(trace, width):
        console.print(table)
    console.print(_critical(root, colours, width))
    console.print(_top(trace, colours, top, width, profiles))


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
    shown = rows[:max_rows]
    cells = []
    for prefix, span in shown:
        name = Text(prefix)
        name.append(span.name, style="red" if span.status_code == 2 else ("bold" if span.is_process else ""))
        if span.unfinished:
            name.append(" (unfinished)", style="red")
        cells.append([name, Text(span.service, style=colours[span.service]), _ms(span.duration_ns)])
    # the bar takes what the names leave, between 10 and 50 columns; none below 10
    names = max([4] + [_cell_len(c[0]) for c in cells])
    fixed = max([8] + [_cell_len(c[2]) for c in cells]) + min(16, max([7] + [_cell_len(c[1]) for c in cells]))
    bar_width = min(50, width - min(names, 40) - fixed - 6)
    columns = [_Col("span", name=True), _Col("service", 3, name=True), _Col("duration")]
    if bar_width >= 10:
        columns.append(_Col("", 2))
        for cell, (_, span) in zip(cells, shown, strict=True):
            cell.append(_bar(span, t0, total, bar_width, colours[span.service]))
    if len(rows) > max_rows:
        cells.append([Text(f"… {len(rows) - max_rows} more spans (--all shows them)", style="dim"), "", ""])
        if bar_width >= 10:
            cells[-1].append("")
    return _fitted("waterfall", width, columns, cells)


def _rows(trace: Trace, root: Span) -> list[tuple[str, Span]]:
    """The waterfall's rows in tree order, each with its tree-drawing prefix
    (indented at most :data:`MAX_INDENT` levels); no recursion."""
    out: list[tuple[str, Span]] = []
    # the run's tree, then spans whose parent is missing (when the run is the trace's root)
    tops = [root] + ([r for r in trace.roots if r is not root] if root in trace.roots else [])
    # (span, the lead of its row, last of its siblings, top, level)
    stack: list[tuple[Span, str, bool, bool, int]] = [(top, "", True, True, 0) for top in reversed(tops)]
    while stack:
        span, lead, last, top, level = stack.pop()
        if top:
            prefix = child_lead = ""
        elif level > MAX_INDENT:  # no lead: the level says where the row is
            prefix = f"[{level}] " + ("└─ " if last else "├─ ")
            child_lead = lead
        else:
            prefix = lead + ("└─ " if last else "├─ ")
            child_lead = lead + ("   " if last else "│  ")
        out.append((prefix, span))
        kids = span.children
        for i in range(len(kids) - 1, -1, -1):
            stack.append((kids[i], child_lead, i == len(kids) - 1, False, level + 1))
    # processes that share a name (pool workers, test runners) are told apart by pid
    names: dict[str, int] = {}
    for _, span in out:
        if span.is_process:
            names[span.name] = names.get(span.name, 0) + 1
    return [(prefix + (_pid(span) if span.is_process and names[span.name] > 1 else ""), span) for prefix, span in out]


def _pid(span: Span) -> str:
    pid = span.attributes.get("process.pid")
    return f"[{pid}] " if pid else ""


def _bar(span: Span, t0: int, total: int, width: int, colour: str) -> Text:
    start = int((span.start_ns - t0) * width / total)
    length = max(1, int(span.duration_ns * width / total + 0.5))
    start = max(0, min(width - 1, start))
    length = min(length, width - start)
    return Text(" " * start + "█" * length + " " * (width - start - length), style=colour)


def _processes(trace: Trace, colours: dict[str, str], width: int) -> Table:
    totals = process_totals(trace)
    # CPU with the descendants a process waited for, where that differs from its own
    with_tree = any(_tree_differs(p) for p in totals)
    columns = [
        _Col("pid"),
        _Col("process", name=True, least=24),
        _Col("service", 6, name=True),
        _Col("wall"),
        _Col("start-up", 4),
        _Col("cpu user", 1),
        _Col("cpu sys", 5),
        *([_Col("cpu +desc.", 7)] if with_tree else []),
        _Col("max rss", 3),
        _Col("spans", 8),
        _Col("exit"),
    ]
    rows = []
    for p in totals:
        tree = (p.cpu_tree_user or 0.0) + (p.cpu_tree_system or 0.0)
        rows.append(
            [
                str(p.pid or ""),
                Text("  " * min(p.depth, MAX_INDENT) + p.name, style="red" if p.span.status_code == 2 else ""),
                Text(p.service, style=colours.get(p.service, "")),
                _ms(p.wall_ns),
                _ms(p.startup_ns) if p.startup_ns is not None else "",
                _s(p.cpu_user),
                _s(p.cpu_system),
                *([_s(tree) if _tree_differs(p) else ""] if with_tree else []),
                # seen only by its reaper: wait4's peak is an upper bound (descendants, the image before exec)
                _mib(p.max_rss) if p.max_rss else ("≤ " + _mib(p.max_rss_tree) if p.max_rss_tree else ""),
                str(p.spans),
                "?" if p.span.unfinished else str(p.exit_code if p.exit_code is not None else ""),
            ]
        )
    return _fitted("processes", width, columns, rows)


def _boundaries(trace: Trace, width: int) -> list[Table]:
    """The boundary ledger (analyse._ledger) as tables; empty parts are left out."""
    from otel_run.analyse._ledger import llm_calls, round_trips, servers, subprocesses

    tables = []
    trips = round_trips(trace)
    if trips:
        columns = [
            _Col("caller", 3, name=True),
            _Col("endpoint", name=True),
            _Col("server", 4, name=True),
            _Col("calls"),
            _Col("total", 1),
            _Col("median", 2),
            _Col("up", 5),
            _Col("down", 5),
            _Col("ser.", 8),
            _Col("deser.", 8),
            _Col("new conn", 6),
            _Col("connect", 7),
            _Col("errors", 6),
        ]
        rows = [
            [
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
            ]
            for r in trips
        ]
        tables.append(_fitted("HTTP round-trips", width, columns, rows))
    server = servers(trace)
    if server:
        columns = [
            _Col("service", 3, name=True),
            _Col("route", name=True),
            _Col("requests"),
            _Col("total", 1),
            _Col("LLM", 2),
            _Col("overhead", 2),
            _Col("deser.", 7),
            _Col("prompt", 6),
            _Col("parse", 7),
            _Col("db", 6),
            _Col("ser.", 7),
        ]
        rows = [
            [
                r["service"],
                r["route"],
                str(r["requests"]),
                *(
                    _ms(r[key] * 1e6)
                    for key in (
                        "total_ms",
                        "llm_ms",
                        "overhead_ms",
                        "deserialize_ms",
                        "prompt_ms",
                        "parse_ms",
                        "db_ms",
                        "serialize_ms",
                    )
                ),
            ]
            for r in server
        ]
        tables.append(_fitted("server side", width, columns, rows))
    llm = llm_calls(trace)
    if llm:
        columns = [
            _Col("service", 3, name=True),
            _Col("model", name=True),
            _Col("calls"),
            _Col("total", 1),
            _Col("tokens in", 4),
            _Col("tokens out", 4),
            _Col("first token", 5),
        ]
        rows = [
            [
                r["service"],
                r["model"],
                str(r["calls"]),
                _ms(r["total_ms"] * 1e6),
                str(r["input_tokens"]),
                str(r["output_tokens"]),
                _ms(r["median_ttft_ms"] * 1e6) if r["median_ttft_ms"] is not None else "",
            ]
            for r in llm
        ]
        tables.append(_fitted("LLM calls", width, columns, rows))
    procs = [r for r in subprocesses(trace) if r["count"] > 1 or r["python"]]
    if procs:
        columns = [
            _Col("service", name=True),
            _Col("count"),
            _Col("busy", 1),
            _Col("at once", 2),
            _Col("start-up (median)", 3),
            _Col("start-up (total)", 4),
        ]
        rows = [
            [
                r["service"],
                str(r["count"]),
                _ms(r["busy_ms"] * 1e6),
                str(r["max_concurrent"]),
                _ms(r["median_startup_ms"] * 1e6) if r["median_startup_ms"] is not None else "",
                _ms(r["total_startup_ms"] * 1e6) if r["python"] else "",
            ]
            for r in procs
        ]
        tables.append(_fitted("processes by service", width, columns, rows))
    return tables


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1048576:.1f} MiB"


def _critical(root: Span, colours: dict[str, str], width: int) -> Table:
    path = critical_path(root)
    total = max(1, root.duration_ns)
    on_path: dict[str, list[Any]] = {}  # one row per span: a span the path leaves and re-enters sums its segments
    for span, ns in path:
        on_path.setdefault(span.span_id, [span, 0])[1] += ns
    rows = [
        [span.name, Text(span.service, style=colours.get(span.service, "")), _ms(ns), f"{100 * ns / total:.1f}%"]
        for span, ns in on_path.values()
        if ns * 200 >= total  # under 0.5 %: noise in this view
    ]
    columns = [_Col("span", name=True), _Col("service", 3, name=True), _Col("on path"), _Col("share", 1)]
    return _fitted("critical path", width, columns, rows)


def _top(trace: Trace, colours: dict[str, str], top: int, width: int, profiles: Sequence[ProcessProfile] = ()) -> Table:
    spans = top_self_time(trace, top)
    rows: list[list[Any]] = [
        [span.name, Text(span.service, style=colours.get(span.service, "")), _ms(ns), _ms(span.duration_ns)]
        for span, ns in spans
    ]
    columns = [_Col("span", name=True), _Col("service", 3, name=True), _Col("self"), _Col("total", 1)]
    if profiles:
        for row, (span, _ns) in zip(rows, spans, strict=True):
            found = hottest(profiles, {span.span_id})
            row.append(", ".join(f"{name.split(' (', 1)[0]} {n}" for name, n in found))
        columns.append(_Col("hottest functions (cpu samples)", 2, name=True))
    return _fitted("top self time", width, columns, rows)


# ------------------------------------------------------------ fitting a table


class _Col:
    """A column: numbers are never cut (a column that does not fit is left out,
    the least important first); names shrink, with an ellipsis."""

    __slots__ = ("header", "justify", "least", "name", "priority")

    def __init__(self, header: str, priority: int = 0, *, name: bool = False, least: int = 12) -> None:
        self.header = header
        self.priority = priority  # 0: always shown; higher: left out sooner
        self.name = name
        self.least = least  # a name column is never narrower (columns are left out first)
        self.justify = "left" if name else "right"


_NAME_MAX = 60


def _fitted(title: str, width: int, columns: list[_Col], rows: list[list[Any]]) -> Table:
    """A table that fits ``width`` columns: number columns at their full
    width, left out by priority when they do not fit; name columns share what
    is left (never less than each one's ``least``)."""
    widths = [max([len(c.header)] + [_cell_len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    shown = list(range(len(columns)))

    def needed() -> int:
        fixed = sum(widths[i] for i in shown if not columns[i].name)
        names = sum(min(widths[i], columns[i].least) for i in shown if columns[i].name)
        return fixed + names + 2 * (len(shown) - 1)

    while needed() > width:
        droppable = [i for i in shown if columns[i].priority > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].priority, i)))
    room = width - sum(widths[i] for i in shown if not columns[i].name) - 2 * (len(shown) - 1)
    names = [i for i in shown if columns[i].name]
    limits = {i: min(widths[i], _NAME_MAX) for i in names}
    while sum(limits.values()) > room and any(limits[i] > columns[i].least for i in names):
        widest = max((i for i in names if limits[i] > columns[i].least), key=lambda i: limits[i])
        limits[widest] -= 1
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for i in shown:
        column = columns[i]
        if column.name:
            table.add_column(column.header, no_wrap=True, overflow="ellipsis", max_width=max(1, limits[i]))
        else:
            table.add_column(column.header, justify="right", no_wrap=True, min_width=widths[i])
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    left_out = [columns[i].header for i in range(len(columns)) if i not in shown]
    if left_out:
        table.caption = f"(left out at {width} columns: {', '.join(left_out)})"
        table.caption_justify = "left"
        table.caption_style = "dim"
    return table


def _cell_len(cell: Any) -> int:
    from rich.cells import cell_len

    return cell_len(cell.plain if isinstance(cell, Text) else str(cell))


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
