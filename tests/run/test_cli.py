"""otel-run end to end: real processes, real signals, the real store."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from otel_run._errors import UsageError
from otel_run.run._cli import parse_args
from otel_run.store._store import StoreError
from tests.conftest import OTEL_RUN, PYTHON, PYTHON_NAME, WAKEUP_FD, Runner, clean_env, one, wait_for

GRANDCHILD = "import os; print('grandchild', os.getpid())"


def _child_script(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import subprocess, sys
            subprocess.run([sys.executable, "-c", {GRANDCHILD!r}], check=True)
            """
        )
    )
    return script


def test_shell_python_python_is_one_trace_with_correct_parents(runner: Runner, tmp_path: Path) -> None:
    script = _child_script(tmp_path)
    result = runner.run("sh", "-c", f"echo from-sh; {PYTHON} {script}; true")
    assert result.returncode == 0, result.stderr
    run, trace = runner.last()

    assert {s.trace_id for s in trace.spans} == {run.trace_id}
    root = trace.by_id[run.root_span_id]
    assert root.parent_id is None and root.is_run
    sh = one(trace, lambda s: s.is_process and s.name.startswith("sh -c"))
    child = one(trace, lambda s: s.is_process and s.name.startswith("child.py"))
    call = one(trace, lambda s: s.name == "subprocess python" or s.name.startswith("subprocess python"))
    grandchild = one(trace, lambda s: s.is_process and "grandchild" in s.name)

    assert sh.parent_id == root.span_id
    assert child.parent_id == sh.span_id
    assert call.parent_id == child.span_id
    assert grandchild.parent_id == call.span_id
    for span in (sh, child, grandchild):
        assert span.attributes["process.exit.code"] == 0
        assert not span.unfinished
        assert span.start_ns <= span.end_ns
    # a process span starts when it was spawned: before the interpreter was up
    started = next(e.time_ns for e in grandchild.events if e.name == "python.started")
    assert grandchild.start_ns < started <= grandchild.end_ns
    assert child.attributes["process.parent_pid"] == sh.attributes["process.pid"]
    assert grandchild.attributes["process.parent_pid"] == child.attributes["process.pid"]
    assert isinstance(sh.attributes["otel_run.process.max_rss.tree"], int)  # seen from outside only
    assert "otel_run.process.cpu.tree.user" in sh.attributes
    assert "otel_run.process.cpu.user" not in sh.attributes
    assert run.exit_code == 0 and run.finished


@pytest.mark.parametrize("code", [0, 1, 7])
def test_exit_codes_pass_through(runner: Runner, code: int) -> None:
    result = runner.run(PYTHON, "-c", f"import sys; sys.exit({code})")
    assert result.returncode == code
    run, trace = runner.last()
    assert run.exit_code == code
    process = one(trace, lambda s: s.is_process)
    assert process.attributes["process.exit.code"] == code
    assert (process.status_code == 2) == (code != 0)


def test_non_python_exit_code_and_rusage(runner: Runner) -> None:
    result = runner.run("sh", "-c", "exit 7")
    assert result.returncode == 7
    _, trace = runner.last()
    sh = one(trace, lambda s: s.is_process)
    assert sh.attributes["process.exit.code"] == 7
    assert sh.status_message == "exit code 7"
    assert sh.attributes["otel_run.process.max_rss.tree"] > 0


def test_a_command_killed_by_sigkill_kills_otel_run_by_sigkill_and_the_span_records_it(runner: Runner) -> None:
    result = runner.run(PYTHON, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert result.returncode == -signal.SIGKILL  # as bare: the caller sees the signal, not 128+N
    run, trace = runner.last()
    process = one(trace, lambda s: s.is_process)
    assert process.attributes["otel_run.process.signal"] == "SIGKILL"
    assert process.status_code == 2 and "SIGKILL" in process.status_message
    assert not process.unfinished
    assert trace.by_id[run.root_span_id].attributes["process.exit.code"] == 137


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_sent_to_otel_run_reach_the_child(runner: Runner, tmp_path: Path, sig: signal.Signals) -> None:
    marker = tmp_path / "got"
    code = textwrap.dedent(
        f"""
        import os, select, signal, sys
        def handler(signum, frame):
            open({str(marker)!r}, "w").write(str(signum))
            sys.exit(3)
        signal.signal({int(sig)}, handler)
        {WAKEUP_FD}
        print("ready", flush=True)
        while True:
            select.select([wakeup], [], [])
        """
    )
    proc = subprocess.Popen([OTEL_RUN, "-q", PYTHON, "-c", code], env=runner.env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        state = _proc_state(proc.pid)
        proc.kill()
        pytest.fail(f"otel-run did not exit; child got the signal: {marker.exists()}; {state}")
    assert code == 3
    assert marker.read_text() == str(int(sig))


def _proc_state(pid: int) -> str:
    """Signal state of a process and its children, for a failure message."""
    out = []
    for p in [pid, *(int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]:
        try:
            status = Path(f"/proc/{p}/status").read_text().splitlines()
            wchan = Path(f"/proc/{p}/wchan").read_text()
        except OSError:
            continue
        keep = [
            line
            for line in status
            if line.startswith(("Name", "State", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt"))
        ]
        env = Path(f"/proc/{p}/environ").read_bytes().split(b"\0")
        ours = sorted(e.decode(errors="replace") for e in env if e.startswith((b"OTEL", b"PYTHON", b"TRACEPARENT")))
        out.append(f"pid {p} wchan {wchan}: " + ", ".join(" ".join(line.split()) for line in keep) + f" env {ours}")
    return " | ".join(out)


def test_a_child_killed_by_a_forwarded_sigterm_ends_otel_run_by_sigterm_and_asked_for(runner: Runner) -> None:
    proc = subprocess.Popen(
        [OTEL_RUN, "-q", PYTHON, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        env=runner.env(),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.terminate()
    assert proc.wait(timeout=30) == -signal.SIGTERM
    _, trace = runner.last()
    child = one(trace, lambda s: s.is_process)
    assert child.attributes["otel_run.process.signal"] == "SIGTERM"
    # the signal otel-run passed on is on the span, and the ending it caused is the one asked for
    [forwarded] = [e for e in child.events if e.name == "otel_run.signal.forwarded"]
    assert forwarded.attributes["otel_run.process.signal"] == "SIGTERM"
    assert forwarded.attributes["otel_run.signal.sender.pid"] == os.getpid()
    assert child.status_code != 2 and child.attributes["otel_run.process.signal.expected"] is True


STDIO_SCRIPT = textwrap.dedent(
    """
    import sys
    data = sys.stdin.buffer.read()
    out = sys.stdout.buffer
    out.write(b"stdin:" + data + b"\\n")
    out.write(bytes(range(256)) * 4 + b"\\xff\\xfe not utf-8 \\x00\\n")
    out.write(b"x" * 300_000)
    sys.stderr.buffer.write(b"err \\xc3\\x28 line\\n" * 1000)
    out.flush()
    sys.exit(5)
    """
)


@pytest.mark.parametrize("command", ["python", "shell"])
def test_stdio_is_byte_identical_with_and_without_otel_run(runner: Runner, tmp_path: Path, command: str) -> None:
    script = tmp_path / "stdio.py"
    script.write_text(STDIO_SCRIPT)
    argv = [PYTHON, str(script)] if command == "python" else ["sh", "-c", f"cat; {PYTHON} {script} </dev/null"]
    stdin = b"hello \x00\xff input\n" * 100
    bare = subprocess.run(argv, input=stdin, capture_output=True, env=runner.env(), timeout=60)
    traced = runner.run(*argv, input=stdin)
    assert traced.returncode == bare.returncode
    assert traced.stdout == bare.stdout
    assert traced.stderr == bare.stderr
    assert len(bare.stdout) > 300_000


def test_summary_goes_to_stderr_only(runner: Runner) -> None:
    result = runner.run(PYTHON, "-c", "print('out')", quiet=False)
    assert result.stdout == b"out\n"
    run, _ = runner.last()
    assert run.trace_id.encode() in result.stderr
    assert b"1 process" in result.stderr and b"stored in" in result.stderr


def test_traceparent_from_the_environment_is_the_parent(runner: Runner) -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    env = runner.env(TRACEPARENT=f"00-{trace_id}-{parent}-01", TRACESTATE="vendor=abc", BAGGAGE="team=perf")
    code = "import os; print(os.environ['TRACEPARENT'], os.environ['TRACESTATE'], os.environ['BAGGAGE'])"
    result = runner.run(PYTHON, "-c", code, env=env)
    run, trace = runner.last()
    assert run.trace_id == trace_id
    root = trace.by_id[run.root_span_id]
    assert root.parent_id == parent
    process = one(trace, lambda s: s.is_process)
    seen_tp, seen_ts, seen_bag = result.stdout.decode().split()
    assert seen_tp == f"00-{trace_id}-{process.span_id}-01"  # the child runs in its own span
    assert (seen_ts, seen_bag) == ("vendor=abc", "team=perf")


def test_service_name_from_environment_and_defaults(runner: Runner, tmp_path: Path) -> None:
    script = tmp_path / "nightly_job.py"
    script.write_text(
        "import subprocess, sys; subprocess.run([sys.executable, '-m', 'json.tool', '--help'], capture_output=True)"
    )
    runner.run(
        PYTHON, str(script), env=runner.env(OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci,team=perf%20lab")
    )
    _, trace = runner.last()
    job = one(trace, lambda s: s.is_process and s.name.startswith("nightly_job.py"))
    assert job.service == "nightly_job"
    assert job.resource.attributes["team"] == "perf lab"
    tool = one(trace, lambda s: s.is_process and "json.tool" in s.name)
    assert tool.service == "json"
    runner.run(PYTHON, str(script), env=runner.env(OTEL_SERVICE_NAME="billing"))
    _, trace = runner.last()
    assert {s.service for s in trace.spans if s.is_process} == {"billing"}


def test_command_not_found_is_127_with_one_line(runner: Runner) -> None:
    result = runner.run("no-such-command-xyz", "arg")
    assert result.returncode == 127
    assert result.stderr.decode().strip() == "otel-run: no-such-command-xyz: command not found"
    run, trace = runner.last()
    assert run.exit_code == 127
    assert trace.by_id[run.root_span_id].status_code == 2


def test_permission_denied_is_126(runner: Runner, tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    result = runner.run(str(script))
    assert result.returncode == 126
    assert b"permission denied" in result.stderr


def test_unusable_store_warns_and_still_runs_the_command(runner: Runner, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = runner.run(PYTHON, "-c", "print('ran')", env=runner.env(OTEL_RUN_STORE=str(blocker / "store")))
    assert result.returncode == 0
    assert result.stdout == b"ran\n"
    assert result.stderr.decode().startswith("otel-run: warning: cannot use the store")


def test_four_concurrent_runs_into_one_store_stay_intact(runner: Runner, tmp_path: Path) -> None:
    script = _child_script(tmp_path)
    procs = [
        subprocess.Popen(
            [OTEL_RUN, "-q", "-l", f"run{i}", "sh", "-c", f"{PYTHON} {script}; {PYTHON} {script}"],
            env=runner.env(),
            stdout=subprocess.DEVNULL,
        )
        for i in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    from otel_run.store._store import Store

    store = Store(str(runner.store))
    runs = store.runs()
    assert sorted(r.label for r in runs) == ["run0", "run1", "run2", "run3"]
    assert len({r.trace_id for r in runs}) == 4
    for run in runs:
        assert run.finished and run.exit_code == 0
        trace = store.load_trace(run.trace_id)
        assert trace.roots == [trace.by_id[run.root_span_id]]  # no orphans: every parent present
        assert sum(1 for s in trace.spans if s.is_process) == 5  # sh + 2 children + 2 grandchildren
        assert not trace.warnings


def test_options_are_parsed_up_to_the_command() -> None:
    opts = parse_args(["-q", "--label=base", "-s", "svc", "--", "-weird", "--label", "x"])
    assert opts.quiet and opts.label == "base" and opts.service_name == "svc"
    assert opts.command == ["-weird", "--label", "x"]
    opts = parse_args(["python", "-q"])
    assert opts.command == ["python", "-q"] and not opts.quiet
    with pytest.raises(UsageError, match="unknown option '--nope'"):
        parse_args(["--nope", "true"])
    with pytest.raises(UsageError, match="needs a value"):
        parse_args(["--label"])
    with pytest.raises(UsageError, match="no command"):
        parse_args(["-q"])


def test_bad_option_is_a_one_line_error() -> None:
    result = subprocess.run([OTEL_RUN, "--frobnicate", "true"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == "otel-run: error: unknown option '--frobnicate' (try: otel-run --help)"


def test_killed_grandchild_with_an_untraced_parent_is_unfinished(runner: Runner) -> None:
    victim = f"{PYTHON} -c 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'"
    result = runner.run("sh", "-c", f"{victim}; echo after")
    assert result.returncode == 0
    _, trace = runner.last()
    victim_span = one(trace, lambda s: s.is_process and s.name.startswith("python"))
    assert victim_span.unfinished
    assert victim_span.status_code == 2 and victim_span.status_message.startswith("unfinished")


def test_stdin_is_the_terminal_of_the_child(runner: Runner) -> None:
    # the child, not otel-run, reads stdin: nothing is swallowed or buffered
    result = runner.run("sh", "-c", "head -c 5; echo; cat", input=b"12345rest")
    assert result.stdout == b"12345\nrest"


def test_otel_run_under_otel_run_nests(runner: Runner) -> None:
    result = runner.run(OTEL_RUN, "-q", "-l", "inner", PYTHON, "-c", "pass")
    assert result.returncode == 0
    from otel_run.store._store import Store

    runs = Store(str(runner.store)).runs()
    inner = next(r for r in runs if r.label == "inner")
    outer = next(r for r in runs if r.label is None)
    assert inner.trace_id == outer.trace_id
    trace = Store(str(runner.store)).load_trace(outer.trace_id)
    assert trace.roots == [trace.by_id[outer.root_span_id]]
    assert trace.by_id[inner.root_span_id].parent is not None


def test_many_spans_from_a_long_running_child_are_flushed_incrementally(runner: Runner, tmp_path: Path) -> None:
    """A process killed with SIGKILL loses at most its last moments."""
    code = textwrap.dedent(
        """
        import time
        from opentelemetry import trace
        tracer = trace.get_tracer("t")
        for i in range(5):
            with tracer.start_as_current_span(f"step {i}"):
                pass
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([OTEL_RUN, "-q", PYTHON, "-c", code], env=runner.env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"

    def flushed() -> bool:
        try:
            _, trace = runner.last()
        except StoreError:
            return False
        return len([s for s in trace.spans if s.name.startswith("step")]) == 5

    # the flush timer writes them (0.2 s); the child sleeps 60 s, so they did not come from its exit
    wait_for(flushed, timeout=30, what="the spans of a child that is still running")
    assert proc.poll() is None
    child_pid = int(subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()[0])
    os.kill(child_pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    _, trace = runner.last()
    assert sorted(s.name for s in trace.spans if s.name.startswith("step")) == [f"step {i}" for i in range(5)]


def test_help_and_version() -> None:
    out = subprocess.run([OTEL_RUN, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("usage: otel-run")
    out = subprocess.run([OTEL_RUN, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("otel-run ")


def test_waits_for_the_child_only(runner: Runner, tmp_path: Path) -> None:
    """A daemon the command leaves behind does not hold otel-run (like a shell)."""
    pid_file = tmp_path / "daemon.pid"
    result = runner.run("sh", "-c", f"sleep 300 >/dev/null 2>&1 & echo $! > {pid_file}; echo started")
    assert result.returncode == 0 and result.stdout == b"started\n"
    daemon = int(pid_file.read_text())
    try:
        os.kill(daemon, 0)  # otel-run returned while the daemon still runs: it did not wait for it
    finally:
        os.kill(daemon, signal.SIGKILL)


def test_cpu_and_memory_are_each_process_s_own(runner: Runner) -> None:
    # the parent's wait4 view holds its waited-for descendants: it must not pass for the child's own numbers
    burn = "n = 0\nfor i in range(6_000_000): n += i"
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}]); subprocess.run(['true'])"
    result = runner.run(PYTHON, "-c", code)
    assert result.returncode == 0, result.stderr
    _, trace = runner.last()
    from otel_run.analyse._tree import process_totals

    parent, child, true = process_totals(trace)
    assert child.name.startswith(PYTHON_NAME + " -c n = 0") and true.name == "true"
    assert child.cpu_user is not None and parent.cpu_user is not None
    assert parent.cpu_user < child.cpu_user  # its own, not its child's
    assert parent.cpu_tree_user is not None and parent.cpu_tree_user >= child.cpu_user
    assert child.max_rss and child.span.attributes["otel_run.process.max_rss"] == child.max_rss
    # true is seen only by its reaper: its peak memory is an upper bound, kept apart from own numbers
    assert true.max_rss is None and true.max_rss_tree


def test_a_signal_the_child_handles_is_on_its_span(runner: Runner) -> None:
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n"
        "print('ready', flush=True)\n"
        "signal.pause()\n"
    )
    proc = subprocess.Popen([OTEL_RUN, "-q", PYTHON, "-c", code], env=runner.env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.terminate()
    assert proc.wait(timeout=30) == 3  # it handled the signal and exited 3: not a plain exit 3 in the trace
    _, trace = runner.last()
    child = one(trace, lambda s: s.is_process)
    assert [e.attributes["otel_run.process.signal"] for e in child.events if e.name == "otel_run.signal.forwarded"] == [
        "SIGTERM"
    ]


@pytest.mark.parametrize(
    ("command", "outcome"),
    [
        ("kill -TERM $$", -signal.SIGTERM),
        ("kill -INT $$", -signal.SIGINT),
        ("kill -PIPE $$", -signal.SIGPIPE),
        ("kill -SEGV $$", -signal.SIGSEGV),  # a core-dumping signal: no core file of otel-run's is left behind
        ("exit 143", 143),
    ],
)
def test_otel_run_ends_as_its_command_ended(runner: Runner, tmp_path: Path, command: str, outcome: int) -> None:
    def defaults() -> None:  # a background job of a non-interactive shell starts with SIGINT and SIGQUIT ignored
        for sig in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)

    def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, preexec_fn=defaults)

    bare = run(["sh", "-c", command], clean_env())
    traced = run([OTEL_RUN, "-q", "sh", "-c", command], runner.env())
    assert bare.returncode == outcome
    assert traced.returncode == bare.returncode
    assert not list(tmp_path.glob("core*"))
