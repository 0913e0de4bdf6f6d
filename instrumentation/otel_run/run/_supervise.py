"""Running the command transparently, like a shell runs a foreground job.

* stdin, stdout, stderr and every other inherited descriptor go to the child
  untouched (``posix_spawn`` with no file actions);
* the child starts with the signal mask otel-run started with, and with
  SIGPIPE/SIGXFSZ at their defaults (Python ignores SIGPIPE; ``subprocess``
  restores it the same way);
* SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to otel-run are
  forwarded to the child. Signals are taken synchronously with
  ``sigwaitinfo``: no handler runs in the middle of otel-run's own code, and a
  signal the terminal already sent to the whole foreground process group
  (``si_code == SI_KERNEL``, e.g. Ctrl-C) is not sent a second time;
* the exit status and resource usage come from ``wait4``.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # not ``signal``: it imports ``enum``, milliseconds on otel-run's critical path
import os
from time import time_ns

FORWARDED = (
    _signal.SIGINT,
    _signal.SIGTERM,
    _signal.SIGHUP,
    _signal.SIGQUIT,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
)
_SI_KERNEL = 0x80


class Child:
    """The supervised command."""

    __slots__ = ("_mask", "_old_mask", "end_ns", "forwarded", "pid", "rusage", "spawn_ns", "status")

    def __init__(self) -> None:
        self.pid = 0
        self.spawn_ns = 0
        self.end_ns = 0
        self.status = 0
        self.rusage: os.struct_rusage | None = None  # type: ignore[name-defined]
        self.forwarded: list[tuple[int, int, int]] = []  # (when, signal, sender pid) of each signal passed on
        self._mask = {_signal.SIGCHLD, *FORWARDED}
        self._old_mask: set[int] = set()

    def spawn(
        self, argv: list[str], env: dict[str, str], spawn_ns: int | None = None, file_actions: list | None = None
    ) -> None:
        """Start ``argv``; raises OSError (FileNotFoundError, PermissionError…).
        ``file_actions`` (``os.posix_spawn``'s) redirect its stdio; by default it
        inherits otel-run's."""
        self._old_mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, self._mask)
        try:
            self.spawn_ns = spawn_ns or time_ns()
            self.pid = os.posix_spawnp(
                argv[0],
                argv,
                env,
                setsigmask=self._old_mask,
                setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
                file_actions=file_actions or None,
            )
        except BaseException:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, self._old_mask)
            raise

    def wait(self) -> None:
        """Wait for the child, forwarding signals meanwhile."""
        try:
            while True:
                got, status, rusage = os.wait4(self.pid, os.WNOHANG)
                if got == self.pid:
                    break
                info = _signal.sigwaitinfo(self._mask)
                if info.si_signo == _signal.SIGCHLD:
                    continue
                if info.si_code != _SI_KERNEL and info.si_pid != self.pid:
                    try:
                        os.kill(self.pid, info.si_signo)
                    except ProcessLookupError:
                        pass
                    else:
                        self.forwarded.append((time_ns(), info.si_signo, info.si_pid))
            self.end_ns = time_ns()
            self.status = status
            self.rusage = rusage
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, self._old_mask)

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
        return self.signal is not None and any(signo == self.signal for _, signo, _ in self.forwarded)

    @property
    def signal_name(self) -> str | None:
        if not os.WIFSIGNALED(self.status):
            return None
        import signal

        try:
            return signal.Signals(os.WTERMSIG(self.status)).name
        except ValueError:
            return f"signal {os.WTERMSIG(self.status)}"
