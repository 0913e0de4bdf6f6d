"""Synthetic traces with known truth, for span-diff's tests and benchmark.

A :class:`Node` describes one span of a tree: its name (may contain ``{id}``,
``{uuid}``, ``{tmp}``, ``{port}`` and ``{pid}`` placeholders, filled with fresh
random values in every run, as real run-specific names are), its own time and
noise, how many times it repeats under its parent, and its children. Children
run one after another, so a parent lasts its own time plus its children's.
:func:`trace_request` turns one run of a tree into an OTLP JSON request.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

T0 = 1_700_000_000_000_000_000


@dataclass
class Node:
    name: str
    self_ms: float = 1.0
    noise: float = 0.05
    """Relative standard deviation of the node's own time (normal, clipped at 0)."""
    count: int = 1
    service: str | None = None
    """The service (process) it runs in; inherited from the parent when None."""
    children: list[Node] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    kind: int = 1


def sized_tree(spans: int, *, seed: int = 0) -> Node:
    """A realistic tree of about ``spans`` spans: a CLI process calling an HTTP
    service many times, each call with client, server, database and serialization
    spans, the shape the codeflash vertical has."""
    calls = max(1, (spans - 3) // 10)
    request = Node(
        "aiservice POST /ai/optimize",
        self_ms=0.2,
        count=calls,
        kind=3,
        attributes={"codeflash.api.endpoint": "/ai/optimize", "http.request.body.size": 2048},
        children=[
            Node("serialize request", self_ms=0.05),
            Node(
                "POST",
                self_ms=0.3,
                kind=3,
                attributes={
                    "http.request.method": "POST",
                    "url.full": "http://localhost:{port}/ai/optimize",
                    "server.address": "localhost",
                    "http.response.status_code": 200,
                    "http.response.body.size": 4096,
                },
                children=[
                    Node("connect", self_ms=0.1),
                    Node(
                        "POST /ai/optimize",
                        service="backend",
                        self_ms=0.5,
                        kind=2,
                        attributes={"http.route": "/ai/optimize", "http.request.method": "POST"},
                        children=[
                            Node("prompt.assemble", self_ms=0.2),
                            Node(
                                "chat gpt-4.1",
                                self_ms=3.0,
                                kind=3,
                                attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 900},
                            ),
                            Node("SELECT backend_result", self_ms=0.05, attributes={"db.system.name": "sqlite"}),
                        ],
                    ),
                ],
            ),
            Node("deserialize response", self_ms=0.05),
        ],
    )
    return Node(
        "otel-run codeflash optimize foo.py",
        service="otel-run",
        self_ms=2.0,
        children=[
            Node(
                "codeflash optimize foo.py",
                service="codeflash",
                self_ms=20.0,
                attributes={"process.pid": "{pid}", "process.command_args": ["codeflash", "optimize", "{tmp}/foo.py"]},
                children=[request],
            )
        ],
    )


def count_spans(node: Node) -> int:
    return node.count * (1 + sum(count_spans(c) for c in node.children))


def runs(tree: Node, n: int, *, seed: int, scale: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """``n`` runs of ``tree``, one OTLP JSON request each. ``scale`` multiplies
    the own time of nodes by name (a slowdown of 1.2 is +20%)."""
    rng = random.Random(seed)
    return [trace_request(tree, rng, scale or {}, start_ns=T0 + i * 10**9) for i in range(n)]


def trace_request(tree: Node, rng: random.Random, scale: dict[str, float], start_ns: int = T0) -> dict[str, Any]:
    trace_id = rng.getrandbits(128).to_bytes(16, "big").hex()
    by_service: dict[str, list[dict[str, Any]]] = {}
    _emit(tree, rng, scale, trace_id, None, start_ns, tree.service or "app", by_service)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", service)]},
                "scopeSpans": [{"scope": {"name": "synth"}, "spans": spans}],
            }
            for service, spans in by_service.items()
        ]
    }


def write_runs(directory: Path, requests: Sequence[dict[str, Any]]) -> list[Path]:
    """One file per run, ``<n>.json``, as ``otel-trace export`` writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, request in enumerate(requests):
        path = directory / f"{i:03d}.json"
        path.write_text(json.dumps(request, separators=(",", ":")))
        paths.append(path)
    return paths


# ------------------------------------------------------------------ private


def _emit(
    node: Node,
    rng: random.Random,
    scale: dict[str, float],
    trace_id: str,
    parent_id: str | None,
    start_ns: int,
    service: str,
    out: dict[str, list[dict[str, Any]]],
) -> int:
    """Emit ``node`` (all its repetitions) from ``start_ns``; returns the end."""
    service = node.service or service
    cursor = start_ns
    for _ in range(node.count):
        span_id = rng.getrandbits(64).to_bytes(8, "big").hex()
        own = max(0.0, rng.gauss(node.self_ms, node.self_ms * node.noise)) * scale.get(node.name, 1.0)
        begin = cursor
        child_cursor = begin + int(own * 1e6 / 2)  # half the own time before the children, half after
        for child in node.children:
            child_cursor = _emit(child, rng, scale, trace_id, span_id, child_cursor, service, out)
        end = child_cursor + int(own * 1e6 / 2)
        span: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": _fill(node.name, rng),
            "kind": node.kind,
            "startTimeUnixNano": str(begin),
            "endTimeUnixNano": str(end),
            "attributes": [_attr(k, _fill_value(v, rng)) for k, v in node.attributes.items()],
            "status": {},
        }
        if parent_id is not None:
            span["parentSpanId"] = parent_id
        out.setdefault(service, []).append(span)
        cursor = end
    return cursor


def _fill(text: str, rng: random.Random) -> str:
    if "{" not in text:
        return text
    return (
        text.replace("{id}", rng.getrandbits(64).to_bytes(8, "big").hex())
        .replace("{uuid}", str(uuid.UUID(int=rng.getrandbits(128))))
        .replace("{tmp}", f"/tmp/tmp{rng.getrandbits(40):x}")
        .replace("{port}", str(rng.randint(30000, 60000)))
        .replace("{pid}", str(rng.randint(1000, 99999)))
    )


def _fill_value(value: Any, rng: random.Random) -> Any:
    if isinstance(value, str):
        return _fill(value, rng)
    if isinstance(value, list):
        return [_fill_value(v, rng) for v in value]
    return value


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [_attr("", v)["value"] for v in value]}}}
    return {"key": key, "value": {"stringValue": str(value)}}


def iter_nodes(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from iter_nodes(child)


__all__ = ["Node", "count_spans", "iter_nodes", "runs", "sized_tree", "trace_request", "write_runs"]
