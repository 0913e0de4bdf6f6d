"""Running the command transparently, like a shell runs a foreground job.

* stdin, stdout, stderr and every other inherited descriptor go to the child
  untouched;
* the child starts with the signal state otel-run's caller gave it: the
  signal mask otel-run started with, the dispositions it inherited. Python
  ignores SIGPIPE and SIGXFSZ before any of otel-run's code runs, so the
  ``otel-run`` launcher (a shell script) reads which signals the caller
  ignored first (``OTEL_RUN_CALLER_SIGIGN``) and the child gets exactly those.
  The child is started with ``fork`` + ``exec``, not glibc's ``posix_spawn``,
  which leaves its internal signals 32 and 33 ignored in the new program;
* SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to otel-run are
  forwarded to the child. Signals are taken synchronously with
  ``sigwaitinfo``: no handler runs in the middle of otel-run's own code;
* a signal the child got anyway is not sent a second time: one the terminal
  sent to the foreground process group (``si_code == SI_KERNEL``, e.g. Ctrl-C),
  and one sent to otel-run's whole process group (``kill -TERM -- -PGID``, a
  CI runner cancelling a job, ``kill(0, …)``). ``siginfo`` cannot tell
  ``kill(pid)`` from ``kill(-pgid)``, so a :class:`_Sentinel` process in the
  group holds those signals blocked: a group signal is pending in it, one sent
  to otel-run alone is not;
* the exit status and resource usage come from ``wait4``.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # not ``signal``: it imports ``enum``, milliseconds on otel-run's critical path
import os
from time import time_ns

from otel_run import _env

TYPE_CHECKING = False  # ``typing`` costs milliseconds to import; mypy still sees this
if TYPE_CHECKING:
    from collections.abc import MutableMapping

FORWARDED = (
    _signal.SIGINT,
    _signal.SIGTERM,
    _signal.SIGHUP,
    _signal.SIGQUIT,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
)
_SI_KERNEL = 0x80
_SENTINEL_NAME = "otel-run-sentinel"
"""The sentinel's ``argv[0]`` (``cat`` with its stdin a pipe otel-run holds:
it ends when otel-run does, even when otel-run is killed)."""


class Child:
    """The supervised command."""

    caller_ignored: frozenset[int] = frozenset()
    """The signals otel-run's caller ignored: every command otel-run starts
    ignores them too (see :func:`take_caller_state`)."""

    __slots__ = (
        "_mask",
        "_old_mask",
        "_sentinel",
        "_to_group",
        "end_ns",
        "forwarded",
        "pid",
        "rusage",
        "spawn_ns",
        "status",
    )

    def __init__(self) -> None:
        self.pid = 0
        self.spawn_ns = 0
        self.end_ns = 0
        self.status = 0
        self.rusage: os.struct_rusage | None = None  # type: ignore[name-defined]
        # (when, signal, sender pid, passed on): each signal meant for the child,
        # passed on by otel-run or (False) sent to the whole group, the child included
        self.forwarded: list[tuple[int, int, int, bool]] = []
        self._sentinel: _Sentinel | None = None
        self._to_group: set[int] = set()  # sent to the group, seen by a sentinel, not yet dequeued here
        self._mask = {_signal.SIGCHLD, *FORWARDED}
        self._old_mask: set[int] = set()

    def spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        spawn_ns: int | None = None,
        file_actions: list | None = None,
    ) -> None:
        """Start ``argv``; raises OSError (FileNotFoundError, PermissionError…).

        Args:
            file_actions: ``os.posix_spawn``'s, to redirect its stdio; by
                default it inherits otel-run's.
        """
        self._old_mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, self._mask)
        try:
            self.spawn_ns = spawn_ns or time_ns()
            self.pid = _fork_exec(argv, env, self._old_mask, file_actions or (), Child.caller_ignored)
        except BaseException:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, self._old_mask)
            raise
        self._sentinel = _Sentinel.start(self._old_mask | set(FORWARDED))

    def wait(self) -> None:
        """Wait for the child, forwarding signals meanwhile."""
        try:
            while True:
                got, status, rusage = os.wait4(self.pid, os.WNOHANG)
                if got == self.pid:
                    break
                info = _signal.sigwaitinfo(self._mask)
                if info.si_signo != _signal.SIGCHLD:
                    self._pass_on(info)
            self.end_ns = time_ns()
            self.status = status
            self.rusage = rusage
        finally:
            if self._sentinel is not None:
                self._sentinel.stop()
            _signal.pthread_sigmask(_signal.SIG_SETMASK, self._old_mask)

    def _pass_on(self, info: object) -> None:
        """Forward a signal otel-run got, unless the child got it too."""
        signo, code, sender = info.si_signo, info.si_code, info.si_pid  # type: ignore[attr-defined]
        to_group = signo in self._to_group
        if to_group:
            self._to_group.discard(signo)
        elif self._sentinel is not None:
            held = self._sentinel.held()
            if held:  # a sentinel holds a signal once: replace it, and remember the others it got
                to_group = signo in held
                self._to_group |= held - {signo}
                self._sentinel = self._sentinel.renewed()
        if code == _SI_KERNEL or sender == self.pid:
            return  # the terminal's (the child has it), or the child's own
        if to_group and _same_group(self.pid):
            self.forwarded.append((time_ns(), signo, sender, False))
            return
        try:
            os.kill(self.pid, signo)
        except ProcessLookupError:
            pass
        else:
            self.forwarded.append((time_ns(), signo, sender, True))

    @property
    def exit_code(self) -> int:
        """The child's exit code, or 128+N when signal N killed it (as a shell)."""
        if os.WIFSIGNALED(self.status):
            return 128 + os.WTERMSIG(self.status)
        return os.waitstatus_to_exitcode(self.status)

    @property
    def signal(self) -> int | None:
        """The signal that killed the child, if one did."""
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    @property
    def died_of_forwarded(self) -> bool:
        """The child died of a signal otel-run passed on: the ending whoever
        sent it asked for."""
        return self.signal is not None and any(signo == self.signal for _, signo, _, _ in self.forwarded)

    @property
    def signal_name(self) -> str | None:
        if not os.WIFSIGNALED(self.status):
            return None
        import signal

        try:
            return signal.Signals(os.WTERMSIG(self.status)).name
        except ValueError:
            return f"signal {os.WTERMSIG(self.status)}"


def take_caller_state(environ: MutableMapping[str, str]) -> None:
    """Learn which signals otel-run's caller ignored, from the launcher's
    ``OTEL_RUN_CALLER_SIGIGN`` (a ``/proc/PID/stat`` ``sigignore`` mask, in
    decimal), and take the variable out of ``environ``: no child sees it."""
    try:
        bits = int(environ.pop(_env.OTEL_RUN_CALLER_SIGIGN, ""))
    except ValueError:
        return
    Child.caller_ignored = frozenset(signo for signo in range(1, 65) if bits & (1 << (signo - 1)))


def _fork_exec(
    argv: list[str], env: dict[str, str], mask: set[int], file_actions: object, caller_ignored: frozenset[int]
) -> int:
    """``fork`` + ``execve`` with the caller's signal state; an ``exec``
    failure comes back through a close-on-exec pipe as the OSError it was.

    By hand, and not ``subprocess``: importing it costs milliseconds on
    otel-run's start-up, and its child resets SIGPIPE and SIGXFSZ to their
    defaults (``restore_signals``) or uses ``posix_spawn``. The ``PATH`` search
    happens here, before the fork: the copy of otel-run runs as little Python
    as it can (each page it touches is copied), ~0.8 ms more than
    ``posix_spawn`` in all (results/startup.md).
    """
    path = _which(argv[0], env)
    # arriving before exec, a signal does to the copy what it would do to the command
    defaults = [signo for signo in FORWARDED if _signal.getsignal(signo) != _signal.SIG_IGN]
    defaults += [signo for signo in (_signal.SIGPIPE, _signal.SIGXFSZ) if signo not in caller_ignored]
    errors_r, errors_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; only os calls until exec
        try:
            for action in file_actions:  # type: ignore[attr-defined]
                if action[0] == os.POSIX_SPAWN_OPEN:
                    fd = os.open(action[2], action[3], action[4])
                    if fd != action[1]:
                        os.dup2(fd, action[1])
                        os.close(fd)
                elif action[0] == os.POSIX_SPAWN_DUP2:
                    os.dup2(action[1], action[2])
                else:
                    os.close(action[1])
            for signo in defaults:
                _signal.signal(signo, _signal.SIG_DFL)
            _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
            os.execve(path, argv, env)
        except OSError as exc:
            os.write(errors_w, b"%d" % (exc.errno or 0))
        except BaseException:  # nothing may escape into a copy of otel-run
            pass
        os._exit(127)
    os.close(errors_w)
    try:
        chunks = []
        while chunk := os.read(errors_r, 64):
            chunks.append(chunk)
    finally:
        os.close(errors_r)
    if chunks:
        os.waitpid(pid, 0)
        errno = int(b"".join(chunks))
        raise OSError(errno, os.strerror(errno), argv[0])
    return pid


def _which(name: str, env: dict[str, str]) -> str:
    """The file ``execvp`` would run for ``name`` (the ``PATH`` of ``env``).

    Raises:
        FileNotFoundError: nothing of that name on ``PATH``.
        PermissionError: only files that cannot be executed.
    """
    if "/" in name:
        return name
    denied = None
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
        if denied is None and os.path.exists(candidate):
            denied = candidate
    if denied is not None:
        raise PermissionError(13, os.strerror(13), name)
    raise FileNotFoundError(2, os.strerror(2), name)


class _Sentinel:
    """A process in otel-run's process group with the forwarded signals blocked.

    A signal sent to the group stays pending in it (``ShdPnd`` in
    ``/proc/PID/status``); one sent to otel-run alone never reaches it. The
    kernel signals a group's members newest first, in one system call, so a
    group signal is pending in the sentinel before otel-run can dequeue its
    own. A sentinel that caught one is replaced (standard signals do not queue
    twice). Best effort: without ``cat`` on ``PATH`` every signal is passed on,
    as before.
    """

    __slots__ = ("_mask", "_status", "_wakeup", "pid")

    def __init__(self, pid: int, wakeup: int, mask: set[int]) -> None:
        self.pid = pid
        self._wakeup = wakeup  # the write end of the sentinel's stdin: closed, it ends
        self._mask = mask
        self._status = f"/proc/{pid}/status"

    @classmethod
    def start(cls, mask: set[int]) -> _Sentinel | None:
        read, write = os.pipe()
        try:
            pid = os.posix_spawnp(
                "cat",
                [_SENTINEL_NAME],
                {},
                setsigmask=mask,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
            )
        except OSError:
            os.close(write)
            return None
        finally:
            os.close(read)
        return cls(pid, write, mask)

    def held(self) -> set[int]:
        """The signals pending in the sentinel: each was sent to the group."""
        pending = 0
        try:
            with open(self._status, "rb") as status:
                for line in status:
                    if line.startswith((b"ShdPnd:", b"SigPnd:")):
                        pending |= int(line.split()[1], 16)
        except (OSError, ValueError):
            return set()
        return {signo for signo in FORWARDED if pending & (1 << (signo - 1))}

    def renewed(self) -> _Sentinel | None:
        """A fresh sentinel in place of this one, which holds a signal now."""
        self.stop()
        return _Sentinel.start(self._mask)

    def stop(self) -> None:
        if self._wakeup < 0:
            return
        os.close(self._wakeup)
        self._wakeup = -1
        try:
            os.kill(self.pid, _signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass


def _same_group(pid: int) -> bool:
    """Whether ``pid`` is still in otel-run's process group (a group signal reached it)."""
    try:
        return os.getpgid(pid) == os.getpgrp()
    except OSError:
        return False
