"""The store survives what happens to real runs: a full disk, a torn line,
SIGKILL of a traced process mid-burst and of otel-run itself, any umask.

Real parts only: a real tmpfs (root mounts it; the tests skip otherwise), real
otel-run and otel-trace processes, real SIGKILL, a real receiver."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_run._wire import SpanWriter
from otel_run.store._store import Store, load_trace_file
from tests.conftest import OTEL_RUN, PYTHON, Runner, Serve, clean_env, wait_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"

# A traced program that ends spans in three batches, each flushed to the store,
# and waits for a line on stdin between them (the test fills and frees the disk).
BATCHES = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace
    tracer = trace.get_tracer("batches")
    for batch in range(3):
        if batch:
            sys.stdin.readline()
        for i in range(200):
            with tracer.start_as_current_span(f"batch {batch} span {i}") as span:
                span.set_attribute("payload", "x" * 200)
        trace.get_tracer_provider().force_flush()
        print(f"flushed {batch}", flush=True)
    """
)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (run the tests as root)")
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int) -> Path:
    """Fill the tmpfs but for about ``leave`` bytes; the filler file's path."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096) == 4096:
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


# ------------------------------------------------------------------ full disk


def test_a_full_disk_mid_run_costs_only_the_batch_it_cut(tmpfs: Path, tmp_path: Path) -> None:
    """Issue 12: a full disk mid-run left a torn line, and every reader then
    failed with "corrupt trace data" on the 400 good records around it."""
    store = tmpfs / "store"
    env = clean_env(OTEL_RUN_STORE=str(store))
    proc = subprocess.Popen(
        [OTEL_RUN, "-q", PYTHON, "-c", BATCHES],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == b"flushed 0\n"
        wait_for(lambda: bool(Store(str(store)).runs()), what="the run's index line")
        filler = fill(tmpfs, leave=16 << 10)  # a batch is ~100 KiB: its write is cut short
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"flushed 1\n"
        filler.unlink()
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        assert proc.stdout.readline() == b"flushed 2\n"
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    runner = Runner(store)
    run, trace = runner.last()
    assert run.finished
    names = [s.name for s in trace.spans]
    assert sum(n.startswith("batch 0 ") for n in names) == 200
    assert sum(n.startswith("batch 2 ") for n in names) == 200
    assert sum(n.startswith("batch 1 ") for n in names) < 200  # the one the full disk cut
    (warning,) = trace.warnings
    assert "damaged line skipped" in warning and "1 record skipped" in warning
    for args in (("show",), ("show", "--format", "json"), ("export",), ("export", "--format", "chrome")):
        result = runner.trace_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr and "corrupt" not in result.stderr
    assert "damaged line skipped" in runner.trace_cli("export").stderr


def test_the_writer_raises_on_a_full_disk_and_the_next_record_is_whole(tmpfs: Path) -> None:
    writer = SpanWriter(str(tmpfs / "store"))
    good = request("before")
    writer.write(TRACE, good)
    filler = fill(tmpfs, leave=8 << 10)
    big = request("cut", size=64 << 10)
    with pytest.raises(OSError) as info:
        writer.write(TRACE, big)
    assert info.value.errno == 28  # ENOSPC: the caller knows the record is not stored
    filler.unlink()
    writer.write(TRACE, request("after"))
    trace = load_trace_file(writer.path(TRACE), TRACE)
    assert sorted(s.name for s in trace.spans) == ["after", "before"]
    assert len(trace.warnings) == 1 and ":2: damaged line skipped" in trace.warnings[0]


# ---------------------------------------------------------------- torn lines


def test_readers_skip_a_torn_line_and_read_the_rest(runner: Runner, tmp_path: Path) -> None:
    """Issue 12: show, export, push and span-diff all failed on one torn line."""
    for label in ("before", "before", "after", "after"):
        assert runner.run("-l", label, PYTHON, "-c", "pass").returncode == 0
    store = Store(str(runner.store))
    victim = store.runs()[0]
    path = Path(store.trace_path(victim.trace_id))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + b"\n"  # a record cut short, the records after it whole
    path.write_bytes(b"".join(lines))
    where = f"{path}:3: damaged line skipped"

    show = runner.trace_cli("show", victim.run_id, "--format", "json")
    assert show.returncode == 0, show.stderr
    assert any(where in w for w in json.loads(show.stdout)["warnings"])
    assert runner.trace_cli("show", victim.run_id).returncode == 0
    export = runner.trace_cli("export", victim.run_id)
    assert export.returncode == 0 and where in export.stderr
    assert len(json.loads(export.stdout)["resourceSpans"]) >= 2
    serve = Serve(tmp_path / "received").start()
    try:
        push = runner.trace_cli("push", victim.run_id, "--endpoint", serve.endpoint)
    finally:
        serve.stop()
    assert push.returncode == 0 and where in push.stderr, push.stderr
    diff = subprocess.run(
        [str(Path(OTEL_RUN).parent / "span-diff"), "before", "after", "--format", "json"],
        env=runner.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert diff.returncode == 0, diff.stderr
    assert any(where in w for w in json.loads(diff.stdout)["warnings"])


def test_a_torn_index_line_hides_no_run(runner: Runner) -> None:
    assert runner.run(PYTHON, "-c", "pass").returncode == 0
    index = runner.store / "index.jsonl"
    with open(index, "ab") as f:
        f.write(b'{"event":"start","run_id":"deadbeef')  # an otel-run killed mid-write
    assert runner.run(PYTHON, "-c", "pass").returncode == 0
    listed = runner.trace_cli("list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 2
    assert f"{index}:3: damaged line skipped" in listed.stderr


# ------------------------------------------------------------------- SIGKILL


def test_an_api_parent_open_at_sigkill_is_unfinished_and_its_children_not_orphans(runner: Runner) -> None:
    """Issue 12: a SIGKILL during a burst of API spans lost the open parent in
    4 of 4 tries, so every child was an orphan."""
    code = textwrap.dedent(
        """
        import os, time
        from opentelemetry import trace
        tracer = trace.get_tracer("burst")
        with tracer.start_as_current_span("parent"):
            for i in range(300):
                with tracer.start_as_current_span(f"child {i}"):
                    pass
            print(os.getpid(), flush=True)
            time.sleep(600)
        """
    )
    proc = subprocess.Popen([OTEL_RUN, "-q", PYTHON, "-c", code], env=runner.env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        pid = int(proc.stdout.readline())

        def children_on_disk() -> bool:
            _, trace = runner.last()
            return sum(s.name.startswith("child ") for s in trace.spans) == 300

        wait_for(children_on_disk, what="the ended spans, flushed by the timer")
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=120) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, trace = runner.last()
    parent = next(s for s in trace.spans if s.name == "parent")
    assert parent.unfinished and parent.status_code == 2
    children = [s for s in trace.spans if s.name.startswith("child ")]
    assert len(children) == 300 and all(s.parent is parent for s in children)
    assert parent.end_ns >= max(s.end_ns for s in children)
    assert runner.trace_cli("show").returncode == 0


def test_a_killed_otel_run_leaves_a_run_ended_at_its_last_record(runner: Runner) -> None:
    """Issue 12: SIGKILL of otel-run left a non-Python child as a gap (root
    only, 0 processes) and the run at "running?" forever."""
    grandchild = f"{PYTHON} -c 'import os, time; print(os.getpid(), flush=True); time.sleep(600)'"
    proc = subprocess.Popen(
        [OTEL_RUN, "-q", "sh", "-c", f"{grandchild}; true"], env=runner.env(), stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    try:

        def recorded() -> bool:
            runs = Store(str(runner.store)).runs()
            return bool(runs) and len(runner.last()[1].spans) >= 3  # root, sh, python

        wait_for(recorded, what="the run's first records")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=120) == -signal.SIGKILL
        listed = json.loads(runner.trace_cli("list", "--format", "json").stdout)
        (run,) = listed
        assert run["died"] and not run["finished"] and run["wall_ms"] is not None
        assert "died" in runner.trace_cli("list").stdout
        shown = runner.trace_cli("show", "--format", "json")
        assert shown.returncode == 0, shown.stderr
        _, trace = runner.last()
        sh = next(s for s in trace.spans if s.is_process and s.name.startswith("sh "))
        python = next(s for s in trace.spans if s.is_process and s.attributes.get("process.pid") == pid)
        assert sh.unfinished and sh.seen_from_outside and python.parent is sh
        assert sh.parent is not None and sh.parent.span_id == run["root_span_id"]
    finally:
        os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------- privacy


@pytest.mark.parametrize("umask", ["000", "022", "077"])
def test_the_store_is_private_whatever_the_umask(runner: Runner, tmp_path: Path, umask: str) -> None:
    serve = Serve(tmp_path / "received").start()
    try:
        env = runner.env(OTEL_EXPORTER_OTLP_ENDPOINT=serve.endpoint)
        command = f'umask {umask} && exec "$@"'
        done = subprocess.run(
            ["sh", "-c", command, "sh", OTEL_RUN, "-q", PYTHON, "-c", "pass"], env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        pushed = subprocess.run(
            ["sh", "-c", command, "sh", str(Path(OTEL_RUN).parent / "otel-trace"), "push", "--unpushed"],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert pushed.returncode == 0, pushed.stderr
    finally:
        serve.stop()
    made = {p.relative_to(runner.store).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in runner.store.rglob("*")}
    made["."] = stat.S_IMODE(runner.store.stat().st_mode)
    assert {"index.jsonl", "traces", "export.jsonl", "pushed", "outbox"} <= set(made)
    wrong = {
        name: oct(mode) for name, mode in made.items() if mode != (0o700 if (runner.store / name).is_dir() else 0o600)
    }
    assert not wrong, wrong


# ------------------------------------------------------------------- helpers


def request(name: str, size: int = 0) -> str:
    attributes = [{"key": "payload", "value": {"stringValue": "x" * size}}] if size else []
    span = {
        "traceId": TRACE,
        "spanId": os.urandom(8).hex(),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
        "attributes": attributes,
    }
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": [span]}]}]})
