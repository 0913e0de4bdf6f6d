"""Planted credentials appear nowhere in the store."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.conftest import PYTHON, Runner, settled_trace

OPENAI = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
CODEFLASH = "cf-" + "Zy9Xw8Vu7Ts6Rq5Po4Nm" * 2
GITHUB = "ghp_" + "Q1w2E3r4T5y6U7i8O9p0Aa"
BEARER = "eyJhbGciOiJIUzI1NiJ9.payload9.sig123"
QUERY_TOKEN = "qt-77ab23cd45ef"
PASSWORD = "hunter2-Secret"
ENV_ONLY = "envonly-Secret-991"
CUSTOM_HEADER = "xk-31337-Secret"
SECRETS = [OPENAI, CODEFLASH, GITHUB, BEARER, QUERY_TOKEN, PASSWORD, ENV_ONLY, CUSTOM_HEADER]


def test_planted_secrets_appear_nowhere_in_the_store(runner: Runner, service: int, tmp_path: Path) -> None:
    client = tmp_path / "client.py"
    client.write_text(
        textwrap.dedent(
            f"""
            import os, sys, subprocess, requests
            url = "http://admin:{PASSWORD}@127.0.0.1:{service}/work?ms=1&api_key={QUERY_TOKEN}&token={QUERY_TOKEN}"
            requests.get(url, headers={{"Authorization": "Bearer {BEARER}", "X-Api-Key": "{CUSTOM_HEADER}"}}, timeout=30)
            subprocess.run(["sh", "-c", "true --password {PASSWORD} OPENAI_API_KEY={OPENAI}"])
            raise RuntimeError("rejected key {CODEFLASH} for " + os.environ["MY_SERVICE_TOKEN"])
            """
        )
    )
    headers = "Authorization,X-Api-Key"
    env = runner.env(
        MY_SERVICE_TOKEN=ENV_ONLY,
        OPENAI_API_KEY=OPENAI,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST=headers,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST=headers,
    )
    result = runner.run(
        "env",
        f"GITHUB_TOKEN={GITHUB}",
        PYTHON,
        str(client),
        "--api-key",
        OPENAI,
        f"--token={GITHUB}",
        CODEFLASH,
        env=env,
    )
    assert result.returncode == 1  # the planted RuntimeError
    _, trace = settled_trace(runner, lambda t: any(s.kind == 2 for s in t.spans))

    # the things that carried them were recorded (so the test can fail)...
    server = next(s for s in trace.spans if s.kind == 2)
    assert any(k.startswith("http.request.header.") for k in server.attributes)
    client_span = next(s for s in trace.spans if s.kind == 3 and s.name == "GET")
    assert any(k.startswith("http.request.header.") for k in client_span.attributes)
    assert any(e.name == "exception" for s in trace.spans for e in s.events)
    # ...and the secrets in them were not
    stored = b"".join(p.read_bytes() for p in runner.store.rglob("*") if p.is_file())
    for secret in SECRETS:
        assert secret.encode() not in stored, secret
    assert b"REDACTED" in stored
