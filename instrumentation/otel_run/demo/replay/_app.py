"""The replay LLM server as a plain WSGI application: OpenAI's
``/v1/chat/completions`` answered from cassettes, with their recorded latency
(or forwarded upstream and recorded, in record mode). Importing this module has
no side effects; :mod:`otel_run.demo.replay.wsgi` is the traced entry point."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import count
from typing import Any

from opentelemetry import trace

from otel_run import _env
from otel_run.demo.replay._cassettes import NOTHING_FOUND, Cassette, Library, request_hash, request_text

StartResponse = Callable[..., Any]
PROVIDER = "otel_run.replay"  # gen_ai.provider.name of the replayed model
_TRACER = trace.get_tracer("otel_run.demo.replay")
_ids = count(1)


class ReplayApp:
    """``/v1/chat/completions`` (plain and ``stream: true``), ``/v1/models``, ``/health``."""

    def __init__(
        self, library: Library, latency_scale: float = 1.0, upstream: str | None = None, upstream_key: str | None = None
    ) -> None:
        self.library = library
        self.latency_scale = latency_scale
        self.upstream = upstream.rstrip("/") if upstream else None
        self.upstream_key = upstream_key

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        try:
            if path == "/health":
                return _json(start_response, 200, {"status": "ok", "cassettes": len(self.library.cassettes())})
            if path == "/v1/models":
                models = sorted({c.model for c in self.library.cassettes()} | {"replay"})
                data = [{"id": m, "object": "model"} for m in models]
                return _json(start_response, 200, {"object": "list", "data": data})
            if path == "/v1/chat/completions" and method == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(length) or b"{}")
                return self._complete(body, start_response)
            return _json(start_response, 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})
        except (ValueError, KeyError, TypeError) as exc:
            error = {"message": f"bad request: {exc}", "type": "invalid_request_error"}
            return _json(start_response, 400, {"error": error})

    def _complete(self, body: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        model = str(body.get("model", "replay"))
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise ValueError("'messages' must be a list")
        cassette = self.library.find(model, messages)
        span = trace.get_current_span()
        if cassette is None and self.upstream:
            cassette = self._record(body, model, messages)
        if cassette is None:
            text = request_text(messages)
            cassette = Cassette(
                name="nothing found",
                content=NOTHING_FOUND,
                model=model,
                prompt_tokens=max(1, len(text) // 4),
                completion_tokens=len(NOTHING_FOUND) // 4,
            )
        span.set_attribute("replay.cassette", cassette.name)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
            return self._stream(cassette, model, include_usage)
        span = _generation(cassette, model)
        try:
            self._sleep(cassette.latency_ms)
        finally:
            span.end()
        return _json(start_response, 200, _completion(cassette, model))

    def _stream(self, cassette: Cassette, model: str, include_usage: bool) -> Iterator[bytes]:
        # not made current: the context would stay attached between chunks, outside this generator
        span = _generation(cassette, model)
        try:
            yield from self._chunks(cassette, model, include_usage)
        finally:
            span.end()

    def _chunks(self, cassette: Cassette, model: str, include_usage: bool) -> Iterator[bytes]:
        ident, created = f"chatcmpl-replay-{next(_ids)}", int(time.time())
        self._sleep(cassette.ttft_ms)
        pieces = _split(cassette.content, 8)
        rest = max(0.0, cassette.latency_ms - cassette.ttft_ms) / max(1, len(pieces))
        for i, piece in enumerate(pieces):
            if i:
                self._sleep(rest)
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            yield _sse(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
            )
        self._sleep(rest)  # the recorded latency spreads over the gaps, the last one before the finish
        yield _sse(
            {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": cassette.finish_reason}],
            }
        )
        if include_usage:
            yield _sse(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(cassette),
                }
            )
        yield b"data: [DONE]\n\n"

    def _record(self, body: dict[str, Any], model: str, messages: list[dict[str, Any]]) -> Cassette:
        """Forward to the upstream endpoint and keep its answer as a cassette."""
        import httpx

        headers = {"Authorization": f"Bearer {self.upstream_key}"} if self.upstream_key else {}
        request = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        start = time.perf_counter()
        response = httpx.post(f"{self.upstream}/v1/chat/completions", json=request, headers=headers, timeout=600)
        response.raise_for_status()
        latency = (time.perf_counter() - start) * 1000
        data = response.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        cassette = Cassette(
            name=f"recorded {model}",
            content=choice["message"]["content"] or "",
            model=str(data.get("model", model)),
            finish_reason=str(choice.get("finish_reason") or "stop"),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_ms=latency,
            ttft_ms=latency,
            request_sha256=request_hash(model, messages),
        )
        self.library.save(cassette)
        return cassette

    def _sleep(self, ms: float) -> None:
        if ms > 0 and self.latency_scale > 0:
            time.sleep(ms * self.latency_scale / 1000)


def _generation(cassette: Cassette, model: str) -> trace.Span:
    """The provider side of a completion: the time the "model" takes, as a GenAI
    span, so that the replay server's own overhead is its server span minus this."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": model,
        "gen_ai.response.model": cassette.model if cassette.model != "replay" else model,
        "gen_ai.response.finish_reasons": [cassette.finish_reason],
        "gen_ai.usage.input_tokens": cassette.prompt_tokens,
        "gen_ai.usage.output_tokens": cassette.completion_tokens,
        "replay.cassette": cassette.name,
    }
    return _TRACER.start_span(f"chat {model}", attributes=attributes)


def _completion(cassette: Cassette, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-replay-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": cassette.model if cassette.model != "replay" else model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": cassette.content},
                "finish_reason": cassette.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(cassette),
    }


def _usage(cassette: Cassette) -> dict[str, int]:
    return {
        "prompt_tokens": cassette.prompt_tokens,
        "completion_tokens": cassette.completion_tokens,
        "total_tokens": cassette.prompt_tokens + cassette.completion_tokens,
    }


def _split(text: str, parts: int) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _json(start_response: StartResponse, status: int, data: dict[str, Any]) -> list[bytes]:
    body = json.dumps(data).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app_from_environ(environ: dict[str, str] | None = None) -> ReplayApp:
    environ = dict(os.environ) if environ is None else environ
    return ReplayApp(
        Library(environ.get(_env.OTEL_RUN_REPLAY_CASSETTES)),
        float(environ.get(_env.OTEL_RUN_REPLAY_LATENCY_SCALE, "1") or 1),
        environ.get(_env.OTEL_RUN_REPLAY_UPSTREAM) or None,
        environ.get(_env.OTEL_RUN_REPLAY_UPSTREAM_KEY) or environ.get(_env.OPENAI_API_KEY) or None,
    )
