from __future__ import annotations

import pytest

from otel_run import _redact
from otel_run._redact import REDACTED, is_secret_name, redact_args, redact_text, redact_value

KEY = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0" * 2


@pytest.mark.parametrize(
    "name",
    [
        "OPENAI_API_KEY",
        "x-api-key",
        "--api-key",
        "GITHUB_TOKEN",
        "AUTH_TOKEN",
        "x-auth-token",
        "Authorization",
        "http.request.header.authorization",
        "DB_PASSWORD",
        "client_secret",
        "AWS_SECRET_ACCESS_KEY",
        "Cookie",
        "api_key",
        "apikey",
        "access_token",
        "CODEFLASH_API_KEY",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "max_tokens",
        "gen_ai.usage.input_tokens",
        "monkey",
        "author",
        "PATH",
        "HOME",
        "keyboard_layout",
        "tokenizer",
        "http.request.method",
        "process.command_args",
        "TRACEPARENT",
    ],
)
def test_harmless_names(name: str) -> None:
    assert not is_secret_name(name)


def test_key_shapes_anywhere_in_text() -> None:
    text = f"python -c \"client = OpenAI(api_key='{KEY}')\" cf-{'x1' * 12} ghp_{'Ab3' * 8}"
    out = redact_text(text)
    assert KEY not in out and "cf-x1x1" not in out and "ghp_Ab3" not in out
    assert out.count(REDACTED) >= 3
    # words that merely contain a prefix stay
    assert redact_text("the task-list and disk-free values") == "the task-list and disk-free values"


def test_args_flags_and_assignments() -> None:
    args = ["tool", "--api-key", "plainvalue123", "--token=abc123def", "-v", "OPENAI_API_KEY=whatever12", "positional"]
    assert redact_args(args) == [
        "tool",
        "--api-key",
        REDACTED,
        f"--token={REDACTED}",
        "-v",
        f"OPENAI_API_KEY={REDACTED}",
        "positional",
    ]


def test_headers_bearer_and_flags_in_text() -> None:
    assert redact_text("Authorization: Bearer abc.def.ghi") == f"Authorization: {REDACTED}"
    assert redact_text("curl -H 'X-Api-Key: 1234567890' url") == f"curl -H 'X-Api-Key: {REDACTED}' url"
    assert redact_text("run --password hunter22 --verbose") == f"run --password {REDACTED} --verbose"
    assert redact_text("sent bearer tok3n-123456 upstream") == f"sent bearer {REDACTED} upstream"
    assert redact_text('{"api_key": "v4lue-123", "model": "gpt"}') == f'{{"api_key": "{REDACTED}", "model": "gpt"}}'


def test_urls() -> None:
    url = "https://bob:pa55word@example.com:8443/p/a?ms=1&api_key=s3cr3t&Signature=xyz&keep=yes#frag"
    assert redact_text(url) == (
        f"https://REDACTED:REDACTED@example.com:8443/p/a?ms=1&api_key={REDACTED}&Signature={REDACTED}&keep=yes#frag"
    )
    assert redact_text("see http://example.com/path ok") == "see http://example.com/path ok"


def test_value_by_key() -> None:
    assert redact_value("http.request.header.authorization", "Basic Zm9vOmJhcg==") == REDACTED
    assert redact_value("url.full", f"http://h/x?token={KEY}") == f"http://h/x?token={REDACTED}"
    assert redact_value("gen_ai.request.model", "gpt-4o") == "gpt-4o"


def test_remembered_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_redact, "_known_secrets", [])
    _redact.remember_environment({"MY_SERVICE_TOKEN": "opaque-value-77", "HOME": "/root", "SHORT_KEY": "abc"})
    assert redact_text("failed for opaque-value-77 at /root") == f"failed for {REDACTED} at /root"
    assert redact_text("abc is fine") == "abc is fine"
