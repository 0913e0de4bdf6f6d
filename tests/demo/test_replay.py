"""The replay LLM server: matching, nothing found, streaming, latency, record mode."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from otel_run.demo.replay import _app as replay
from otel_run.demo.replay import _cassettes
from otel_run.demo.replay._cassettes import Library, request_hash

openai = pytest.importorskip("openai", reason="the demo extra is not installed")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None


class _Threaded(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@pytest.fixture
def cassettes(tmp_path: Path) -> Path:
    directory = tmp_path / "cassettes"
    directory.mkdir()
    (directory / "opt.json").write_text(
        json.dumps(
            {
                "name": "optimize f",
                "match": {"all": ["TASK: optimize.", "def f("]},
                "model": "gpt-test",
                "content": "faster\n```python:a.py\ndef f():\n    return 1\n```",
                "usage": {"prompt_tokens": 11, "completion_tokens": 7},
                "latency_ms": 1500,
                "ttft_ms": 400,
            }
        )
    )
    (directory / "generic.json").write_text(
        json.dumps(
            {
                "name": "any optimize",
                "match": {"all": ["TASK: optimize."]},
                "content": "generic",
            }
        )
    )
    return directory


def serve(app: Any) -> tuple[str, Any]:
    server = make_server("127.0.0.1", 0, app, server_class=_Threaded, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/v1", server


@pytest.fixture
def client(cassettes: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[float]]]:
    sleeps: list[float] = []
    monkeypatch.setattr(replay.time, "sleep", sleeps.append)  # latency is asserted, not waited for
    url, server = serve(replay.ReplayApp(Library(str(cassettes)), latency_scale=0.5))
    yield openai.OpenAI(base_url=url, api_key="test", max_retries=0), sleeps
    server.shutdown()


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "TASK: optimize."}, {"role": "user", "content": text}]


def test_most_specific_cassette_wins_with_its_usage_and_scaled_latency(client: tuple[Any, list[float]]) -> None:
    llm, sleeps = client
    response = llm.chat.completions.create(model="m", messages=messages("def f():\n    return 2"))
    assert "```python:a.py" in response.choices[0].message.content
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (11, 7)
    assert response.model == "gpt-test"
    assert sleeps == [0.75]  # 1500 ms x 0.5
    generic = llm.chat.completions.create(model="m", messages=messages("def g(): pass"))
    assert generic.choices[0].message.content == "generic"


def test_unknown_prompt_gets_a_well_formed_nothing_found(client: tuple[Any, list[float]]) -> None:
    llm, _ = client
    response = llm.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
    assert response.choices[0].message.content == _cassettes.NOTHING_FOUND
    assert response.choices[0].finish_reason == "stop" and response.usage.total_tokens > 0


def test_streaming_sends_chunks_then_usage(client: tuple[Any, list[float]]) -> None:
    llm, sleeps = client
    stream = llm.chat.completions.create(
        model="m", messages=messages("def f(): ..."), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("faster") and chunks[-1].usage.completion_tokens == 7
    assert sleeps[0] == 0.2  # time to first token, 400 ms x 0.5
    assert sum(sleeps) == pytest.approx(0.75)


def test_bad_requests_are_400_not_crashes(cassettes: Path) -> None:
    import urllib.error
    import urllib.request

    url, server = serve(replay.ReplayApp(Library(str(cassettes)), latency_scale=0))
    try:
        request = urllib.request.Request(url + "/chat/completions", data=b"{not json", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 400
    finally:
        server.shutdown()


def test_record_mode_writes_a_cassette_that_replays_without_the_upstream(tmp_path: Path, cassettes: Path) -> None:
    upstream_url, upstream = serve(replay.ReplayApp(Library(str(cassettes)), latency_scale=0))
    recorded = tmp_path / "recorded"
    recorder = replay.ReplayApp(Library(str(recorded)), latency_scale=0, upstream=upstream_url.removesuffix("/v1"))
    url, server = serve(recorder)
    try:
        prompt = messages("def f(x): return x")
        first = openai.OpenAI(base_url=url, api_key="t", max_retries=0).chat.completions.create(
            model="m", messages=prompt
        )
        [cassette] = list(recorded.glob("*.json"))
        data = json.loads(cassette.read_text())
        assert data["request_sha256"] == request_hash("m", prompt)
        assert data["content"] == first.choices[0].message.content
    finally:
        server.shutdown()
        upstream.shutdown()
    url, server = serve(replay.ReplayApp(Library(str(recorded)), latency_scale=0))
    try:
        again = openai.OpenAI(base_url=url, api_key="t", max_retries=0).chat.completions.create(
            model="m", messages=prompt
        )
        assert again.choices[0].message.content == first.choices[0].message.content
    finally:
        server.shutdown()
