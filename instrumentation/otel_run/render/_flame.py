"""Flame graph outputs of labelled stacks (root first): folded, speedscope, html, top table."""

from __future__ import annotations

import html as _html
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

Stacks = Sequence[tuple[tuple[str, ...], int]]


class FunctionRow(NamedTuple):
    label: str
    self_value: int
    total_value: int


def _summed(stacks: Stacks) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for stack, value in stacks:
        if value > 0 and stack:
            key = tuple(f.replace(";", ":").replace("\n", " ") for f in stack)
            out[key] = out.get(key, 0) + value
    return out


def collapsed(stacks: Stacks) -> str:
    """Brendan Gregg's folded format: ``frame;frame COUNT`` per line, root first
    (``;`` in a label becomes ``:``)."""
    return "".join(f"{';'.join(k)} {v}\n" for k, v in sorted(_summed(stacks).items()))


def speedscope(stacks: Stacks, name: str, unit: str) -> dict[str, Any]:
    frames: dict[str, int] = {}
    samples, weights = [], []
    for stack, value in sorted(_summed(stacks).items()):
        samples.append([frames.setdefault(f, len(frames)) for f in stack])
        weights.append(value)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": f} for f in frames]},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "bytes" if unit == "bytes" else "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": name,
        "exporter": "otel-run",
    }


def flame_html(stacks: Stacks, title: str, unit: str) -> str:
    tree: dict[str, Any] = {"n": "all", "v": 0, "c": {}}
    for stack, value in _summed(stacks).items():
        node = tree
        node["v"] += value
        for frame in stack:
            node = node["c"].setdefault(frame, {"n": frame, "v": 0, "c": {}})
            node["v"] += value

    def pack(node: dict[str, Any]) -> list[Any]:
        return [node["n"], node["v"], [pack(c) for c in node["c"].values()]]

    data = json.dumps(pack(tree)).replace("<", "\\u003c")
    return (
        _PAGE.replace("__TITLE__", _html.escape(title))
        .replace("__UNIT__", _html.escape(unit))
        .replace("__DATA__", data)
    )


def top_functions(stacks: Stacks, limit: int = 20) -> list[FunctionRow]:
    selfs: dict[str, int] = {}
    totals: dict[str, int] = {}
    for stack, value in _summed(stacks).items():
        selfs[stack[-1]] = selfs.get(stack[-1], 0) + value
        for frame in set(stack[1:]):
            totals[frame] = totals.get(frame, 0) + value
    rows = [FunctionRow(k, selfs.get(k, 0), v) for k, v in totals.items()]
    rows.sort(key=lambda r: (-r.self_value, -r.total_value, r.label))
    return rows[:limit]


def top_text(rows: Sequence[FunctionRow], unit: str, total: int, width: int | None = None) -> str:
    width = width or 80
    fmt = _bytes if unit == "bytes" else str
    lines = [f"{'self':>9} {'self%':>6} {'total':>9} {'total%':>6}  function"]
    room = max(10, width - 35)
    for row in rows:
        label = row.label if len(row.label) <= room else row.label[: room // 2 - 1] + "…" + row.label[-(room // 2) :]
        lines.append(
            f"{fmt(row.self_value):>9} {_pct(row.self_value, total):>6} {fmt(row.total_value):>9} "
            f"{_pct(row.total_value, total):>6}  {label}"
        )
    lines.append(f"total: {fmt(total)} {unit if unit != 'bytes' else ''}".rstrip())
    return "\n".join(lines) + "\n"


def _pct(value: int, total: int) -> str:
    return f"{100 * value / total:5.1f}%" if total else "   -  "


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>body{font:12px sans-serif;margin:8px}.f{position:absolute;height:17px;overflow:hidden;white-space:nowrap;
box-sizing:border-box;border:1px solid #fff;background:#e8743b;cursor:pointer;padding-left:2px}
#g{position:relative}</style>
</head><body><h3>__TITLE__ (__UNIT__)</h3><div id="g"></div><script>
const data=__DATA__;const g=document.getElementById('g');
function draw(root){g.innerHTML='';let depth=0;const W=g.clientWidth||1200;
function walk(n,x,w,d){if(w<1&&d>0)return;depth=Math.max(depth,d);const e=document.createElement('div');e.className='f';
e.style.left=x+'px';e.style.width=w+'px';e.style.top=(d*18)+'px';e.textContent=n[0];
e.title=n[0]+' — '+n[1]+' __UNIT__ ('+(100*n[1]/root[1]).toFixed(1)+'%)';e.onclick=()=>draw(n);g.appendChild(e);
let cx=x;for(const c of n[2]){const cw=w*c[1]/n[1];walk(c,cx,cw,d+1);cx+=cw;}}
walk(root,0,W,0);g.style.height=((depth+1)*18)+'px';}
draw(data);</script></body></html>
"""
