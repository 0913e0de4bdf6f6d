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


@pytest.fixture
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """No secret learned yet, and no environment seen."""
    monkeypatch.setattr(_redact, "_known_secrets", [])
    monkeypatch.setattr(_redact, "_seen_environment", {})
    monkeypatch.setattr(_redact, "_text_cache", {})


def test_remembered_environment_values(fresh_memory: None) -> None:
    _redact.remember_environment({"MY_SERVICE_TOKEN": "opaque-value-77", "HOME": "/root", "SHORT_KEY": "abc"})
    assert redact_text("failed for opaque-value-77 at /root") == f"failed for {REDACTED} at /root"
    assert redact_text("abc is fine") == "abc is fine"


# ------------------------------------------------------- the forms CI uses (issue 12)

J = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJlLXZhbHVlLTEyMzQ"
PW = "hunter2-Zq9"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["mysql", "-uroot", f"-p{PW}", "app"], ["mysql", "-uroot", f"-p{REDACTED}", "app"]),
        (["mysql", "-u", "root", "-p", PW, "app"], ["mysql", "-u", "root", "-p", REDACTED, "app"]),
        (["/usr/bin/mysqldump", f"-p{PW}"], ["/usr/bin/mysqldump", f"-p{REDACTED}"]),
        (["mongosh", "-u", "admin", "-p", PW], ["mongosh", "-u", "admin", "-p", REDACTED]),
        (["redis-cli", "-a", PW, "ping"], ["redis-cli", "-a", REDACTED, "ping"]),
        (["redis-cli", "--pass", PW], ["redis-cli", "--pass", REDACTED]),
        (["curl", "-u", f"ci:{PW}", "https://h/"], ["curl", "-u", f"ci:{REDACTED}", "https://h/"]),
        (["curl", f"-uci:{PW}", "https://h/"], ["curl", f"-uci:{REDACTED}", "https://h/"]),
        (["curl", "--user", f"ci:{PW}"], ["curl", "--user", f"ci:{REDACTED}"]),
        (["docker", "login", "-u", "ci", "-p", PW, "reg"], ["docker", "login", "-u", "ci", "-p", REDACTED, "reg"]),
        (["helm", "registry", "login", "r", f"-p{PW}"], ["helm", "registry", "login", "r", f"-p{REDACTED}"]),
        (["az", "login", "-u", "app", "-p", PW], ["az", "login", "-u", "app", "-p", REDACTED]),
        (["twine", "upload", "-p", PW, "dist/x.whl"], ["twine", "upload", "-p", REDACTED, "dist/x.whl"]),
        (["gh", "secret", "set", "TOKEN_NAME", "-b", PW], ["gh", "secret", "set", "TOKEN_NAME", "-b", REDACTED]),
        (["openssl", "enc", "-passout", f"pass:{PW}"], ["openssl", "enc", "-passout", REDACTED]),
        (
            ["npm", "config", "set", "//r.example/:_authToken", PW],
            ["npm", "config", "set", "//r.example/:_authToken", REDACTED],
        ),
        (
            ["aws", "configure", "set", "aws_secret_access_key", PW],
            ["aws", "configure", "set", "aws_secret_access_key", REDACTED],
        ),
        (
            ["kubectl", "exec", "db-0", "--", "mysql", f"-p{PW}"],
            ["kubectl", "exec", "db-0", "--", "mysql", f"-p{REDACTED}"],
        ),
        (["sshpass", "-p", PW, "ssh", "-p", "22", "h"], ["sshpass", "-p", REDACTED, "ssh", "-p", "22", "h"]),
        (["deploy", J], ["deploy", REDACTED]),
    ],
)
def test_password_options_of_common_tools(args: list[str], expected: list[str]) -> None:
    assert redact_args(args) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"mysql -uroot -p{PW} app && echo ok", f"mysql -uroot -p{REDACTED} app && echo ok"),
        (f"mysql -p '{PW}' app", f"mysql -p '{REDACTED}' app"),
        (f"curl -s -u 'ci:{PW}' https://h/", f"curl -s -u 'ci:{REDACTED}' https://h/"),
        (
            f"docker login -u ci -p {PW} reg; docker run -p 80:80 img",
            f"docker login -u ci -p {REDACTED} reg; docker run -p 80:80 img",
        ),
        (f"redis-cli -a {PW}\nssh -a host", f"redis-cli -a {REDACTED}\nssh -a host"),
    ],
)
def test_password_options_inside_a_script(text: str, expected: str) -> None:
    assert redact_text(text) == expected.replace("\\n", "\n")


@pytest.mark.parametrize(
    "key",
    [
        J,
        "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6",
        "AKIA" + "ZQ7RT2VK4XW9PL3M",
        "ASIA" + "ZQ7RT2VK4XW9PL3M",
        "ghp_" + "Q1w2E3r4T5y6U7i8O9p0Aa1s2D3f4G5h6J7k",
        "gho_" + "Q1w2E3r4T5y6U7i8O9p0Aa1s2D3f4G5h6J7k",
        "ghs_" + "Q1w2E3r4T5y6U7i8O9p0Aa1s2D3f4G5h6J7k",
        "github_pat_11ABCDEFG0" + "Q1w2E3r4T5y6U7i8O9p0_Aa1s2D3f4G5h6J7k",
        "glpat-" + "Q1w2E3r4T5y6U7i8O9p0",
        "xoxb-1234567890-" + "Q1w2E3r4T5y6U7i8O9p0",
        "sk_live_" + "Q1w2E3r4T5y6U7i8O9p0Aa1s",
        "sk-proj-" + "Q1w2E3r4T5y6U7i8O9p0Aa1s2D3f4G5h6J7k",
        "npm_" + "Q1w2E3r4T5y6U7i8O9p0Aa1s2D3f4G5h6J7k",
        "pypi-AgEIcHlwaS5vcmc" + "Q1w2E3r4T5y6U7i8O9p0Aa1s2D3f4G5h6J7k",
        "hf_" + "Q1w2E3r4T5y6U7i8O9p0Aa1s2D3f4G5h6J",
        "ya29.a0" + "Q1w2E3r4T5y6U7i8O9p0Aa1s2D3f4G5h6J7k",
    ],
)
def test_key_shapes_as_positional_arguments(key: str) -> None:
    assert redact_args(["tool", key]) == ["tool", REDACTED]
    assert redact_text(f"got {key}, retrying") == f"got {REDACTED}, retrying"


def test_private_key_blocks() -> None:
    # made up, and assembled here so that no secret scanner mistakes the test for a leaked key
    begin, end = "-----BEGIN RSA " + "PRIVATE KEY-----", "-----END RSA " + "PRIVATE KEY-----"
    block = begin + "\nnot-a-real-key-0123456789\nabcdefghijkl\n" + end
    assert redact_text("loaded " + block) == f"loaded {begin}{REDACTED}{end}"
    begin = "-----BEGIN OPENSSH " + "PRIVATE KEY-----"
    cut = begin + "\nnot-a-real-key-truncated"  # truncated: the rest is hidden
    assert redact_text(cut) == f"{begin}{REDACTED}"
    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert redact_text(cert) == cert


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.slack.com/services/T0/B0/XyZ123abc", f"https://hooks.slack.com/services/{REDACTED}"),
        ("https://discord.com/api/webhooks/1122/AbC-dEf_123", f"https://discord.com/api/webhooks/{REDACTED}"),
        ("https://ptb.discord.com/api/webhooks/1122/AbC", f"https://ptb.discord.com/api/webhooks/{REDACTED}"),
        (
            "https://acme.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d",
            f"https://acme.webhook.office.com/{REDACTED}",
        ),
        (
            "https://outlook.office.com/webhook/abc/IncomingWebhook/d/e",
            f"https://outlook.office.com/webhook/{REDACTED}",
        ),
        (
            "https://api.telegram.org/bot123:AAHk/sendMessage?chat_id=1",
            f"https://api.telegram.org/bot{REDACTED}?chat_id=1",
        ),
        ("https://slack.com/api/chat.postMessage", "https://slack.com/api/chat.postMessage"),
        ("https://discord.com/channels/1/2", "https://discord.com/channels/1/2"),
    ],
)
def test_webhook_url_paths(url: str, expected: str) -> None:
    assert redact_text(f"curl -d x {url}") == f"curl -d x {expected}"


@pytest.mark.parametrize(
    "name",
    [
        *("DB_PASS", "REDIS_PASS", "MYSQL_PWD", "PGPASSWORD", "SESSION", "DJANGO_SESSION", "sessionid", "COOKIE"),
        *("GH_PAT", "CI_JOB_JWT", "AccountKey", "SharedAccessKey", "--oauth2-bearer", "--pass", "AWS_SESSION_TOKEN"),
    ],
)
def test_credential_names_ci_uses(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        *("PWD", "OLDPWD", "XDG_SESSION_TYPE", "DBUS_SESSION_BUS_ADDRESS", "SESSION_MANAGER", "DESKTOP_SESSION"),
        *("session.id", "SSH_AUTH_SOCK", "bypass", "compass_dir", "path", "url.path", "patch"),
    ],
)
def test_names_that_only_look_like_credentials(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "args",
    [
        ["psql", "-h", "db", "-p", "5432", "-U", "app"],
        ["ssh", "-p", "2222", "host"],
        ["docker", "run", "-p", "8080:80", "nginx"],
        ["redis-cli", "-p", "6379", "ping"],
        ["pytest", "-p", "no:cacheprovider", "-k", "token and not slow"],
        ["curl", "-u", "alice", "https://example.com/"],
        ["mysql", "-p", "-h", "dbhost", "app"],
        ["docker", "login", "--password-stdin", "-u", "ci", "ghcr.io"],
        ["git", "checkout", "0123456789abcdef0123456789abcdef01234567"],
        ["echo", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f"],
        ["sha256sum", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
        ["pip", "install", "pypi-simple-index-mirror-with-a-long-name", "scikit-learn"],
        ["python", "-c", "from huggingface_hub import hf_hub_download_with_progress_bars"],
        ["env", "npm_config_cache_directory_of_the_current_user=/tmp/npm"],
        ["aws", "configure", "set", "region", "eu-west-1"],
        ["kubectl", "config", "set-credentials", "ci", "--username=ci"],
        ["git", "commit", "-m", "fix: mysql -p prompt and the curl -u flag docs"],
    ],
)
def test_must_not_redact(args: list[str]) -> None:
    assert redact_args(args) == args
    assert redact_text(" ".join(args)) == " ".join(args)


def test_environment_learning_is_incremental_and_reads_urls_and_headers(fresh_memory: None) -> None:
    environ = {"HOME": "/root", "PWD": "/work/project", "DB_PASS": "Zq9-db-pass"}
    assert _redact.remember_environment(environ) is True
    assert _redact.remember_environment(environ) is False  # nothing new: caches stay
    assert _redact.remember_environment({**environ, "CHILD_SECRET": "Zq9-for-the-child"}) is True
    _redact.remember_environment(
        {
            "DATABASE_URL": "postgres://app:Zq9-url-pass@db/app",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme,Authorization=Bearer%20Zq9-header-token",
        }
    )
    text = "mysql Zq9-db-pass Zq9-for-the-child Zq9-url-pass Zq9-header-token in /work/project"
    assert redact_text(text) == f"mysql {REDACTED} {REDACTED} {REDACTED} {REDACTED} in /work/project"
    assert redact_text("tenant acme") == "tenant acme"
