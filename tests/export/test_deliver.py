"""otel-run hands the export to a detached background deliverer.

Real processes only: otel-run, the deliverer it starts, ``otel-trace serve``
as the collector, and for a dead endpoint a closed port or a socket that
accepts connections and never answers. Every wait is for something to happen
(a record line, spans at the receiver), never a claim about how fast.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_run.export._outbox import try_lock
from otel_run.store._store import Store
from tests.conftest import OTEL_RUN, PYTHON, Runner, Serve, delivery_record, wait_for, wait_for_record

_TREE = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass']); subprocess.run(['true']); sys.exit(3)"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Serve]:
    """A live receiver writing into a second store."""
    server = Serve(tmp_path / "home").start()
    yield server
    server.stop()


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake)
    and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield int(sock.getsockname()[1])
    sock.close()


def _arrived(serve: Serve, trace_id: str) -> set[str]:
    return set(Store(str(serve.store)).load_trace(trace_id).by_id)


def _deliverers(store: Path, spares: bool = False) -> list[int]:
    """Pids of live deliverers working on ``store`` (or, with ``spares``, of
    the ``/bin/sh`` deliverers-to-be otel-run forks while the command runs)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or (argv[0] == b"/bin/sh") != spares:
            continue
        if any(b"otel_run.export._deliver" in a for a in argv) and str(store).encode() in argv:
            found.append(int(entry))
    return found


def _one_deliverer(store: Path) -> int:
    found: list[int] = []

    def look() -> bool:
        found[:] = _deliverers(store)
        return bool(found)

    wait_for(look, 60, "the deliverer")
    assert len(found) == 1, found
    return found[0]


def _descriptors(pid: int) -> dict[int, str]:
    """What ``pid``'s descriptors point to (one it closes meanwhile, e.g. the
    directory of a listdir, is left out)."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
    return out


def _take(lock: Path) -> int:
    """Take a deliverer's lock (waiting while a deliverer still holds it)."""
    held: list[int] = []

    def attempt() -> bool:
        fd = try_lock(str(lock))
        if fd is not None:
            held.append(fd)
        return bool(held)

    wait_for(attempt, 60, "the deliverer's lock")
    return held[0]


def test_live_receiver_gets_every_span_and_the_run_is_marked(runner: Runner, home: Serve) -> None:
    env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=home.endpoint)
    result = runner.run("sh", "-c", f'{PYTHON} -c "{_TREE}"', env=env, quiet=False)
    assert result.returncode == 3, result.stderr  # the command's exit status, as without export
    run, trace = runner.last()
    assert f"{len(trace.spans)} spans of run {run.run_id[:8]} handed to the OTLP deliverer".encode() in result.stderr
    assert b"export.jsonl" in result.stderr

    wait_for(lambda: _arrived(home, run.trace_id) >= set(trace.by_id), 60, "every span at the receiver")
    assert _arrived(home, run.trace_id) == set(trace.by_id)
    line = wait_for_record(runner.store, [run.run_id])[run.run_id]
    assert line["ok"] is True and line["spans"] == len(trace.spans) and line["via"] == "deliverer", line
    assert line["trace_id"] == run.trace_id and str(home.port) in line["endpoint"]
    assert (runner.store / "pushed" / run.run_id).exists()
    assert not [e for box in (runner.store / "outbox").iterdir() if box.is_dir() for e in box.iterdir()]


@pytest.mark.parametrize("dead", ["closed-port", "accepts-never-answers"])
def test_dead_endpoint_loses_nothing_and_push_delivers_later(
    runner: Runner, home: Serve, silent: int, dead: str
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1] if dead == "closed-port" else silent
        env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}", OTEL_RUN_EXPORT_TIMEOUT="1")
        result = runner.run("sh", "-c", f'{PYTHON} -c "{_TREE}"', env=env)
        line = wait_for_record(runner.store, [runner.last()[0].run_id])  # the deliverer tried while it was closed
    assert result.returncode == 3
    run, trace = runner.last()
    line = line[run.run_id]
    assert line["ok"] is False and line["error"] and f"127.0.0.1:{port}" in line["endpoint"], line
    assert not (runner.store / "pushed" / run.run_id).exists()

    pushed = runner.trace_cli("push", "--unpushed", "--endpoint", home.endpoint)
    assert pushed.returncode == 0 and "1 of 1 runs sent" in pushed.stderr, pushed.stderr
    assert _arrived(home, run.trace_id) == set(trace.by_id)  # every stored span, none lost
    assert len(trace.spans) > 4
    assert (runner.store / "pushed" / run.run_id).exists()
    assert [x["via"] for x in delivery_record(runner.store)] == ["deliverer", "otel-trace push"]


def test_a_series_hands_off_once_after_its_last_run(runner: Runner, home: Serve) -> None:
    env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=home.endpoint)
    result = runner.run("--runs", "3", "-l", "s", PYTHON, "-c", "pass", env=env)
    assert result.returncode == 0, result.stderr
    assert b"6 spans of 3 runs handed to the OTLP deliverer" in result.stderr, result.stderr
    runs = [r for r in Store(str(runner.store)).runs() if r.label == "s"]
    assert len(runs) == 3
    lines = wait_for_record(runner.store, [r.run_id for r in runs])
    assert all(line["ok"] for line in lines.values()), lines
    assert len({line["pid"] for line in lines.values()}) == 1  # one deliverer for the series
    for run in runs:
        assert _arrived(home, run.trace_id) == set(Store(str(runner.store)).load_trace(run.trace_id).by_id)
        assert (runner.store / "pushed" / run.run_id).exists()


def test_runs_handed_off_while_a_deliverer_works_go_to_that_deliverer(runner: Runner, home: Serve) -> None:
    """The outbox protocol: while the lock is held, otel-run only leaves the run
    in the outbox; the next deliverer takes everything that waits there."""
    env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=home.endpoint)
    assert runner.run(PYTHON, "-c", "pass", env=env).returncode == 0
    first = runner.last()[0]
    wait_for_record(runner.store, [first.run_id])
    [lock] = [p for p in (runner.store / "outbox").iterdir() if p.suffix == ".lock"]
    held = _take(lock)  # this test is "the deliverer at work" now
    try:
        for _ in range(2):
            assert runner.run(PYTHON, "-c", "pass", env=env).returncode == 0
        waiting = sorted(os.listdir(lock.with_suffix("")))
        assert len(waiting) == 2 and not _deliverers(runner.store)
        wait_for(lambda: not _deliverers(runner.store, spares=True), 60, "the dismissed spares to exit")
    finally:
        os.close(held)
    assert runner.run(PYTHON, "-c", "pass", env=env).returncode == 0
    later = [r.run_id for r in Store(str(runner.store)).runs()[1:]]
    assert sorted(waiting) == sorted(later[:2])
    lines = wait_for_record(runner.store, later)
    assert all(line["ok"] for line in lines.values()) and len({line["pid"] for line in lines.values()}) == 1


def test_the_deliverer_is_detached_and_idle(runner: Runner, silent: int) -> None:
    """Nobody waits for it: otel-run's caller gets EOF on every pipe it passed
    down (stdout, stderr, any other descriptor) while the deliverer still
    works; it leads its own session (no Ctrl-C or SIGHUP from the terminal) and
    runs at SCHED_IDLE."""
    env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{silent}", OTEL_RUN_EXPORT_TIMEOUT="60")
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run(
            [OTEL_RUN, "-q", PYTHON, "-c", "pass"], env=env, capture_output=True, pass_fds=(write_end,), timeout=120
        )  # returns once stdout and stderr are closed by every process holding them
        assert result.returncode == 0, result.stderr
        os.close(write_end)
        pid = _one_deliverer(runner.store)
        try:
            os.set_blocking(read_end, False)
            assert os.read(read_end, 1) == b""  # EOF: no process holds the write end any more
            fds = _descriptors(pid)
            assert [fds[0], fds[1], fds[2]] == [os.devnull] * 3, fds
            assert not [t for t in fds.values() if t.startswith("pipe:")], fds
            assert os.getsid(pid) == pid != os.getsid(0)
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        finally:
            os.kill(pid, signal.SIGTERM)
    finally:
        os.close(read_end)


def test_the_deliverer_leaves_a_deleted_store_deleted(runner: Runner, silent: int) -> None:
    env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{silent}", OTEL_RUN_EXPORT_TIMEOUT="1")
    assert runner.run(PYTHON, "-c", "pass", env=env).returncode == 0
    _one_deliverer(runner.store)
    shutil.rmtree(runner.store)
    wait_for(lambda: not _deliverers(runner.store), 60, "the deliverer to exit")
    assert not runner.store.exists()


def test_export_without_an_endpoint_says_so_and_starts_nothing(runner: Runner) -> None:
    result = runner.run("--export", PYTHON, "-c", "pass", quiet=False)
    assert result.returncode == 0
    run, _ = runner.last()
    assert (
        f"not sent (no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT or pass --endpoint); kept locally: otel-trace push {run.run_id[:8]}".encode()
        in result.stderr
    )
    assert not (runner.store / "outbox").exists()
