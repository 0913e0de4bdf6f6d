"""Signals and signal state, bare and traced: each workload is run once as is and
once under otel-run, and what its caller sees is compared — how the process
ended (killed by which signal, or which exit code), what it printed, how many
times its handlers ran, and the signal state it started with.

No test waits on the clock: after sending, the test waits until otel-run has
taken every signal and is back waiting for the next (:func:`settled`), so any
copy it would pass on has been sent before the child is asked what it got.
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import OTEL_RUN, PYTHON, WAKEUP_FD, Runner, clean_env, one, wait_for

# A Python program that counts the signals it gets and, when SIGUSR2 asks, exits
# with 10 + how many SIGINT/SIGHUP/SIGTERM it counted, and prints them.
COUNTING = textwrap.dedent(
    f"""
    import os, select, signal, sys
    counts, asked = {{}}, []
    def count(signum, frame):
        counts[signum] = counts.get(signum, 0) + 1
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, count)
    signal.signal(signal.SIGUSR2, lambda *a: asked.append(1))
    {WAKEUP_FD}
    print("ready", os.getpid(), flush=True)
    while not asked:
        select.select([wakeup], [], [])
        os.read(wakeup, 512)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # runs every handler still due
    print(sorted(counts.items()), flush=True)
    sys.exit(10 + sum(counts.values()))
    """
)

# Programs that do nothing about signals: the default action ends them.
DEFAULT = {
    "python": [PYTHON, "-c", "import os, time; print('ready', os.getpid(), flush=True); time.sleep(120)"],
    "sh": ["sh", "-c", "echo ready $$; exec sleep 120"],
}


def defaults() -> None:
    """A caller with every disposition at its default and nothing blocked (a
    background job of the tool's shell starts with SIGINT ignored)."""
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class Launched:
    """A workload started bare or traced, in a process group of its own."""

    def __init__(self, argv: list[str], traced: bool, runner: Runner, preexec: Callable[[], None] = defaults) -> None:
        command = [OTEL_RUN, "-q", *argv] if traced else argv
        self.traced = traced
        self.proc = subprocess.Popen(
            command,
            env=runner.env() if traced else clean_env(),
            stdout=subprocess.PIPE,
            preexec_fn=preexec,
            process_group=0,
            restore_signals=False,
        )
        assert self.proc.stdout is not None
        words = self.proc.stdout.readline().split()
        assert words[:1] == [b"ready"], words
        self.program = int(words[1])  # the program itself (otel-run's child when traced)

    def send(self, signum: int, to: str) -> None:
        """``to`` is ``"process"``: the process the caller started (otel-run
        when traced); ``"group"``: its whole process group."""
        if to == "group":
            os.killpg(self.proc.pid, signum)
        else:
            os.kill(self.proc.pid, signum)
        if self.traced:
            settled(self.proc.pid, "do_sigtimedwait")
        else:
            settled(self.program)

    def ask(self) -> None:
        """SIGUSR2 to the program itself: a counting program reports."""
        os.kill(self.program, signal.SIGUSR2)

    def outcome(self) -> tuple[int, bytes]:
        """How it ended (``-N``: killed by signal N) and what it printed after ``ready``."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        return self.proc.wait(timeout=60), out


def settled(pid: int, waiting_in: str = "") -> None:
    """Wait until ``pid`` has taken every signal sent to it and sleeps again
    (or has ended); for otel-run, until it is back in ``sigwaitinfo``: it has
    then passed on whatever it passes on."""

    def idle() -> bool:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return True
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields["State"].startswith(("Z", "X")):
            return True
        pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
        sleeping = fields["State"].startswith("S")
        if waiting_in:
            try:
                sleeping = sleeping and Path(f"/proc/{pid}/wchan").read_text().startswith(waiting_in)
            except OSError:
                return True
        return not pending and sleeping

    wait_for(idle, what=f"pid {pid} to take its signals")


@pytest.mark.parametrize("to", ["process", "group"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
def test_a_program_that_handles_a_signal_gets_it_once(runner: Runner, signum: signal.Signals, to: str) -> None:
    outcomes = []
    for traced in (False, True):
        launched = Launched([PYTHON, "-c", COUNTING], traced, runner)
        launched.send(signum, to)
        launched.ask()
        outcomes.append(launched.outcome())
    bare, traced_ = outcomes
    assert bare == (11, f"[({int(signum)}, 1)]\n".encode())
    assert traced_ == bare


@pytest.mark.parametrize("to", ["process", "group"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("program", sorted(DEFAULT))
def test_a_program_a_signal_ends_ends_the_same_way(
    runner: Runner, program: str, signum: signal.Signals, to: str
) -> None:
    """Python ends by SIGINT after a KeyboardInterrupt, like any program killed by it."""
    outcomes = []
    for traced in (False, True):
        launched = Launched(DEFAULT[program], traced, runner)
        launched.send(signum, to)
        returncode, _ = launched.outcome()
        outcomes.append(returncode)
    assert outcomes == [-signum, -signum]


def test_a_group_signal_is_on_the_command_s_span_as_sent_to_the_group(runner: Runner) -> None:
    launched = Launched([PYTHON, "-c", COUNTING], True, runner)
    launched.send(signal.SIGTERM, "group")
    launched.send(signal.SIGHUP, "process")
    launched.ask()
    assert launched.outcome() == (12, b"[(1, 1), (15, 1)]\n")
    _, trace = runner.last()
    child = one(trace, lambda s: s.is_process)
    events = [
        (e.name, e.attributes["otel_run.process.signal"]) for e in child.events if e.name.startswith("otel_run.signal")
    ]
    assert events == [("otel_run.signal.group", "SIGTERM"), ("otel_run.signal.forwarded", "SIGHUP")]


STATE = ["sh", "-c", "grep -E '^Sig(Blk|Ign):' /proc/self/status"]


def ignoring(*signums: int) -> Callable[[], None]:
    def preexec() -> None:
        defaults()
        for signum in signums:
            signal.signal(signum, signal.SIG_IGN)

    return preexec


def blocking(*signums: int) -> Callable[[], None]:
    def preexec() -> None:
        defaults()
        signal.pthread_sigmask(signal.SIG_BLOCK, signums)

    return preexec


CALLERS = {
    "defaults": defaults,
    "SIGPIPE and SIGXFSZ ignored": ignoring(signal.SIGPIPE, signal.SIGXFSZ),
    "SIGPIPE ignored": ignoring(signal.SIGPIPE),
    "a background job (SIGINT, SIGQUIT ignored)": ignoring(signal.SIGINT, signal.SIGQUIT),
    "SIGUSR1 and SIGWINCH blocked": blocking(signal.SIGUSR1, signal.SIGWINCH),
    "SIGTERM blocked": blocking(signal.SIGTERM),
}


@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize(
    "command",
    [
        ["grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"],
        STATE,
        [PYTHON, "-c", "print(open('/proc/self/status').read())"],
    ],
    ids=["grep", "sh then grep", "python"],
)
def test_the_command_starts_with_its_caller_s_signal_state(runner: Runner, caller: str, command: list[str]) -> None:
    """The mask and the ignored signals (``SigBlk``, ``SigIgn``), glibc's
    internal signals 32 and 33 included, are the caller's."""
    preexec = CALLERS[caller]

    def state(argv: list[str], env: dict[str, str]) -> list[str]:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, preexec_fn=preexec, restore_signals=False)
        assert out.returncode == 0, out.stderr
        return [line for line in out.stdout.splitlines() if line.startswith(("SigBlk", "SigIgn"))]

    bare = state(command, clean_env())
    assert len(bare) == 2
    assert state([OTEL_RUN, "-q", *command], runner.env()) == bare


@pytest.mark.parametrize("caller", ["defaults", "SIGPIPE ignored"])
def test_a_writer_whose_reader_went_away_ends_the_same_way(runner: Runner, caller: str) -> None:
    """``yes | head -1``: killed by SIGPIPE, or, with SIGPIPE ignored, EPIPE and exit 1."""

    def run(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=CALLERS[caller],
            restore_signals=False,
        )
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        return proc.wait(timeout=60), first, proc.stderr.read()

    bare = run(["yes"], clean_env())
    assert bare[0] == (-signal.SIGPIPE if caller == "defaults" else 1)
    assert run([OTEL_RUN, "-q", "yes"], runner.env()) == bare
