"""span-diff's outputs: plain data (JSON), Markdown for a PR comment, a rich
terminal table, and a self-contained HTML page.

Every format shows the same things in the same order: the two sides, the root's
change, the rows (root first, then by impact on the root's wall time), the
structural changes, how the critical path changed, and the warnings.
Insignificant changes read ``~``, as in benchstat.
"""

from __future__ import annotations

import html
import math
from typing import Any

from otel_run.analyse._diff import DiffResult, Row
from otel_run.analyse._functions import ALLOCATED
from otel_run.analyse._paths import ROOT, SEP, SHOWN_SEP

TEST = "Mann-Whitney U (two-sided; exact without ties), Hodges-Lehmann 95% CI of the shift"
PAIRED_TEST = (
    "Wilcoxon signed-rank of run i before vs run i after (two-sided; exact without ties or zeros), "
    "Hodges-Lehmann 95% CI of the paired shift"
)

# What the report calls its rows and columns, by DiffResult.subject.
_WORDS = {
    "path": {
        "row": "path",
        "root": "Wall time (root)",
        "count": "count",
        "impact": "impact on root",
        "note": "Impact: change of the path's median time on the critical path.",
    },
    "function": {
        "row": "function",
        "root": "CPU time (all functions)",
        "count": "samples",
        "impact": "Δ self time",
        "note": "Self time: CPU samples whose innermost frame is the function (idle left out), every process; "
        "a run without one counts 0.",
    },
}


def _words(result: DiffResult) -> dict[str, str]:
    return _WORDS[result.subject]


# ------------------------------------------------------------------- data


def to_data(result: DiffResult, top: int | None) -> dict[str, Any]:
    """The result as JSON-ready data; ``rows`` holds the top ``top`` rows (all when None)."""
    rows = _chosen(result, top)
    structural = result.structural()
    changes = result.critical_path_changes()
    return {
        "subject": result.subject,
        "before": result.sides.get("before", {}),
        "after": result.sides.get("after", {}),
        "alpha": result.alpha,
        "test": _test(result).replace("95%", f"{(1 - result.alpha) * 100:g}%"),
        "paired": result.paired,
        "root": _row_data(result.root) if result.root else None,
        "rows": [_row_data(r) for r in rows],
        "rows_total": len(result.rows),
        "structural": {
            "added": [_path(r.path) for r in structural["added"]],
            "removed": [_path(r.path) for r in structural["removed"]],
            "count_changed": [
                {"path": _path(r.path), "count_before": r.before["count"], "count_after": r.after["count"]}
                for r in structural["count_changed"]
            ],
            "bytes_changed": [
                {"path": _path(r.path), "bytes_before": r.before["bytes"], "bytes_after": r.after["bytes"]}
                for r in structural["bytes_changed"]
            ],
        },
        "critical_path": {
            "before": [_path(p) for p in result.critical_before],
            "after": [_path(p) for p in result.critical_after],
            "joined": [_path(p) for p in changes["joined"]],
            "left": [_path(p) for p in changes["left"]],
        },
        "warnings": list(result.warnings),
    }


def _row_data(row: Row) -> dict[str, Any]:
    before_ms = row.before_ms
    return {
        "path": _path(row.path),
        "name": _leaf(row.path),
        "depth": row.depth,
        "before_median_ms": _num(before_ms),
        "after_median_ms": _num(row.after_ms),
        "change_ms": _num(row.change_ms),
        "change_pct": _num(row.change_pct),
        "ci_low_ms": _num(row.ci_low_ms),
        "ci_high_ms": _num(row.ci_high_ms),
        "ci_low_pct": _num(_pct_of(row.ci_low_ms, before_ms)) if before_ms else None,
        "ci_high_pct": _num(_pct_of(row.ci_high_ms, before_ms)) if before_ms else None,
        "p_value": _num(row.p_value),
        "significant": row.significant,
        "only_in": row.only_in,
        "count_before": row.before["count"],
        "count_after": row.after["count"],
        "self_before_median_ms": _num(row.before["self_ms"]),
        "self_after_median_ms": _num(row.after["self_ms"]),
        "bytes_before": row.before["bytes"],
        "bytes_after": row.after["bytes"],
        "critical_before_ms": _num(row.critical_before_ms),
        "critical_after_ms": _num(row.critical_after_ms),
        "impact_ms": _num(row.impact_ms),
        "runs_with_before": int(row.before["runs_with"]),
        "runs_with_after": int(row.after["runs_with"]),
        "metrics": row.metrics,
    }


# --------------------------------------------------------------- markdown


def to_markdown(result: DiffResult, top: int | None) -> str:
    """A GitHub-flavoured Markdown report (fits a PR comment)."""
    b, a = result.sides["before"], result.sides["after"]
    words = _words(result)
    out = [f"### span-diff: `{b['name']}` ({_runs(b['runs'])}) → `{a['name']}` ({_runs(a['runs'])})", ""]
    root = result.root
    if root is not None:
        out.append(f"**{words['root']}:** {_ms(root.before_ms)} → {_ms(root.after_ms)}, {_change_md(root)}")
        out.append("")
    rows = _chosen(result, top)
    metrics = result.metrics
    header = [words["row"], words["count"], "before", "after", "change", "95% CI", "p", words["impact"], *metrics]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for row in rows:
        cells = [
            _md_path(row),
            _count(row),
            _ms(row.before_ms),
            _ms(row.after_ms),
            _change_md(row, short=True),
            _ci(row),
            _p(row.p_value),
            _signed_ms(row.impact_ms),
            *(_metric(row, m) for m in metrics),
        ]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    hidden = len(result.rows) - len(rows)
    if hidden > 0:
        out.append("")
        out.append(f"{hidden} more {words['row']}(s) not shown (`--all` shows every {words['row']}).")
    out.extend(_structural_md(result))
    out.append("")
    for warning in result.warnings:
        out.append(f"> ⚠️ {warning}")
    if result.warnings:
        out.append("")
    out.append(
        f"<sub>{_test(result)}; α = {result.alpha:g}; `~`: no significant change. {words['note']} "
        "Made with `span-diff`.</sub>"
    )
    return "\n".join(out) + "\n"


def _structural_md(result: DiffResult) -> list[str]:
    s = result.structural()
    changes = result.critical_path_changes()
    out: list[str] = []
    if not any(s.values()) and not any(changes.values()):
        return out
    unit = " samples" if result.subject == "function" else ""
    out += ["", "**Structure**", ""]
    for row in s["added"]:
        out.append(f"- added: `{_path(row.path)}` ×{_n(row.after['count'])}{unit}, {_ms(row.after_ms)}")
    for row in s["removed"]:
        out.append(f"- removed: `{_path(row.path)}` ×{_n(row.before['count'])}{unit}, {_ms(row.before_ms)}")
    for row in s["count_changed"]:
        out.append(f"- count: `{_path(row.path)}` {_n(row.before['count'])} → {_n(row.after['count'])}")
    for row in s["bytes_changed"]:
        out.append(f"- bytes: `{_path(row.path)}` {_bytes(row.before['bytes'])} → {_bytes(row.after['bytes'])}")
    for path in changes["joined"]:
        out.append(f"- joined the critical path: `{_path(path)}`")
    for path in changes["left"]:
        out.append(f"- left the critical path: `{_path(path)}`")
    return out


# --------------------------------------------------------------- terminal


def to_console(result: DiffResult, top: int | None, console: Any) -> None:
    """Print a rich report to ``console``."""
    from rich.table import Table
    from rich.text import Text

    b, a = result.sides["before"], result.sides["after"]
    words = _words(result)
    head = Text()
    head.append("span-diff ", style="bold")
    head.append(
        f"{b['name']} ({b['runs']} runs, {b['spans']} spans) → {a['name']} ({a['runs']} runs, {a['spans']} spans)"
    )
    console.print(head)
    root = result.root
    if root is not None:
        line = Text(f"{words['root'].lower()}: {_ms(root.before_ms)} → {_ms(root.after_ms)}  ")
        line.append(_change_text(root), style=_style(root))
        console.print(line)
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for name, justify in (
        (words["row"], "left"),
        (words["count"], "right"),
        ("before", "right"),
        ("after", "right"),
        ("change", "right"),
        ("95% CI", "right"),
        ("p", "right"),
        (words["impact"].removesuffix(" on root"), "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold" if name == words["row"] else "ellipsis")  # type: ignore[arg-type]
    for m in result.metrics:
        table.add_column(m, justify="right")
    for row in _chosen(result, top):
        table.add_row(
            Text(_short_path(row.path), style="bold" if row.path == ROOT else ""),
            _count(row),
            _ms(row.before_ms),
            _ms(row.after_ms),
            Text(_change_text(row, short=True), style=_style(row)),
            _ci(row),
            _p(row.p_value),
            _signed_ms(row.impact_ms),
            *(_metric(row, m) for m in result.metrics),
        )
    console.print(table)
    hidden = len(result.rows) - len(_chosen(result, top))
    if hidden > 0:
        console.print(Text(f"{hidden} more {words['row']}(s) not shown (--all)", style="dim"))
    for note in _structural_md(result)[3:]:
        console.print(Text(note.replace("`", "")))  # Text: "[service]" in a path is not markup
    for warning in result.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    console.print(Text(f"{_test(result)}; alpha {result.alpha:g}; ~ no significant change", style="dim"))


# -------------------------------------------------------------------- html


def to_html(result: DiffResult, top: int | None) -> str:
    """A self-contained HTML page (no scripts, no external resources)."""
    b, a = result.sides["before"], result.sides["after"]
    root = result.root
    rows = _chosen(result, top)
    peak = max((abs(r.impact_ms) for r in rows if r.path != ROOT), default=0.0) or 1.0
    e = html.escape
    words = _words(result)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>span-diff {e(b['name'])} → {e(a['name'])}</title>",
        "<style>",
        "body{font:14px system-ui,sans-serif;margin:2em;color:#222}",
        "table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:right}",
        "td.path,th.path{text-align:left;font-family:ui-monospace,monospace;font-size:12px;max-width:60em}",
        ".slower{color:#b00020;font-weight:600}.faster{color:#1b7f3b;font-weight:600}.same{color:#888}",
        ".bar{display:inline-block;height:9px;vertical-align:middle}.bar.up{background:#e57373}",
        ".bar.down{background:#81c784}.warn{color:#8a6d00}small{color:#666}",
        "</style></head><body>",
        f"<h2>span-diff: {e(b['name'])} ({b['runs']} runs) → {e(a['name'])} ({a['runs']} runs)</h2>",
    ]
    if root is not None:
        parts.append(
            f"<p>{e(words['root'])}: {_ms(root.before_ms)} → {_ms(root.after_ms)}, "
            f"<span class='{_css(root)}'>{e(_change_text(root))}</span></p>"
        )
    header = [words["row"], words["count"], "before", "after", "change", "95% CI", "p", words["impact"]]
    header += result.metrics
    parts.append(
        "<table><tr>"
        + "".join(f"<th class='{'path' if i == 0 else ''}'>{e(h)}</th>" for i, h in enumerate(header))
        + "</tr>"
    )
    indent = "&nbsp;" * 2
    for row in rows:
        width = int(abs(row.impact_ms) / peak * 80) if row.path != ROOT else 0
        bar = (
            f"<span class='bar {'up' if row.impact_ms > 0 else 'down'}' style='width:{width}px'></span> "
            if width
            else ""
        )
        cells = [
            f"<td class='path' title='{e(_path(row.path))}'>{indent * min(row.depth, 12)}{e(_leaf(row.path))}</td>",
            f"<td>{e(_count(row))}</td>",
            f"<td>{_ms(row.before_ms)}</td>",
            f"<td>{_ms(row.after_ms)}</td>",
            f"<td class='{_css(row)}'>{e(_change_text(row, short=True))}</td>",
            f"<td>{e(_ci(row))}</td>",
            f"<td>{_p(row.p_value)}</td>",
            f"<td>{bar}{_signed_ms(row.impact_ms)}</td>",
            *(f"<td>{e(_metric(row, m))}</td>" for m in result.metrics),
        ]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    structural = _structural_md(result)
    if structural:
        parts.append("<h3>Structure</h3><ul>")
        parts += [f"<li>{e(line[2:].replace('`', ''))}</li>" for line in structural[3:]]
        parts.append("</ul>")
    for warning in result.warnings:
        parts.append(f"<p class='warn'>⚠ {e(warning)}</p>")
    parts.append(
        f"<p><small>{e(_test(result))}; α = {result.alpha:g}; ~: no significant change. {e(words['note'])}</small></p>"
        "</body></html>"
    )
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------ private


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _chosen(result: DiffResult, top: int | None) -> list[Row]:
    return result.rows if top is None else result.rows[: top + 1]  # the root and the top N


def _path(key: str) -> str:
    return key.replace(SEP, SHOWN_SEP)


def _leaf(key: str) -> str:
    return key.rsplit(SEP, 1)[-1]


def _short_path(key: str) -> str:
    parts = key.split(SEP)
    if len(parts) <= 3:
        return SHOWN_SEP.join(parts)
    return "… > " + SHOWN_SEP.join(parts[-2:])


def _md_path(row: Row) -> str:
    short = _short_path(row.path)
    return (
        f"`{short}`" if short == _path(row.path) else f'<span title="{html.escape(_path(row.path))}">`{short}`</span>'
    )


def _change_text(row: Row, short: bool = False) -> str:
    if not row.significant:
        return "~" if short else f"~ (p={_p(row.p_value)})"
    pct = row.change_pct
    if pct is None:
        return "new" if row.only_in == "after" else _signed_ms(row.change_ms)
    return f"{pct:+.1f}%" if short else f"{pct:+.1f}% (p={_p(row.p_value)})"


def _change_md(row: Row, short: bool = False) -> str:
    text = _change_text(row, short)
    return f"**{text}**" if row.significant else text


def _ci(row: Row) -> str:
    base = row.before_ms
    lo, hi = row.ci_low_ms, row.ci_high_ms
    if math.isinf(lo) or math.isinf(hi):
        return "n/a"
    if not base:
        return f"{_signed_ms(lo)} … {_signed_ms(hi)}"
    return f"{_pct_of(lo, base):+.1f}% … {_pct_of(hi, base):+.1f}%"


def _pct_of(shift_ms: float, base_ms: float) -> float:
    """A shift as a percentage of the before median; a time cannot fall below zero."""
    return max(-100.0, shift_ms / base_ms * 100)


def _count(row: Row) -> str:
    b, a = _n(row.before["count"]), _n(row.after["count"])
    return b if b == a else f"{b} → {a}"


def _metric(row: Row, name: str) -> str:
    m = row.metrics.get(name)
    if not m:
        return ""
    shown = _bytes if name == ALLOCATED else _n
    b, a = shown(m["before_median"]), shown(m["after_median"])
    if b == a:
        return b
    pct = m["change_pct"]
    mark = f" ({pct:+.0f}%)" if pct is not None and m["significant"] else " (~)" if not m["significant"] else ""
    return f"{b} → {a}{mark}"


def _style(row: Row) -> str:
    return "" if not row.significant else ("bold red" if row.change_ms > 0 else "bold green")


def _css(row: Row) -> str:
    return "same" if not row.significant else ("slower" if row.change_ms > 0 else "faster")


def _n(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.3f} s"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def _signed_ms(ms: float) -> str:
    if math.isinf(ms):
        return "n/a"
    sign = "+" if ms > 0 else "−" if ms < 0 else "±"
    return sign + _ms(abs(ms))


def _bytes(value: float) -> str:
    if value >= 1 << 20:
        return f"{value / (1 << 20):.1f} MiB"
    if value >= 1 << 10:
        return f"{value / (1 << 10):.1f} KiB"
    return f"{_n(value)} B"


def _num(value: float | None) -> float | None:
    if value is None or math.isinf(value) or math.isnan(value):
        return None
    return round(value, 6)


def _test(result: DiffResult) -> str:
    """The footnote's name of the test the result was made with."""
    return PAIRED_TEST if result.paired else TEST
