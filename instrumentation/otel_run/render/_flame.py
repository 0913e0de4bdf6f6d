"""Flame graph outputs of labelled stacks (root first): folded, speedscope, html, top table."""

from __future__ import annotations

import html as _html
import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

Stacks = Sequence[tuple[tuple[str, ...], int]]
_Node = list[Any]  # [name index, value, {label: child}]


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
    """A self-contained flame graph page: no network, no external resource.

    The root is at the top (an icicle; a checkbox puts it at the bottom), each
    frame a ``div.frame`` whose text is its label, as wide as its value, its
    children below it sorted by name. Hover tells value, % of the total and
    self value; a click zooms into a frame (its ancestors stay, full width, to
    zoom back out; Esc resets); the search box highlights matching frames and
    says what share of the samples they hold; ``page.html#search=TEXT`` opens
    it with TEXT searched (for a link, or a screenshot by a headless browser).
    Colours are by package: the folder of the frame's ``(folder/file.py)``.

    The tree travels as JSON in a ``<script type="application/json">`` (every
    ``<`` written ``\\u003c``, so no label can close it) and the page's script
    sets the labels as text, never as markup. It is a flat pre-order list of
    ``name index, value, depth`` triples, so that neither this function nor
    the page recurses over a deep stack to read it.
    """
    root: _Node = [0, 0, {}]
    names: dict[str, int] = {"all": 0}
    for stack, value in _summed(stacks).items():
        node = root
        node[1] += value
        for frame in stack:
            child = node[2].get(frame)
            if child is None:
                child = node[2][frame] = [names.setdefault(frame, len(names)), 0, {}]
            child[1] += value
            node = child
    flat: list[int] = []
    todo: list[tuple[_Node, int]] = [(root, 0)]
    while todo:
        node, depth = todo.pop()
        flat += (node[0], node[1], depth)
        todo += ((node[2][k], depth + 1) for k in sorted(node[2], reverse=True))
    data = {"title": title, "unit": unit, "names": list(names), "nodes": flat}
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    fill = {"__TITLE__": _html.escape(title), "__DATA__": text}
    return re.sub("__TITLE__|__DATA__", lambda m: fill[m.group()], _PAGE)  # one pass: no value is read as a slot


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


_PAGE = r"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:12px system-ui,sans-serif;margin:8px 12px;color:#222;background:#fff}
header{display:flex;gap:14px;align-items:center;flex-wrap:wrap}#info{margin:4px 0 6px}
h1{font-size:15px;margin:0}#info,#match{color:#555}
input,button{font:inherit}#q{width:18em;padding:2px 4px}
#g{position:relative;overflow:hidden;min-height:17px}
.frame{position:absolute;height:17px;line-height:16px;padding-left:3px;box-sizing:border-box;overflow:hidden;
white-space:nowrap;border:solid #fff;border-width:0 1px 1px 0;cursor:pointer;font:11px ui-monospace,monospace}
.frame:hover{outline:1px solid #222;z-index:1}.frame.anc{opacity:.55}
.frame.hit{background:#e0005a!important;color:#fff;font-weight:bold}
#tip{position:fixed;display:none;pointer-events:none;z-index:2;max-width:70ch;padding:4px 7px;white-space:pre-wrap;
background:#fffbe8;border:1px solid #aaa;box-shadow:0 1px 4px #0003;font:11px ui-monospace,monospace}
</style></head><body>
<header><h1>__TITLE__</h1><input id="q" type="search" placeholder="search frames" aria-label="search frames">
<span id="match"></span><label><input id="flip" type="checkbox"> root at bottom</label>
<button id="reset" hidden>reset zoom</button></header><div id="info"></div><div id="g"></div><div id="tip"></div>
<script id="flame-data" type="application/json">__DATA__</script>
<script>
(()=>{
const $=i=>document.getElementById(i),D=JSON.parse($('flame-data').textContent),H=17,U=D.unit;
const g=$('g'),tip=$('tip'),q=$('q');
const stack=[];let root=null;
for(let i=0;i<D.nodes.length;i+=3){const d=D.nodes[i+2],p=d?stack[d-1]:null;
const n={n:D.names[D.nodes[i]],v:D.nodes[i+1],d:d,p:p,c:[]};if(p)p.c.push(n);else root=n;stack[d]=n;}
const total=root.v;let zoom=root,shown=[];
function fmt(v){if(U==='bytes'){for(const[u,s]of[['GiB',1<<30],['MiB',1<<20],['KiB',1<<10]])if(v>=s)
return(v/s).toFixed(1)+' '+u;return v+' B'}return v.toLocaleString('en')+' '+U}
function pct(v,t){const p=t?100*v/t:0;return t?p.toFixed(p&&p<1?2:1)+'%':'-'}
function pkg(name){const m=/\(([^()]*)\)$/.exec(name);if(!m)return'';
const i=m[1].lastIndexOf('/');return i>0?m[1].slice(0,i):m[1]}
const hues=new Map();
function colour(n){if(n.d<2)return'hsl(30,8%,82%)';const k=pkg(n.n);if(!k)return'hsl(30,8%,88%)';
if(!hues.has(k)){let h=7;for(const ch of k)h=(h*31+ch.charCodeAt(0))>>>0;
hues.set(k,'hsl('+h%360+','+(50+h%25)+'%,'+(70+(h>>>9)%12)+'%)')}return hues.get(k)}
function draw(){
g.textContent='';shown=[];tip.style.display='none';
if(!total){g.textContent='no samples';return}
const W=g.clientWidth||1200,flip=$('flip').checked,out=[];let deep=zoom.d;
for(let a=zoom.p;a;a=a.p)out.push([a,0,1,' anc']);
(function walk(n,x,w){if(w*W<0.4)return;out.push([n,x,w,'']);if(n.d>deep)deep=n.d;
let cx=x;for(const c of n.c){const cw=w*c.v/n.v;walk(c,cx,cw);cx+=cw}})(zoom,0,1);
g.style.height=(deep+1)*H+'px';const frag=document.createDocumentFragment();
for(const[n,x,w,cls]of out){const e=document.createElement('div');e.className='frame'+cls;
e.style.left=100*x+'%';e.style.width=100*w+'%';e.style.top=(flip?deep-n.d:n.d)*H+'px';
e.style.background=colour(n);e.textContent=n.n;e.dataset.i=shown.length;shown.push(n);frag.appendChild(e)}
g.appendChild(frag);$('reset').hidden=zoom===root;
$('info').textContent=fmt(total)+(zoom===root?' · click a frame to zoom, Esc to reset · colour by package':
' · zoomed into '+zoom.n+' ('+pct(zoom.v,total)+')');search()}
function search(){const s=q.value.trim().toLowerCase(),hit=n=>s&&n.n.toLowerCase().includes(s);
for(const e of g.children)e.classList.toggle('hit',!!hit(shown[e.dataset.i]));
if(!s){$('match').textContent='';return}let v=0;const todo=[zoom];
while(todo.length){const n=todo.pop();if(hit(n))v+=n.v;else for(const c of n.c)todo.push(c)}
$('match').textContent='matched '+fmt(v)+' ('+pct(v,zoom.v)+')'}
function frame(ev){const e=ev.target.closest&&ev.target.closest('.frame');return e?shown[e.dataset.i]:null}
g.addEventListener('mousemove',ev=>{const n=frame(ev);if(!n){tip.style.display='none';return}
const self=n.v-n.c.reduce((s,c)=>s+c.v,0);
tip.textContent=n.n+'\n'+fmt(n.v)+' · '+pct(n.v,total)+' of total'+(zoom===root?'':' · '+pct(n.v,zoom.v)+' of zoom')+
'\nself '+fmt(self)+' ('+pct(self,total)+')'+(pkg(n.n)?' · package '+pkg(n.n):'');
tip.style.display='block';const r=tip.getBoundingClientRect();
tip.style.left=Math.max(0,Math.min(ev.clientX+12,innerWidth-r.width-4))+'px';
tip.style.top=(ev.clientY+16+r.height>innerHeight?ev.clientY-r.height-8:ev.clientY+16)+'px'});
g.addEventListener('mouseleave',()=>{tip.style.display='none'});
g.addEventListener('click',ev=>{const n=frame(ev);if(n){zoom=n;draw()}});
$('reset').onclick=()=>{zoom=root;draw()};$('flip').onchange=draw;q.oninput=search;
addEventListener('keydown',ev=>{if(ev.key==='Escape'){zoom=root;q.value='';draw()}});
let pending=0;addEventListener('resize',()=>{cancelAnimationFrame(pending);pending=requestAnimationFrame(draw)});
const preset=new URLSearchParams(location.hash.slice(1)).get('search');if(preset)q.value=preset;
draw()})();
</script></body></html>
"""
