"""CPU profiles with real py-spy on real processes, attributed to spans."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from otel_run.analyse._stacks import load_profiles, select_spans, stacks
from otel_run.store._profiles import profile_paths, read_profile
from otel_run.store._store import Store
from tests.conftest import OTEL_RUN, PYTHON, WALRUS_SPIN, Runner, one

CHILD_SPIN = WALRUS_SPIN + textwrap.dedent(
    """
    import subprocess, sys

    if len(sys.argv) > 1:
        walrus_spin(1.5)
    else:
        subprocess.run([sys.executable, __file__, "child"], check=True)
        print("done")
    """
)

TWO_THREADS = textwrap.dedent(
    """
    import threading, time
    from opentelemetry import trace

    tracer = trace.get_tracer("test")
    barrier = threading.Barrier(2)

    def spin_alpha(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    def spin_beta(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    def work(name, spin):
        barrier.wait()
        with tracer.start_as_current_span(name):
            spin(1.2)

    threads = [threading.Thread(target=work, args=("alpha", spin_alpha)),
               threading.Thread(target=work, args=("beta", spin_beta))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
)


def _program(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(text)
    return path


def test_a_childs_hot_function_tops_its_span(runner: Runner, tmp_path: Path) -> None:
    prog = _program(tmp_path, CHILD_SPIN)
    result = runner.run("--profile", "cpu", "--", PYTHON, str(prog))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"done\n"  # the command's output is unchanged
    _, trace = runner.last()
    child = one(trace, lambda s: s.is_process and s.name == "prog.py child")

    text = runner.trace_cli("profile", "--span", child.span_id, "--format", "text")
    assert text.returncode == 0, text.stderr
    first_row = text.stdout.splitlines()[2]
    assert "walrus_spin" in first_row

    folded = runner.trace_cli("profile", "--span", child.span_id, "--format", "collapsed").stdout
    counts = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in folded.splitlines()}
    total = sum(counts.values())
    hot = sum(
        v for k, v in counts.items() if k.endswith("walrus_spin (prog.py)") or "walrus_spin (" in k.split(";")[-1]
    )
    assert total > 0 and hot >= 0.8 * total, folded
    assert all(k.split(";")[0] == child.service for k in counts)  # the service name is the first frame
    # the span carries its summary, and an event naming its profile file
    assert child.attributes["otel_run.profile.cpu.samples"] >= 0.8 * total
    assert child.attributes["otel_run.profile.cpu.self_s"] > 0
    event = next(e for e in child.events if e.name == "otel_run.profile")
    (path,) = event.attributes["otel_run.profile.file"]
    assert (runner.store / path).is_file() and child.span_id in path
    # otel-trace show names the hottest functions of its top spans
    shown = runner.trace_cli("show", env=runner.env(COLUMNS="200")).stdout
    top = shown[shown.index("top self time") :]
    row = next(line for line in top.splitlines() if line.startswith("prog.py child"))
    assert "walrus_spin" in row


def test_samples_go_to_the_span_open_on_their_thread(runner: Runner, tmp_path: Path) -> None:
    prog = _program(tmp_path, TWO_THREADS)
    result = runner.run("--profile", "cpu", "--", PYTHON, str(prog))
    assert result.returncode == 0, result.stderr
    _run, trace = runner.last()
    alpha = one(trace, lambda s: s.name == "alpha")
    beta = one(trace, lambda s: s.name == "beta")
    assert alpha.attributes["thread.id"] != beta.attributes["thread.id"]
    assert alpha.start_ns < beta.end_ns and beta.start_ns < alpha.end_ns  # they ran at once
    profiles, warnings = load_profiles(str(runner.store), trace)
    assert not warnings
    for span, mine, other in ((alpha, "spin_alpha", "spin_beta"), (beta, "spin_beta", "spin_alpha")):
        found = stacks(profiles, select_spans(trace, span.span_id))
        leaf = {}
        for stack, value in found:
            name = stack[-1].split(" ", 1)[0]
            leaf[name] = leaf.get(name, 0) + value
        total = sum(leaf.values())
        assert leaf.get(mine, 0) >= 0.8 * total, (span.name, leaf)
        assert leaf.get(other, 0) == 0, (span.name, leaf)


def test_a_profile_cut_short_is_read_up_to_the_damage(runner: Runner, tmp_path: Path) -> None:
    prog = _program(tmp_path, CHILD_SPIN)
    assert runner.run("--profile", "cpu", "--", PYTHON, str(prog)).returncode == 0
    _run, trace = runner.last()
    paths = profile_paths(str(runner.store), trace.trace_id)
    assert paths
    biggest = max(paths, key=lambda p: len(read_profile(p).samples))
    whole = read_profile(biggest)
    data = Path(biggest).read_bytes()
    Path(biggest).write_bytes(data[: len(data) - 7])  # the last line cut, as by SIGKILL mid-write
    cut = read_profile(biggest)
    assert len(cut.samples) == len(whole.samples) - 1
    assert cut.warnings and biggest in cut.warnings[0] and "damaged" in cut.warnings[0]
    shown = runner.trace_cli("profile")
    assert shown.returncode == 0
    assert "damaged line" in shown.stderr and len(shown.stderr.strip().splitlines()) == 1


def test_an_unknown_profile_kind_is_one_line_and_exit_2(runner: Runner) -> None:
    result = runner.run("--profile", "gpu", "--", "true")
    assert result.returncode == 2
    err = result.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "--profile" in err and "cpu, memory, imports" in err
    assert "Traceback" not in err
    bad_env = runner.run("--", "true", env=runner.env(OTEL_RUN_PROFILE="cpu,gpu"))
    assert bad_env.returncode == 2 and b"OTEL_RUN_PROFILE" in bad_env.stderr


def test_no_profiler_is_loaded_unless_asked(runner: Runner, tmp_path: Path) -> None:
    prog = _program(
        tmp_path,
        "import sys, json\nprint(json.dumps(sorted(m for m in sys.modules if 'memray' in m or 'sampler' in m)))\n",
    )
    result = runner.run("--", PYTHON, str(prog))
    assert result.returncode == 0
    assert json.loads(result.stdout) == []
    _, trace = runner.last()
    assert not (runner.store / "profiles").exists()
    assert Store(str(runner.store)).load_trace(trace.trace_id).spans


NOT_DUMPABLE = textwrap.dedent(
    """
    import ctypes, os, time
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: only CAP_SYS_PTRACE may read this process
    open(os.environ["NOT_DUMPABLE_MARK"], "w").close()  # now py-spy may start (see the wrapper)
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        pass
    print("unchanged")
    """
)


@pytest.mark.skipif(not shutil.which("setpriv") or os.geteuid() != 0, reason="needs root and setpriv (util-linux)")
def test_a_sampler_without_ptrace_rights_leaves_the_run_unchanged(runner: Runner, tmp_path: Path) -> None:
    prog = _program(tmp_path, NOT_DUMPABLE)
    mark = tmp_path / "not-dumpable"
    # py-spy starts only once the program made itself unreadable: without the wait, a py-spy that attached
    # first would lose its access mid-run instead (no sample, and no reason in its log)
    wrapper = tmp_path / "py-spy"
    real = str(Path(OTEL_RUN).with_name("py-spy"))
    wrapper.write_text(f'#!/bin/sh\nwhile [ ! -e "{mark}" ]; do sleep 0.01; done\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    no_ptrace = ["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"]
    result = subprocess.run(
        [*no_ptrace, OTEL_RUN, "-q", "--profile", "cpu", "--", PYTHON, str(prog)],
        env=runner.env(OTEL_RUN_PYSPY=str(wrapper), NOT_DUMPABLE_MARK=str(mark)),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert result.stdout == b"unchanged\n"
    said = [line for line in result.stderr.decode().splitlines() if "profil" in line]
    assert len(said) == 1, result.stderr
    assert "Permission denied" in said[0] and "CAP_SYS_PTRACE" in said[0]
    _, trace = runner.last()
    assert trace.spans  # the run is recorded as without --profile


ALLOCATE = textwrap.dedent(
    """
    import time
    from opentelemetry import trace

    tracer = trace.get_tracer("test")

    def walrus():
        return bytearray(50 * 1024 * 1024)

    with tracer.start_as_current_span("allocate"):
        time.sleep(0.05)
        kept = walrus()
        time.sleep(0.05)
    del kept
    print("ok")
    """
)


def test_a_known_allocation_shows_in_its_spans_memory_profile(runner: Runner, tmp_path: Path) -> None:
    prog = _program(tmp_path, ALLOCATE)
    result = runner.run("--profile", "memory", "--", PYTHON, str(prog))
    assert result.returncode == 0 and result.stdout == b"ok\n", result.stderr
    _, trace = runner.last()
    span = one(trace, lambda s: s.name == "allocate")
    profiles, warnings = load_profiles(str(runner.store), trace)
    assert not warnings
    found = stacks(profiles, select_spans(trace, span.span_id), kind="memory")
    allocated = sum(v for _, v in found)
    assert 0.9 * 50 * 2**20 <= allocated <= 1.1 * 50 * 2**20, found
    assert 0.9 * 50 * 2**20 <= span.attributes["otel_run.profile.memory.allocated_bytes"] <= 1.1 * 50 * 2**20
    assert span.attributes["otel_run.profile.memory.peak_bytes"] >= 50 * 2**20  # the 50 MiB were held in the span
    # the allocating stack, in folded form: bytes per stack, the function that allocated them as the leaf
    folded = runner.trace_cli("profile", "--kind", "memory", "--span", span.span_id, "--format", "collapsed").stdout
    walrus = [
        line for line in folded.splitlines() if ";walrus (" in line and line.rsplit(" ", 1)[0].endswith("prog.py)")
    ]
    assert len(walrus) == 1, folded
    assert 0.9 * 50 * 2**20 <= int(walrus[0].rsplit(" ", 1)[1]) <= 1.1 * 50 * 2**20
    outside = stacks(profiles, {trace.processes[-1].span_id}, kind="memory")  # the process span's own
    assert sum(v for _, v in outside) < 0.5 * 50 * 2**20


POOL_WAITS = textwrap.dedent(
    """
    import concurrent.futures, threading, time

    def walrus_main_spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    pool = concurrent.futures.ThreadPoolExecutor(2)
    pool.submit(int).result()  # the workers now wait in the queue's blocking get, in C
    reader_r, reader_w = __import__("os").pipe()
    reader = threading.Thread(target=lambda: open(reader_r, "rb").readline(), daemon=True)
    reader.start()
    walrus_main_spin(1.2)
    __import__("os").write(reader_w, b"x\\n")
    pool.shutdown()
    """
)


def test_threads_blocked_in_c_are_idle_not_cpu(runner: Runner, tmp_path: Path) -> None:
    prog = _program(tmp_path, POOL_WAITS)
    result = runner.run("--profile", "cpu", "--", PYTHON, str(prog))
    assert result.returncode == 0, result.stderr
    _, trace = runner.last()
    profiles, _ = load_profiles(str(runner.store), trace)
    busy = stacks(profiles, None)
    leaves: dict[str, int] = {}
    for stack, value in busy:
        name = stack[-1].split(" ", 1)[0]
        leaves[name] = leaves.get(name, 0) + value
    total = sum(leaves.values())
    assert leaves.get("walrus_main_spin", 0) >= 0.8 * total, leaves  # the waiting threads are not CPU
    everything = stacks(profiles, None, idle=True)
    assert sum(v for _, v in everything) > total  # with --idle they are there


def test_a_blocking_line_is_told_from_a_busy_one(tmp_path: Path) -> None:
    from otel_run.analyse._attribute import _blocks_at

    lines = {
        "data = sock.recv(4096)": True,
        "work_item = work_queue.get(block=True)": True,
        "for line in iter(out.readline, b''):": True,
        "time.sleep(0.5)": True,
        "thread.join()": True,
        "return Unpickler(file).load()": True,
        "text = ', '.join(parts)": False,
        "value = cache.get(key)": False,
        "total += compute(x)  # not sock.recv(1)": False,
    }
    source = tmp_path / "mod.py"
    source.write_text("\n".join(lines) + "\n")
    for number, (line, blocks) in enumerate(lines.items(), start=1):
        assert _blocks_at(str(source), number) is blocks, line
    assert _blocks_at(str(tmp_path / "gone.py"), 1) is False
