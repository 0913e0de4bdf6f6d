"""What the official HTTP client instrumentations leave out, added to their spans:

* ``http.request.body.size`` and ``http.response.body.size`` (semantic
  conventions; the instrumentations record them only as metrics), through the
  hooks each instrumentation accepts;
* connection set-up: when a request opens a new TCP connection, a ``connect``
  span under the request's span, and ``otel_run.http.connection.new`` on it. A
  request span without one reused a pooled connection.

Connection set-up is observed in ``urllib3`` (used by ``requests``) and
``httpcore`` (used by ``httpx``) at their connection classes' ``connect``; these
are internal names, so a version that moved them is skipped (debug log).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_run import _wire

NEW_CONNECTION = "otel_run.http.connection.new"
REQUEST_SIZE = "http.request.body.size"
RESPONSE_SIZE = "http.response.body.size"


def hooks(name: str) -> dict[str, Callable[..., None]]:
    """Keyword arguments for the official instrumentor ``name``."""
    if name == "requests":
        return {"request_hook": _safe(_requests_request), "response_hook": _safe(_requests_response)}
    if name == "urllib3":
        return {"request_hook": _safe(_urllib3_request), "response_hook": _safe(_urllib3_response)}
    if name == "httpx":
        return {"request_hook": _safe(_httpx_request), "response_hook": _safe(_httpx_response)}
    return {}


def _safe(hook: Callable[..., None]) -> Callable[..., None]:
    """A hook runs inside the program's HTTP call: it must never raise into it."""

    def safe(*args: Any) -> None:
        try:
            hook(*args)
        except Exception as exc:
            _wire.debug(f"{hook.__name__} failed: {exc!r}")

    safe.__name__ = hook.__name__
    return safe


def track_connections(name: str) -> None:
    """Patch the connection class of ``urllib3`` or ``httpcore`` (once)."""
    try:
        if name == "urllib3":
            import urllib3.connection

            _wrap_connect(urllib3.connection.HTTPConnection, "connect")
            _wrap_connect(urllib3.connection.HTTPSConnection, "connect")  # its own connect, not the parent's
        elif name == "httpx":
            import httpcore._sync.connection as sync_connection

            _wrap_connect(sync_connection.HTTPConnection, "_connect")
    except (ImportError, AttributeError) as exc:
        _wire.debug(f"connection tracking for {name} not installed: {exc!r}")


# ------------------------------------------------------------------- hooks


def _size(value: Any) -> int | None:
    if value is None:
        return 0
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return None  # a stream or generator: unknown without consuming it


def _header_size(headers: Any) -> int | None:
    try:
        value = headers.get("Content-Length") or headers.get("content-length")
        return int(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _set(span: Any, key: str, value: int | None) -> None:
    if value is not None and span is not None and span.is_recording():
        span.set_attribute(key, value)


def _requests_request(span: Any, request: Any) -> None:
    _set(span, REQUEST_SIZE, _size(getattr(request, "body", None)))


def _requests_response(span: Any, request: Any, response: Any) -> None:
    size = None
    if getattr(response, "_content_consumed", False) and isinstance(getattr(response, "_content", None), bytes):
        size = len(response._content)
    _set(span, RESPONSE_SIZE, size if size is not None else _header_size(getattr(response, "headers", None)))


def _urllib3_request(span: Any, pool: Any, request_info: Any) -> None:
    _set(span, REQUEST_SIZE, _size(getattr(request_info, "body", None)))


def _urllib3_response(span: Any, pool: Any, response: Any) -> None:
    _set(span, RESPONSE_SIZE, _header_size(getattr(response, "headers", None)))


def _httpx_request(span: Any, request: Any) -> None:
    # request: the instrumentation's RequestInfo (method, url, headers, stream, extensions)
    size = _header_size(getattr(request, "headers", None))
    if size is None:
        content = getattr(getattr(request, "stream", None), "_stream", None)
        size = _size(content) if isinstance(content, (bytes, bytearray)) else None
    _set(span, REQUEST_SIZE, size)


def _httpx_response(span: Any, request: Any, response: Any) -> None:
    # response: the instrumentation's ResponseInfo (status_code, headers, stream, extensions)
    _set(span, RESPONSE_SIZE, _header_size(getattr(response, "headers", None)))


# ------------------------------------------------------------- connections


def _wrap_connect(cls: type, method: str) -> None:
    original = cls.__dict__.get(method)
    if original is None or getattr(original, "_otel_run_wrapped", False):
        return

    def connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        from opentelemetry import trace

        parent = trace.get_current_span()
        if parent.is_recording():
            parent.set_attribute(NEW_CONNECTION, True)
        tracer = trace.get_tracer("otel_run.http")
        host, port = getattr(self, "host", None), getattr(self, "port", None)
        origin = getattr(self, "_origin", None)  # httpcore
        if origin is not None:
            host, port = _decode(getattr(origin, "host", b"")), getattr(origin, "port", None)
        attributes: dict[str, Any] = {"server.address": str(host or ""), "server.port": int(port or 0)}
        with tracer.start_as_current_span("connect", attributes=attributes):
            return original(self, *args, **kwargs)

    connect._otel_run_wrapped = True  # type: ignore[attr-defined]
    connect.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(cls, method, connect)


def _decode(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
