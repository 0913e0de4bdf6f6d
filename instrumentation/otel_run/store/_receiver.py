"""``otel-trace serve``: an OTLP/HTTP receiver that writes into the embedded store.

A service on another machine or in a container (the backend, a CI job) sends
its spans home without Docker or a collector: ``POST /v1/traces`` with OTLP
protobuf or JSON, optionally gzip- or deflate-compressed, optionally with a
bearer token. Each accepted batch is appended, one ``write(2)`` per trace, to
``traces/<trace_id>.jsonl`` before the answer is sent — so an accepted span
survives a restart — and a trace the store did not know gets an index entry
(label ``received``) so ``otel-trace list`` shows it.

Bad requests get 4xx answers and never stop the server: a body over
:data:`MAX_BODY` (413, from ``Content-Length`` alone), a decompressed body over
:data:`MAX_DECODED` (413: gzip bombs), an unknown content type or encoding
(415), a body that does not parse (400), a wrong token (401).
"""

from __future__ import annotations

import hmac
import os
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import time_ns
from typing import Any

from otel_run.store import _layout
from otel_run.store._jsonl import loads
from otel_run.store._merge import FormatError, decode_id, iter_batches

MAX_BODY = 32 * 1024 * 1024
"""Largest request body accepted (bytes on the wire)."""
MAX_DECODED = 128 * 1024 * 1024
"""Largest body after decompression."""
PATH = "/v1/traces"


class ReceiverError(Exception):
    """A request the receiver refuses: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Receiver:
    """Turns OTLP requests into store lines (no HTTP here: tests call it directly)."""

    def __init__(self, store: str, token: str | None = None) -> None:
        self.store = os.path.abspath(store)
        self.token = token
        self.accepted_spans = 0
        self._known: set[str] = set()
        self._lock = threading.Lock()
        os.makedirs(os.path.join(self.store, _layout.TRACES), exist_ok=True)

    def authorize(self, header: str | None) -> None:
        if self.token is None:
            return
        expected = f"Bearer {self.token}"
        if not header or not hmac.compare_digest(header.encode(), expected.encode()):
            raise ReceiverError(401, "missing or wrong bearer token")

    def accept(self, body: bytes, content_type: str, encoding: str) -> tuple[int, str]:
        """Decode, store; returns (spans stored, response content type)."""
        data = _decompress(body, encoding)
        kind = content_type.split(";", maxsplit=1)[0].strip().lower()
        if kind == "application/x-protobuf":
            request = _from_protobuf(data)
            answer = "application/x-protobuf"
        elif kind == "application/json":
            try:
                request = loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ReceiverError(400, f"body is not JSON ({exc})") from None
            answer = "application/json"
        else:
            raise ReceiverError(415, f"content type {content_type or '(none)'!r}: use application/x-protobuf or json")
        try:
            by_trace, count = _by_trace(request)  # the whole request is checked before anything is written
        except (FormatError, TypeError, ValueError, AttributeError) as exc:
            raise ReceiverError(400, f"not an OTLP trace request: {exc}") from None
        self._store(by_trace)
        self.accepted_spans += count
        return count, answer

    def _store(self, by_trace: dict[str, list[dict[str, Any]]]) -> None:
        import json

        for trace_id, batches in by_trace.items():
            path = _layout.trace_path(self.store, trace_id)
            line = json.dumps({"resourceSpans": batches}, separators=(",", ":")) + "\n"
            with self._lock:
                new = trace_id not in self._known and not os.path.exists(path)
                self._known.add(trace_id)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
            if new:
                self._index(trace_id, batches)

    def _index(self, trace_id: str, batches: list[dict[str, Any]]) -> None:
        spans = [s for b in batches for sc in b["scopeSpans"] for s in sc["spans"]]
        roots = [s for s in spans if not s.get("parentSpanId")]
        root = min(roots or spans, key=lambda s: int(s.get("startTimeUnixNano", 0)))
        service = next(
            (
                a.get("value", {}).get("stringValue")
                for b in batches
                for a in (b.get("resource") or {}).get("attributes") or []
                if a.get("key") == "service.name"
            ),
            "unknown_service",
        )
        run_id = root["spanId"]
        start = min(int(s.get("startTimeUnixNano", 0)) for s in spans)
        end = max(int(s.get("endTimeUnixNano", 0)) for s in spans)
        _layout.append_index(
            self.store,
            {
                "event": "start",
                "run_id": run_id,
                "trace_id": trace_id,
                "root_span_id": root["spanId"],
                "command": [f"{service}: {root.get('name', '')}"],
                "start_ns": start,
                "label": "received",
                "host": "",
            },
        )
        _layout.append_index(self.store, {"event": "end", "run_id": run_id, "end_ns": end or time_ns()})


def serve(
    store: str, host: str = "127.0.0.1", port: int = 4318, token: str | None = None, quiet: bool = False
) -> ThreadingHTTPServer:
    """An HTTP server for :class:`Receiver` (not yet serving: call ``serve_forever``)."""
    receiver = Receiver(store, token)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "otel-trace-serve"

        def do_POST(self) -> None:
            try:
                if self.path.split("?")[0] != PATH:
                    raise ReceiverError(404, f"no such endpoint {self.path!r}: OTLP traces go to {PATH}")
                receiver.authorize(self.headers.get("Authorization"))
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    raise ReceiverError(411, "Content-Length required")
                size = int(length)
                if size > MAX_BODY:
                    raise ReceiverError(413, f"body of {size} bytes is over the {MAX_BODY} limit")
                body = self.rfile.read(size)
                if len(body) < size:
                    raise ReceiverError(400, "body shorter than Content-Length")
                count, answer = receiver.accept(
                    body, self.headers.get("Content-Type", ""), self.headers.get("Content-Encoding", "")
                )
            except ReceiverError as exc:
                self._answer(exc.status, "application/json", ('{"message":%s}' % _quote(str(exc))).encode())
                if not quiet:
                    _log(f"otel-trace serve: {exc.status} {exc}")
                if exc.status in (411, 413):
                    self.close_connection = True  # the unread body must not be parsed as a request
                return
            except Exception as exc:  # never let one request stop the server
                self._answer(500, "application/json", b'{"message":"internal error"}')
                _log(f"otel-trace serve: 500 {exc!r}")
                return
            self._answer(200, answer, b"" if answer == "application/x-protobuf" else b"{}")
            if not quiet:
                _log(f"otel-trace serve: stored {count} spans")

        def do_GET(self) -> None:
            self._answer(405, "application/json", b'{"message":"POST OTLP to /v1/traces"}')

        do_PUT = do_DELETE = do_GET

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.receiver = receiver  # type: ignore[attr-defined]
    return server


# ------------------------------------------------------------------ private


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    else:
        raise ReceiverError(415, f"content encoding {encoding!r}: use gzip, deflate or none")
    try:
        out = decoder.decompress(body, MAX_DECODED + 1)
    except zlib.error as exc:
        raise ReceiverError(400, f"body is not valid {encoding} ({exc})") from None
    if len(out) > MAX_DECODED or decoder.unconsumed_tail:
        raise ReceiverError(413, f"body decompresses to more than {MAX_DECODED} bytes")
    return out


def _from_protobuf(data: bytes) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, ValueError) as exc:
        raise ReceiverError(400, f"body is not an OTLP protobuf ExportTraceServiceRequest ({exc})") from None
    out: dict[str, Any] = MessageToDict(request)
    return out


def _by_trace(request: Any) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The request's spans regrouped by trace (resource and scope kept), with
    hex ids and integer timestamps checked; and how many spans there are."""
    by_trace: dict[str, list[dict[str, Any]]] = {}
    count = 0
    for batch, scopes in iter_batches(request):
        for scope, spans in scopes:
            groups: dict[str, list[Any]] = {}
            for span in spans:
                if not isinstance(span, dict):
                    raise FormatError("a span is not an object")
                _hex_ids(span)
                int(span.get("startTimeUnixNano", 0))
                int(span.get("endTimeUnixNano", 0))
                groups.setdefault(span["traceId"], []).append(span)
                count += 1
            for trace_id, grouped in groups.items():
                by_trace.setdefault(trace_id, []).append(
                    {
                        "resource": batch.get("resource") or {},
                        "scopeSpans": [{"scope": scope.get("scope") or {}, "spans": grouped}],
                    }
                )
    return by_trace, count


def _hex_ids(span: dict[str, Any]) -> None:
    """Ids as lowercase hex, as otel-run writes them (protobuf's JSON gives base64)."""
    if "traceId" not in span or "spanId" not in span:
        raise FormatError("a span has no traceId or spanId")
    try:
        span["traceId"] = decode_id(span.get("traceId"), 16)
        span["spanId"] = decode_id(span.get("spanId"), 8)
        if span.get("parentSpanId"):
            span["parentSpanId"] = decode_id(span["parentSpanId"], 8)
        for link in span.get("links") or []:
            link["traceId"] = decode_id(link.get("traceId"), 16)
            link["spanId"] = decode_id(link.get("spanId"), 8)
    except FormatError as exc:
        raise ReceiverError(400, f"span ids: {exc}") from None


def _quote(text: str) -> str:
    import json

    return json.dumps(text)


def _log(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
