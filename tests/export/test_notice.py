"""A run the background deliverer could not send is told to the user, once,
by the next otel-run that exports — on stderr, even with ``-q``."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from otel_run.export._notice import undelivered
from tests.conftest import Runner, Serve, wait_for_record


def _record(store: Path, *lines: dict[str, object]) -> None:
    with open(store / "export.jsonl", "a") as out:
        for line in lines:
            out.write(json.dumps(line) + "\n")


def test_the_notice_counts_each_run_whose_latest_attempt_failed_once(tmp_path: Path) -> None:
    store = tmp_path
    _record(
        store,
        {"run_id": "a" * 32, "ok": False, "endpoint": "http://c:4318/v1/traces", "error": "connection refused"},
        {"run_id": "b" * 32, "ok": False, "endpoint": "http://c:4318/v1/traces", "error": "timed out"},
        {"run_id": "b" * 32, "ok": True, "endpoint": "http://c:4318/v1/traces"},  # sent on a second try
    )
    assert undelivered(str(store)) == (
        "1 earlier run was not delivered to http://c:4318/v1/traces (connection refused); "
        "kept locally: otel-trace push --unpushed"
    )
    assert undelivered(str(store)) is None  # told once
    _record(store, {"run_id": "c" * 32, "ok": False, "error": "503"}, {"run_id": "d" * 32, "ok": False, "error": "503"})
    (store / "pushed").mkdir()
    (store / "pushed" / ("d" * 32)).touch()  # pushed by hand since
    assert undelivered(str(store)) == (
        "1 earlier run was not delivered to the collector (503); kept locally: otel-trace push --unpushed"
    )


def test_a_torn_last_line_waits_for_the_next_notice(tmp_path: Path) -> None:
    (tmp_path / "export.jsonl").write_text('{"run_id": "aaaa", "ok": false, "error": "refused"}\n{"run_id": "bb')
    assert undelivered(str(tmp_path)) is not None
    with open(tmp_path / "export.jsonl", "a") as out:
        out.write('bb", "ok": false, "error": "refused"}\n')
    assert "1 earlier run was not delivered" in (undelivered(str(tmp_path)) or "")


def test_the_next_run_says_the_last_one_was_not_delivered_even_quiet(runner: Runner, tmp_path: Path) -> None:
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
        env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_RUN_EXPORT_TIMEOUT="1")
        first = runner.run("true", env=env)
        wait_for_record(runner.store, [runner.last()[0].run_id])
        second = runner.run("echo", "out", env=env)
    assert first.returncode == 0 and first.stderr == b""
    assert second.returncode == 0 and second.stdout == b"out\n"
    [line] = second.stderr.decode().splitlines()
    assert line.startswith(f"otel-run: 1 earlier run was not delivered to {endpoint}")
    assert line.count(endpoint) == 1
    assert line.endswith("kept locally: otel-trace push --unpushed")


def test_a_run_pushed_since_is_not_told(runner: Runner, tmp_path: Path) -> None:
    home = Serve(tmp_path / "home").start()
    try:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed.getsockname()[1]}")
            runner.run("true", env=env)
            wait_for_record(runner.store, [runner.last()[0].run_id])
        assert runner.trace_cli("push", "--unpushed", "--endpoint", home.endpoint).returncode == 0
        later = runner.run("true", env=runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=home.endpoint))
    finally:
        home.stop()
    assert later.stderr == b""
