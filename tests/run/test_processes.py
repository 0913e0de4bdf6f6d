"""Every process that existed is in the trace: counted independently with
``strace -f`` (Debian's strace), for the ways Python starts processes."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import OTEL_RUN, PYTHON, Runner, one

pytestmark = pytest.mark.skipif(
    shutil.which("strace") is None, reason="needs strace: run `sudo make tools` (or apt-get install strace)"
)

WORKLOADS = {
    # every start method of multiprocessing, the pool ended by terminate()
    "pool-fork": "pool('fork')",
    "pool-spawn": "pool('spawn')",
    "pool-forkserver": "pool('forkserver')",
    # the shell and the Python it runs: both fork and exec in C, out of the Python hooks' sight
    "os.system": "os.system(sys.executable + ' -c pass')",
    "posix_spawn": "os.waitpid(os.posix_spawn('/bin/sh', ['sh', '-c', 'exit 3'], os.environ), 0)",
    "posix_spawnp": "os.waitpid(os.posix_spawnp(sys.executable, [sys.executable, '-c', 'pass'], os.environ), 0)",
    "fork-exec": "pid = os.fork()\nif pid == 0: os.execv('/bin/true', ['true'])\nos.waitpid(pid, 0)",
    "fork-exit": "pid = os.fork()\nif pid == 0: os._exit(4)\nos.waitpid(pid, 0)",
    # a terminal of their own: pty.spawn forks with os.forkpty and execs
    "pty.spawn": "import pty; pty.spawn(['sh', '-c', 'exit 0'])",
    "forkpty-exit": "pid, fd = os.forkpty()\nif pid == 0: os._exit(5)\nos.waitpid(pid, 0)",
    "pipeline": "a = subprocess.Popen([sys.executable, '-c', 'print(1)'], stdout=subprocess.PIPE)\n"
    "subprocess.run(['cat'], stdin=a.stdout, stdout=subprocess.DEVNULL); a.wait()",
}

PRELUDE = """\
import multiprocessing, os, subprocess, sys

def square(x):
    return x * x

def pool(method):
    with multiprocessing.get_context(method).Pool(2) as workers:
        workers.map(square, range(4))
        workers.terminate()

if __name__ == '__main__':
"""


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_the_trace_has_every_process_strace_saw(runner: Runner, tmp_path: Path, workload: str) -> None:
    script = tmp_path / "workload.py"
    script.write_text(PRELUDE + textwrap.indent(WORKLOADS[workload], "    ") + "\n")
    log = tmp_path / "strace.log"
    strace = ["strace", "-f", "-qq", "-e", "trace=process", "-e", "signal=none", "-o", str(log)]
    result = subprocess.run(
        [*strace, OTEL_RUN, "-q", PYTHON, str(script)],
        env=runner.env(),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    seen = processes_in(log.read_text())
    _, trace = runner.last()
    traced = [s for s in trace.spans if s.is_process]
    assert len(traced) == len(seen) - 1, (  # strace also sees otel-run itself (not its sentinel: see processes_in)
        f"strace saw {len(seen) - 1} processes, the trace has {len(traced)}: "
        + ", ".join(sorted(s.name for s in traced))
    )
    pids = {s.attributes.get("process.pid") for s in traced}
    assert pids - {None} <= seen  # os.system's shell has no pid: C keeps it


CREATE = re.compile(r"^(\d+)\s+(clone3?|v?fork)\((.*)")
RESUMED = re.compile(r"^(\d+)\s+<\.\.\. (clone3?|v?fork) resumed>.*= (\d+)")
SENTINEL = re.compile(r'^(\d+)\s+execve\("[^"]*", \["otel-run-sentinel"\]')


def processes_in(log: str) -> set[int]:
    """Pids of the processes (not threads) an ``strace -f -e trace=process`` log
    shows, but otel-run's signal sentinel (run/_supervise.py), which is otel-run's
    and not the command's."""
    first = int(log.split(None, 1)[0])
    processes, pending, sentinels = {first}, {}, set()
    for line in log.splitlines():
        sentinel = SENTINEL.match(line)
        if sentinel:
            sentinels.add(int(sentinel.group(1)))
        created = CREATE.match(line)
        if created:
            pid, _call, rest = created.groups()
            thread = "CLONE_THREAD" in rest
            done = re.search(r"\) = (\d+)$", rest)
            if done:
                if not thread:
                    processes.add(int(done.group(1)))
            else:
                pending[pid] = thread
            continue
        resumed = RESUMED.match(line)
        if resumed and not pending.pop(resumed.group(1), True):
            processes.add(int(resumed.group(3)))
    return processes - sentinels


def test_show_counts_the_processes_seen_only_by_their_parent(runner: Runner) -> None:
    result = runner.run(PYTHON, "-c", "import subprocess; subprocess.run(['true']); subprocess.run(['sh', '-c', ':'])")
    assert result.returncode == 0
    shown = runner.trace_cli("show")
    assert "3 processes (2 seen only by their parent)" in shown.stdout, shown.stdout[:500]
    one_process = runner.run("true")
    assert one_process.returncode == 0
    assert "1 process (1 seen only by its parent)" in runner.trace_cli("show").stdout


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_a_pool_terminates_are_not_failures(runner: Runner, tmp_path: Path, method: str) -> None:
    script = tmp_path / "pool.py"
    script.write_text(PRELUDE + f"    pool({method!r})\n")
    assert runner.run(PYTHON, str(script)).returncode == 0
    _, trace = runner.last()
    assert not [s.name for s in trace.spans if s.status_code == 2]


def test_a_signal_the_program_sent_is_an_ending_it_asked_for(runner: Runner) -> None:
    code = (
        "import subprocess\n"
        "p = subprocess.Popen(['sleep', '30']); p.terminate(); p.wait()\n"  # asked for
        "subprocess.run(['sh', '-c', 'kill -TERM $$'])\n"  # not asked for: it killed itself
    )
    assert runner.run(PYTHON, "-c", code).returncode == 0
    _, trace = runner.last()
    sleep = one(trace, lambda s: s.is_process and s.name == "sleep 30")
    sh = one(trace, lambda s: s.is_process and s.name.startswith("sh -c"))
    assert sleep.attributes["otel_run.process.signal"] == sh.attributes["otel_run.process.signal"] == "SIGTERM"
    assert sleep.status_code != 2 and sleep.attributes["otel_run.process.signal.expected"] is True
    assert sh.status_code == 2 and "otel_run.process.signal.expected" not in sh.attributes
