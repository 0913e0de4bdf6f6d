"""``otel-trace serve``: an OTLP/HTTP receiver that writes into the embedded store.

A service on another machine or in a container (the backend, a CI job) sends
its spans home without Docker or a collector: ``POST /v1/traces`` with OTLP
protobuf or JSON, optionally gzip- or deflate-compressed, optionally with a
bearer token (required by default when the server listens beyond loopback).

**No acknowledged span is lost.** Each batch is checked whole, then appended,
one line per trace, to ``traces/<trace_id>.jsonl`` and flushed to disk
(``fdatasync``) before the 200 is sent. A write that fails (a full disk: the
store's :class:`~otel_run._wire.SpanWriter` writes a line whole or raises
``OSError``) answers 503 with ``Retry-After``: the sender keeps the batch and
sends it again. A batch refused that way may have left some of its traces
stored whole; the retry stores them again and the reader merges the copies by
span id. A trace the store's index does not know gets an index entry (label
``received``, run id = the trace id, so a received span can never replace an
otel-run run's entry).

**Every request is bounded.** Bad input gets a 4xx and never a 500 (the
OTLP/HTTP failure codes): a body over :data:`MAX_BODY` (413, from
``Content-Length`` alone), a body that decompresses to more than
:data:`MAX_DECODED` (413: gzip bombs), more than :data:`MAX_SPANS` spans
(counted on the wire) or :data:`MAX_ITEMS` attributes, events and links
(counted before they are turned into JSON) (413), an unknown content type or
encoding (415), a body that is not an OTLP trace request — checked against
the OTLP protobuf schema, so an attribute of the wrong type never reaches the
store — or ids that are not 16/8 bytes (400), a wrong token (401). Bodies are
read concurrently but decoded one at a time (the work is CPU-bound: under the
GIL, decoding two at once would not be faster, only hold twice the memory),
so the memory a request can make the server hold is bounded by the limits
above. A server too busy to take a request within its timeout answers 503
with ``Retry-After``. An answer sent before the body was read closes the
connection (once what the sender still sends is read and dropped), so an
unread body is never taken for the next request. A connection idle, or
sending its headers, for longer than the timeout is closed, and a body must
arrive within the timeout plus one second per :data:`MIN_BODY_RATE` bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_run._errors import OtelRunError, UsageError
from otel_run._wire import SpanWriter
from otel_run.store import _layout
from otel_run.store._jsonl import loads
from otel_run.store._merge import FormatError, iter_batches

PATH = "/v1/traces"
MAX_BODY = 4 * 1024 * 1024
"""Largest request body accepted (bytes on the wire; a gRPC OTLP receiver's
default limit). The SDKs' batches (512 spans) are a tenth of it."""
MAX_DECODED = 4 * 1024 * 1024
"""Largest body after decompression: about 5,000 spans of OTLP JSON, 13,000
of protobuf. Decoding multiplies it (up to ~25x for JSON, ~90x for a protobuf
of empty spans), which is what bounds the memory of one request."""
MAX_SPANS = 20_000
"""Most spans in one request (counted on the wire for protobuf, before it is parsed)."""
MAX_ITEMS = 1_000_000
"""Most objects in one JSON request, and most attributes, events and links of
the spans of a protobuf one: what decoding and re-encoding them costs."""
BODY_BUDGET = 64 * 1024 * 1024
"""Request bodies the server holds at once (being read or waiting to be decoded)."""
TIMEOUT = 30.0
"""Default seconds: idle keep-alive connection, request line and headers, a
stalled body, waiting for a turn to decode."""
MIN_BODY_RATE = 64 * 1024
"""Slowest body accepted (bytes per second), past the timeout."""
DRAIN_MAX = 4 * MAX_BODY
"""Bytes of an unread body read and thrown away before the connection closes,
so the sender reads the answer instead of a reset."""
MAX_CONNECTIONS = 256
"""Connections served at once; more wait in the listen backlog."""
BACKLOG = 1024
"""Listen backlog (the kernel caps it at ``net.core.somaxconn``)."""
RETRY_BUSY_S = 1
"""``Retry-After`` when the server is too busy."""
RETRY_STORE_S = 10
"""``Retry-After`` when the store could not be written (a full disk)."""
COMMAND_MAX = 200
"""Characters of the ``service: span name`` an index entry records."""

MAX_DEPTH = 64
"""Deepest nesting of messages in a JSON request (an attribute value holding
arrays of arrays: two levels each); protobuf's own parser stops at 100."""

_HEX = re.compile(r"[0-9a-fA-F]+")
_ID_BYTES = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}
_INDEXED = re.compile(rb'"trace_id"\s*:\s*"([0-9a-f]{32})"')


class ReceiverError(Exception):
    """A request the receiver refuses: HTTP status, message, and for 429/503
    the seconds after which the sender may try again."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Receiver:
    """Turns OTLP requests into store lines (no HTTP here).

    Args:
        store: the store directory.
        token: the bearer token senders must present, or None for none.
        timeout: seconds a request may wait for its turn to be decoded.
    """

    def __init__(self, store: str, token: str | None = None, timeout: float = TIMEOUT) -> None:
        self.store = os.path.abspath(store)
        self.token = token
        self.timeout = timeout
        self.accepted_spans = 0
        self.bodies = _Budget(BODY_BUDGET)
        self._writer = SpanWriter(self.store)
        self._indexed = _IndexedTraces(_layout.index_path(self.store))
        self._unended: dict[str, int] = {}
        """Traces whose index ``start`` was written but not their ``end`` (a full disk)."""
        self._work = threading.Lock()
        _layout.create_store(self.store)  # 0700, whatever the umask

    def authorize(self, header: str | None) -> None:
        """Raises a 401 :class:`ReceiverError` unless ``header`` carries the token."""
        if self.token is None:
            return
        expected = f"Bearer {self.token}"
        if not header or not hmac.compare_digest(header.encode(), expected.encode()):
            raise ReceiverError(401, "missing or wrong bearer token")

    def accept(self, body: bytes, content_type: str, encoding: str) -> tuple[int, str]:
        """Decode, check, store; returns (spans stored, response content type).

        Raises:
            ReceiverError: the request is refused (nothing of it is acknowledged).
        """
        kind = media_type(content_type)
        _decoder(encoding)  # 415 before waiting for a turn
        if not self._work.acquire(timeout=self.timeout):
            raise ReceiverError(503, "server busy: try again", retry_after=RETRY_BUSY_S)
        try:
            request = _decode(kind, _decompress(body, encoding))
            lines, roots, count = _lines(request)
            del request
            self._store(lines, roots)
            self.accepted_spans += count
        finally:
            self._work.release()
        return count, kind

    def _store(self, lines: dict[str, str], roots: dict[str, _Root]) -> None:
        try:
            for trace_id, line in lines.items():
                self._writer.write(trace_id, line)
            for trace_id in lines:
                _sync(_layout.trace_path(self.store, trace_id))
            for trace_id, root in roots.items():
                self._index(trace_id, root)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ReceiverError(503, f"cannot store the batch in {self.store}: {reason}", RETRY_STORE_S) from None

    def _index(self, trace_id: str, root: _Root) -> None:
        """An index entry for a trace the index does not know (its run id is
        the trace id: 32 hex digits, never an otel-run run's 16)."""
        if trace_id not in self._indexed:
            _layout.append_index(
                self.store,
                {
                    "event": "start",
                    "run_id": trace_id,
                    "trace_id": trace_id,
                    "root_span_id": root.span_id,
                    "command": [f"{root.service}: {root.name}"[:COMMAND_MAX]],
                    "start_ns": root.start_ns,
                    "label": "received",
                    "host": "",
                },
            )
            self._indexed.add(trace_id)
            self._unended[trace_id] = root.end_ns or time.time_ns()
        end = self._unended.get(trace_id)
        if end is not None:
            _layout.append_index(self.store, {"event": "end", "run_id": trace_id, "end_ns": end})
            _sync(_layout.index_path(self.store))
            del self._unended[trace_id]


def serve(
    store: str,
    host: str = "127.0.0.1",
    port: int = 4318,
    token: str | None = None,
    quiet: bool = False,
    timeout: float = TIMEOUT,
    anyone: bool = False,
) -> ThreadingHTTPServer:
    """An HTTP server for :class:`Receiver`, bound (call ``serve_forever``).

    Args:
        store: the store directory.
        host: address to listen on.
        port: port (0: one the kernel chooses).
        token: the bearer token senders must present.
        quiet: no line per request on stderr.
        timeout: seconds before an idle or slow connection is closed (see the module).
        anyone: accept senders without a token on an address beyond loopback.

    Raises:
        OSError: the address cannot be bound.
        OtelRunError: the store cannot be created.
        UsageError: beyond loopback without a token, and ``anyone`` not set.
    """
    try:
        receiver = Receiver(store, token, timeout)
    except OSError as exc:
        raise OtelRunError(f"{store}: cannot create the store: {exc.strerror or exc}") from exc
    server = _Server((host, port), _handler(receiver, quiet, timeout), quiet)
    bound = str(server.server_address[0])
    if token is None and not anyone and not _loopback(bound):
        server.server_close()
        raise UsageError(
            f"--host {host} is reachable from other machines: set --token (or OTEL_RUN_SERVE_TOKEN), "
            "or pass --no-token to accept spans from anyone"
        )
    server.receiver = receiver  # type: ignore[attr-defined]
    return server


def media_type(content_type: str) -> str:
    """``application/json`` or ``application/x-protobuf`` from a Content-Type;
    raises a 415 :class:`ReceiverError` for anything else."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind not in ("application/x-protobuf", "application/json"):
        shown = content_type[:60] or "(none)"
        raise ReceiverError(415, f"content type {shown!r}: use application/x-protobuf or application/json")
    return kind


# ------------------------------------------------------------------ HTTP


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most :data:`MAX_CONNECTIONS` at once, a
    long listen backlog, and one line (never a traceback) per connection error."""

    request_queue_size = BACKLOG
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], quiet: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.quiet = quiet
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()  # the accept loop waits; the kernel queues new connections meanwhile
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not self.quiet:
            _log(f"otel-trace serve: connection from {client_address[0]}: {type(exc).__name__}: {exc}")


def _handler(receiver: Receiver, quiet: bool, timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "otel-trace-serve"
        _clock: _DeadlineReader
        body_read = False

        def setup(self) -> None:
            super().setup()
            self.rfile.close()
            self._clock = _DeadlineReader(self.connection, timeout)
            self.rfile = io.BufferedReader(self._clock)  # type: ignore[assignment]

        def handle_one_request(self) -> None:
            self._clock.deadline = time.monotonic() + timeout  # idle, then request line and headers
            super().handle_one_request()

        def do_POST(self) -> None:
            reserved = 0
            self.body_read = False
            try:
                size = self._check_head()
                if not receiver.bodies.take(size, timeout):
                    raise ReceiverError(503, "server busy: try again", retry_after=RETRY_BUSY_S)
                reserved = size
                body = self._read_body(size)
                count, answer = receiver.accept(
                    body, self.headers.get("Content-Type", ""), self.headers.get("Content-Encoding", "")
                )
            except ReceiverError as exc:
                self._refuse(exc)
                return
            except Exception as exc:  # never let one request stop the server
                self.close_connection = True
                self._answer(500, b'{"message":"internal error"}', close=True)
                _log(f"otel-trace serve: 500 {type(exc).__name__}: {exc}")
                return
            finally:
                receiver.bodies.give(reserved)
            self._answer(200, b"" if answer == "application/x-protobuf" else b"{}", content_type=answer)
            if not quiet:
                _log(f"otel-trace serve: stored {count} spans")

        def _check_head(self) -> int:
            """The body's length, once path, token, framing and media type
            are acceptable (each refusal here leaves the body unread)."""
            if self.path.split("?")[0] != PATH:
                raise ReceiverError(404, f"no such endpoint {self.path[:100]!r}: OTLP traces go to {PATH}")
            receiver.authorize(self.headers.get("Authorization"))
            if self.headers.get("Transfer-Encoding"):
                raise ReceiverError(411, "Transfer-Encoding is not supported: send a Content-Length")
            lengths = set(self.headers.get_all("Content-Length") or [])
            if not lengths:
                raise ReceiverError(411, "Content-Length required")
            if len(lengths) > 1:
                raise ReceiverError(400, "conflicting Content-Length headers")
            length = lengths.pop().strip()
            if not (length.isascii() and length.isdigit()):
                raise ReceiverError(400, f"Content-Length {length[:30]!r} is not a number")
            size = int(length)
            if size > MAX_BODY:
                raise ReceiverError(413, f"body of {size} bytes is over the {MAX_BODY}-byte limit")
            media_type(self.headers.get("Content-Type", ""))
            _decoder(self.headers.get("Content-Encoding", ""))
            return size

        def _read_body(self, size: int) -> bytes:
            self._clock.deadline = time.monotonic() + timeout + size / MIN_BODY_RATE
            try:
                body = self.rfile.read(size)
            except TimeoutError:
                raise ReceiverError(408, f"body not received within {timeout:g} s (+1 s per 64 KiB)") from None
            if len(body) < size:
                raise ReceiverError(400, "body shorter than Content-Length")
            self.body_read = True
            return body

        def _refuse(self, exc: ReceiverError) -> None:
            close = not self.body_read  # an unread body must not be parsed as a request
            message = json.dumps({"message": str(exc)}).encode()
            self._answer(exc.status, message, close=close, retry_after=exc.retry_after)
            if not quiet:
                _log(f"otel-trace serve: {exc.status} {exc}")
            if close:
                self._drain()

        def _drain(self) -> None:
            """Once the answer is out, read (and drop) what the sender still
            sends, up to :data:`DRAIN_MAX` or the timeout: closing a socket with
            unread data resets the connection, and the sender would see the
            reset instead of the answer."""
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self._clock.deadline = time.monotonic() + timeout
                drained = 0
                while drained < DRAIN_MAX and (chunk := self.rfile.read1(65536)):
                    drained += len(chunk)
            except OSError:
                pass

        def do_GET(self) -> None:
            self._answer(405, b'{"message":"POST OTLP to /v1/traces"}', close=True, allow="POST")

        do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own refusals (bad request line, headers too long,
            unknown method): JSON, and the connection closed."""
            text = message or self.responses.get(code, ("error",))[0]
            self._answer(code, json.dumps({"message": text}).encode(), close=True)

        def _answer(
            self,
            status: int,
            body: bytes,
            content_type: str = "application/json",
            close: bool = False,
            retry_after: int | None = None,
            allow: str | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if retry_after is not None:
                self.send_header("Retry-After", str(retry_after))
            if allow:
                self.send_header("Allow", allow)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


class _DeadlineReader(io.RawIOBase):
    """A connection's socket as a raw stream whose reads fail with
    ``TimeoutError`` once ``deadline`` (monotonic) passes, or after
    ``stall`` seconds without a byte: a client trickling its headers or body a
    byte at a time cannot hold a connection forever."""

    def __init__(self, sock: socket.socket, stall: float) -> None:
        super().__init__()
        self._sock = sock
        self._stall = stall
        self.deadline = float("inf")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("connection deadline passed")
        self._sock.settimeout(min(self._stall, left))
        return self._sock.recv_into(buffer)


class _Budget:
    """Bytes of request bodies held at once (a counting semaphore in bytes)."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._cond = threading.Condition()

    def take(self, size: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._free >= size, timeout) and self._take(size)

    def give(self, size: int) -> None:
        if size:
            with self._cond:
                self._free += size
                self._cond.notify_all()

    def _take(self, size: int) -> bool:
        self._free -= size
        return True


class _IndexedTraces:
    """The trace ids the store's index knows, read incrementally (the index
    only grows; otel-run processes append to it meanwhile)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._offset = 0
        self._ids: set[str] = set()

    def __contains__(self, trace_id: str) -> bool:
        if trace_id not in self._ids:
            self._refresh()
        return trace_id in self._ids

    def add(self, trace_id: str) -> None:
        self._ids.add(trace_id)

    def _refresh(self) -> None:
        try:
            with open(self._path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._offset:  # rewritten: read it again
                    self._offset = 0
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self._ids.update(m.decode() for m in _INDEXED.findall(data, 0, end))
        self._offset += end


class _Root:
    """What an index entry says about a received trace: its root span (the
    earliest span without a parent, else the earliest span), its service, and
    when the trace began and ended."""

    __slots__ = ("end_ns", "name", "root_start_ns", "rooted", "service", "span_id", "start_ns")

    def __init__(self, span: Any, service: str) -> None:
        self.span_id = span.span_id.hex()
        self.name = span.name
        self.service = service
        self.rooted = not span.parent_span_id
        self.root_start_ns = self.start_ns = int(span.start_time_unix_nano)
        self.end_ns = int(span.end_time_unix_nano)

    def offer(self, span: Any, service: str) -> None:
        """Another span of the trace."""
        start = int(span.start_time_unix_nano)
        self.start_ns = min(self.start_ns, start)
        self.end_ns = max(self.end_ns, int(span.end_time_unix_nano))
        rooted = not span.parent_span_id
        if (rooted, -start) > (self.rooted, -self.root_start_ns):
            self.span_id, self.name, self.service = span.span_id.hex(), span.name, service
            self.rooted, self.root_start_ns = rooted, start


# ------------------------------------------------------------------ private


def _decoder(encoding: str) -> Any:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise ReceiverError(415, f"content encoding {encoding[:40]!r}: use gzip, deflate or none")


def _decompress(body: bytes, encoding: str) -> bytes:
    decoder = _decoder(encoding)
    if decoder is None:
        if len(body) > MAX_DECODED:
            raise ReceiverError(413, f"body of {len(body)} bytes is over the {MAX_DECODED}-byte limit")
        return body
    try:
        out: bytes = decoder.decompress(body, MAX_DECODED + 1)
    except zlib.error as exc:
        raise ReceiverError(400, f"body is not valid {encoding.strip().lower()} ({exc})") from None
    if len(out) > MAX_DECODED or decoder.unconsumed_tail:
        raise ReceiverError(413, f"body decompresses to more than {MAX_DECODED} bytes")
    return out


def _decode(kind: str, data: bytes) -> Any:
    """An ``ExportTraceServiceRequest`` message from protobuf or OTLP JSON
    (JSON is checked against the same schema, see :func:`_prepare_json`)."""
    from google.protobuf.json_format import ParseDict, ParseError
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    if kind == "application/x-protobuf":
        try:
            _count_spans(data)
            request.ParseFromString(data)
        except (DecodeError, ValueError, RecursionError) as exc:
            raise ReceiverError(400, f"body is not an OTLP protobuf ExportTraceServiceRequest ({exc})") from None
        return request
    try:
        obj = loads(data)
    except RecursionError:
        raise ReceiverError(400, "body is not JSON we accept: nested too deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReceiverError(400, f"body is not JSON ({exc})") from None
    del data
    _prepare_json(obj, request.DESCRIPTOR)
    try:
        ParseDict(obj, request)
    except (ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise ReceiverError(400, f"not an OTLP trace request: {exc}"[:500]) from None
    return request


def _prepare_json(obj: Any, descriptor: Any) -> None:
    """Make a decoded OTLP JSON request one protobuf's JSON mapping parses
    strictly, in place: older field names renamed, unknown fields dropped (as
    OTLP/JSON requires of a receiver), ids turned from hex into base64. Raises
    400 for anything not shaped like a request (an object where a message
    goes) and 413 for too many spans (before the costly schema check)."""
    count = 0
    try:
        for batch, scopes in iter_batches(obj):
            for scope, spans in scopes:
                count += len(spans)
                if count > MAX_SPANS:
                    raise ReceiverError(413, f"more than {MAX_SPANS} spans in one request: send smaller batches")
                if "instrumentationLibrary" in scope and "scope" not in scope:
                    scope["scope"] = scope.pop("instrumentationLibrary")
            if "instrumentationLibrarySpans" in batch and "scopeSpans" not in batch:
                batch["scopeSpans"] = batch.pop("instrumentationLibrarySpans")
    except FormatError as exc:
        raise ReceiverError(400, f"not an OTLP trace request: {exc}") from None
    if "batches" in obj and "resourceSpans" not in obj:
        obj["resourceSpans"] = obj.pop("batches")
    _prepare_message(obj, descriptor, "", 0, [MAX_ITEMS])


def _prepare_message(obj: dict[str, Any], descriptor: Any, where: str, depth: int, left: list[int]) -> None:
    """One JSON object against its message type (see :func:`_prepare_json`);
    ``left[0]`` counts down the objects a request may hold."""
    if depth > MAX_DEPTH:
        raise _not_otlp(where or "the request", f"nested deeper than {MAX_DEPTH} messages")
    left[0] -= 1
    if left[0] < 0:
        raise ReceiverError(413, f"more than {MAX_ITEMS} OTLP objects in one request: send smaller batches")
    for key in list(obj):
        field = descriptor.fields_by_camelcase_name.get(key) or descriptor.fields_by_name.get(key)
        if field is None:
            del obj[key]
            continue
        value = obj[key]
        name = f"{where}.{key}" if where else key
        if field.message_type is None:
            nbytes = _ID_BYTES.get(field.name) if field.type == field.TYPE_BYTES else None
            if nbytes is None:
                continue
            if field.name == "parent_span_id" and not value:
                del obj[key]
            else:
                obj[key] = _json_id(value, nbytes, name)
        elif _repeated(field):
            if value is None:
                continue
            if not isinstance(value, list):
                raise _not_otlp(name, f"expected a list, got {type(value).__name__}")
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    raise _not_otlp(f"{name}[{i}]", f"expected an object, got {type(item).__name__}")
                _prepare_message(item, field.message_type, f"{name}[{i}]", depth + 1, left)
        elif value is not None:
            if not isinstance(value, dict):
                raise _not_otlp(name, f"expected an object, got {type(value).__name__}")
            _prepare_message(value, field.message_type, name, depth + 1, left)


def _not_otlp(where: str, what: str) -> ReceiverError:
    return ReceiverError(400, f"not an OTLP trace request: {where}: {what}")


def _repeated(field: Any) -> bool:
    """Whether a protobuf field is repeated (``label`` is gone from protobuf 7)."""
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == field.LABEL_REPEATED)


def _json_id(value: Any, nbytes: int, where: str) -> str:
    """An OTLP JSON id — ``2 * nbytes`` hex digits, or base64 as protobuf's JSON
    mapping writes it — as base64; raises 400 for anything else."""
    raw: bytes | None = None
    if isinstance(value, str):
        if len(value) == 2 * nbytes and _HEX.fullmatch(value):
            raw = bytes.fromhex(value)
        else:
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raw = None
    if raw is None or len(raw) != nbytes:
        shown = repr(value)[:80]
        raise ReceiverError(400, f"{where}: {shown} is not an id of {nbytes} bytes ({2 * nbytes} hex digits)")
    return base64.b64encode(raw).decode("ascii")


def _lines(request: Any) -> tuple[dict[str, str], dict[str, _Root], int]:
    """One OTLP JSON line per trace of a checked request (ids as lowercase
    hex, as otel-run writes them), the root of each trace, and the span count."""
    from google.protobuf.json_format import MessageToDict

    count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if count > MAX_SPANS:
        raise ReceiverError(413, f"{count} spans in one request, over the {MAX_SPANS} limit: send smaller batches")
    _count_items(request)
    entries: dict[str, list[str]] = {}
    roots: dict[str, _Root] = {}
    for b, rs in enumerate(request.resource_spans):
        resource = _dumps(MessageToDict(rs.resource))
        service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
        schema = f',"schemaUrl":{_dumps(rs.schema_url)}' if rs.schema_url else ""
        for s, ss in enumerate(rs.scope_spans):
            scope = _dumps(MessageToDict(ss.scope))
            scope_schema = f',"schemaUrl":{_dumps(ss.schema_url)}' if ss.schema_url else ""
            by_trace: dict[str, list[str]] = {}
            for i, span in enumerate(ss.spans):
                trace_id = _check_ids(span, f"resourceSpans[{b}].scopeSpans[{s}].spans[{i}]")
                by_trace.setdefault(trace_id, []).append(_span_json(span, MessageToDict))
                root = roots.get(trace_id)
                if root is None:
                    roots[trace_id] = _Root(span, service or "unknown_service")
                else:
                    root.offer(span, service or "unknown_service")
            for trace_id, spans in by_trace.items():
                entries.setdefault(trace_id, []).append(
                    f'{{"resource":{resource}{schema},"scopeSpans":[{{"scope":{scope}{scope_schema},'
                    f'"spans":[{",".join(spans)}]}}]}}'
                )
    lines = {trace_id: f'{{"resourceSpans":[{",".join(parts)}]}}' for trace_id, parts in entries.items()}
    return lines, roots, count


def _count_items(request: Any) -> None:
    """Raises 413 when the request's attributes (values in arrays and lists
    included), events and links are more than :data:`MAX_ITEMS` (stopping
    there: a protobuf of 4 MiB can hold 2 million empty values)."""
    left = [MAX_ITEMS]
    for rs in request.resource_spans:
        _count_attributes(rs.resource.attributes, left)
        for ss in rs.scope_spans:
            _count_attributes(ss.scope.attributes, left)
            for span in ss.spans:
                _take(left, len(span.events) + len(span.links))  # before touching them
                _count_attributes(span.attributes, left)
                for event in span.events:
                    _count_attributes(event.attributes, left)
                for link in span.links:
                    _count_attributes(link.attributes, left)


def _count_attributes(attributes: Any, left: list[int]) -> None:
    _take(left, len(attributes))  # before touching them
    for attribute in attributes:
        _count_value(attribute.value, left)


def _count_value(value: Any, left: list[int]) -> None:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        values = value.array_value.values
        _take(left, len(values))  # before touching them
        for item in values:
            _count_value(item, left)
    elif kind == "kvlist_value":
        _count_attributes(value.kvlist_value.values, left)


def _take(left: list[int], count: int) -> None:
    left[0] -= count
    if left[0] < 0:
        raise ReceiverError(413, f"more than {MAX_ITEMS} attributes, events and links in one request")


def _count_spans(data: bytes) -> int:
    """The spans of a serialized ``ExportTraceServiceRequest``, counted on the
    wire; raises 413 past :data:`MAX_SPANS` before protobuf parses (and
    allocates) them all: an empty span is 2 bytes on the wire, ~170 parsed."""
    count = 0
    for resource_spans in _fields(memoryview(data), 1):
        for scope_spans in _fields(resource_spans, 2):
            for _ in _fields(scope_spans, 2):
                count += 1
                if count > MAX_SPANS:
                    raise ReceiverError(413, f"more than {MAX_SPANS} spans in one request: send smaller batches")
    return count


def _fields(message: memoryview, number: int) -> Iterator[memoryview]:
    """The length-delimited fields ``number`` of one serialized protobuf
    message (the others skipped); raises ValueError when it is malformed."""
    pos, end = 0, len(message)
    while pos < end:
        tag, pos = _varint(message, pos)
        wire = tag & 7
        if wire == 0:
            pos = _varint(message, pos)[1]
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(message, pos)
            if pos + length > end:
                raise ValueError("a field runs past the end of its message")
            if tag >> 3 == number:
                yield message[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"wire type {wire} at byte {pos}")
    if pos > end:
        raise ValueError("truncated message")


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 70:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def _check_ids(span: Any, where: str) -> str:
    """The span's trace id as 32 lowercase hex digits; raises 400 for ids of
    the wrong length or all zeros (invalid in OTLP and W3C trace context)."""
    ids = [("traceId", span.trace_id, 16), ("spanId", span.span_id, 8)]
    if span.parent_span_id:
        ids.append(("parentSpanId", span.parent_span_id, 8))
    for name, value, nbytes in ids:
        if len(value) != nbytes or not any(value):
            shown = value.hex()[:64]
            raise ReceiverError(400, f"{where}.{name}: {len(value)} bytes {shown!r}, expected {nbytes}, not all zero")
    for n, link in enumerate(span.links):
        if len(link.trace_id) != 16 or len(link.span_id) != 8:
            raise ReceiverError(400, f"{where}.links[{n}]: ids must be 16 and 8 bytes")
    return str(span.trace_id.hex())


def _span_json(span: Any, to_dict: Any) -> str:
    """One span as OTLP JSON: the protobuf JSON mapping, with enums as
    integers and ids as hex (OTLP JSON's two differences)."""
    out = to_dict(span, use_integers_for_enums=True)
    out["traceId"] = span.trace_id.hex()
    out["spanId"] = span.span_id.hex()
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id.hex()
    for link, link_out in zip(span.links, out.get("links") or [], strict=True):
        link_out["traceId"] = link.trace_id.hex()
        link_out["spanId"] = link.span_id.hex()
    return _dumps(out)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _sync(path: str) -> None:
    """Flush a file's data to disk (an accepted batch survives a crash of the machine)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _log(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
