"""otel-run's hand-off to the background deliverer: otel-run never waits for a collector.

After a run is written (its index end line), otel-run leaves the run id in the
store's outbox and, unless a deliverer is already working on that outbox, starts
one (:mod:`._deliver`) and exits at once. The deliverer runs at ``SCHED_IDLE``
priority (only on CPU time nothing else wants, so it never slows the user's
next command), in a session of its own (``setsid``: a shell's ``$(otel-run …)``
or a pipe does not wait for it, Ctrl-C and a closing terminal do not reach it),
with stdio on ``/dev/null``, no other inherited descriptor, no blocked signal,
and otel-run's environment (every ``OTEL_EXPORTER_OTLP_*`` setting applies).

Starting a process is not free on a busy machine: ``posix_spawn`` returns only
once the child has been scheduled and reached ``exec`` (milliseconds when both
cores are taken), and ``fork`` makes every later write of otel-run fault on a
copy-on-write page. So for a single run otel-run starts the deliverer-to-be
while the command runs (:func:`start_spare`): a :class:`Spare`, ``/bin/sh`` blocked
on a pipe. After the command otel-run only writes ``go`` to the pipe (the spare
execs the deliverer) or closes it (a deliverer is already at work: the spare
exits). ``otel-run --runs`` starts one deliverer after the series
(:func:`start_deliverer`).

Layout, under the store::

    outbox/<key>/<run_id>   a run handed off and not yet tried
    outbox/<key>.lock       flock(2)-locked by the deliverer working on <key>

``key`` is a digest of everything that decides where and how a run is sent
(:func:`settings_key`), so a deliverer only ever sends runs that otel-run would
have sent with its own settings.

The protocol, which leaves no entry without a deliverer coming for it:

* otel-run creates the entry, then tries the lock without blocking: taken means
  a deliverer is at work and will see the entry; free, otel-run releases it and
  starts a deliverer.
* a deliverer takes the lock (or exits: another one has it), claims and sends
  entries until the outbox is empty, releases the lock, looks once more, and
  goes on if an entry appeared and it can take the lock again.

An entry created while a deliverer holds the lock is seen by that deliverer
(or by whichever took the lock over) before it exits. Back-to-back runs (a
benchmark, a CI job of many short commands) therefore share one deliverer
instead of starting one interpreter and one exporter stack per run.

This module is imported by otel-run for every exported run: standard library
only, and only what the hand-off needs.
"""

from __future__ import annotations

import os
import sys

from otel_run.store._layout import OUTBOX, make_private_dirs, open_private

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

_SETTINGS_PREFIXES = (
    "OTEL_EXPORTER_OTLP_",
    "OTEL_RUN_EXPORT_",
    "SSL_CERT_",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GRPC_",
)


def settings_key(environ: Mapping[str, str], endpoint: str | None) -> str:
    """A digest of the export settings: ``--endpoint``, ``OTEL_EXPORTER_OTLP_*``,
    ``OTEL_RUN_EXPORT_*``, proxies, CA bundles, gRPC settings and the Python
    that sends. Runs with the same key are sent the same way."""
    import zlib  # already loaded by otel-run's start-up

    parts = [sys.executable, endpoint or ""]
    parts += sorted(
        f"{name}={value}"
        for name, value in environ.items()
        if name.upper().startswith(_SETTINGS_PREFIXES) or name.upper().endswith("_PROXY")
    )
    data = "\0".join(parts).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def outbox_dir(root: str, key: str) -> str:
    return os.path.join(root, OUTBOX, key)


def lock_path(root: str, key: str) -> str:
    return os.path.join(root, OUTBOX, key + ".lock")


def hand_off(
    root: str,
    run_ids: Iterable[str],
    environ: Mapping[str, str],
    endpoint: str | None,
    extra_path: str | None = None,
    spare: Spare | None = None,
) -> int | None:
    """Put ``run_ids`` in the outbox and start a deliverer unless one is at work
    (the ``spare`` :func:`start_spare` made, when there is one).

    Returns the new deliverer's pid, or None when a running deliverer takes the
    runs. Raises OSError (an unwritable store, a failed spawn)."""
    key = settings_key(environ, endpoint)
    try:
        box = outbox_dir(root, key)
        make_private_dirs(box)
        for run_id in run_ids:
            os.close(open_private(os.path.join(box, run_id), os.O_WRONLY | os.O_CREAT))
        fd = try_lock(lock_path(root, key))
    except BaseException:
        if spare is not None:
            spare.dismiss()
        raise
    if fd is None:
        if spare is not None:
            spare.dismiss()
        return None
    os.close(fd)  # releases the lock: the deliverer takes it
    if spare is not None:
        pid = spare.go() if spare.key == key else None
        if pid is not None:
            return pid
        spare.dismiss()
    return start_deliverer(root, key, environ, endpoint, extra_path)


def try_lock(path: str) -> int | None:
    """The descriptor of ``path`` locked exclusively, or None when another
    process holds the lock (never blocks). Closing the descriptor unlocks."""
    import fcntl

    fd = open_private(path, os.O_RDWR | os.O_CREAT, dirs=False)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


_SHELL = "/bin/sh"
_WAIT_FOR_GO = 'read -r go <&3 && [ "$go" = go ] && exec "$@" 3<&-'
"""The spare's script: become the deliverer on otel-run's ``go``; exit on end of file."""


class Spare:
    """A deliverer-to-be, started while the command runs so that nothing is
    started after it: ``/bin/sh`` blocked on a pipe, idle and detached, that
    becomes the deliverer when otel-run writes ``go`` and exits when the pipe
    closes without it (otel-run dismissed it, or died)."""

    __slots__ = ("_fd", "key", "pid")

    def __init__(self, key: str, pid: int, fd: int) -> None:
        self.key = key
        self.pid = pid
        self._fd = fd

    def go(self) -> int | None:
        """Let it become the deliverer; its pid, or None if it is gone."""
        try:
            os.write(self._fd, b"go\n")
        except OSError:
            return None
        finally:
            self.dismiss()
        return self.pid

    def dismiss(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def start_spare(root: str, environ: Mapping[str, str], endpoint: str | None, extra_path: str | None = None) -> Spare:
    """Start the :class:`Spare` for a run that will be handed off (otel-run
    calls this while the command runs; nothing is left for after it). Raises
    OSError."""
    key = settings_key(environ, endpoint)
    argv = [_SHELL, "-c", _WAIT_FOR_GO, "otel-run-deliverer", *_deliverer_argv(root, key, endpoint, extra_path)]
    read_end, write_end = os.pipe()
    try:
        pid = _spawn(argv, dict(environ), read_end)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return Spare(key, pid, write_end)


def start_deliverer(
    root: str, key: str, environ: Mapping[str, str], endpoint: str | None, extra_path: str | None = None
) -> int:
    """Start ``otel_run.export._deliver`` detached now; returns its pid, never waits."""
    return _spawn(_deliverer_argv(root, key, endpoint, extra_path), dict(environ))


def _deliverer_argv(root: str, key: str, endpoint: str | None, extra_path: str | None) -> list[str]:
    """otel-run's own interpreter, with ``-E`` (no ``PYTHONPATH``: the deliverer
    is never itself traced, even when otel-run runs under another otel-run) and
    this ``otel_run`` package first on its path."""
    import otel_run

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(otel_run.__file__)))
    path = [package_parent] + ([extra_path] if extra_path and extra_path != package_parent else [])
    code = (
        f"import sys; sys.path[0:1] = {path!r}; from otel_run.export._deliver import main; main()"  # replaces '' (cwd)
    )
    return [sys.executable, "-E", "-c", code, root, key] + (["--endpoint", endpoint] if endpoint else [])


def _spawn(argv: list[str], env: dict[str, str], keep: int | None = None) -> int:
    """Start ``argv`` detached and idle (``keep`` becomes its descriptor 3);
    returns its pid. ``posix_spawn`` (``vfork``: no copy of otel-run, whose
    every later write would otherwise fault on a copy-on-write page) in a
    session of its own, no blocked signals, stdio on /dev/null, no other
    inherited descriptor; ``SCHED_IDLE`` right after (glibc's ``posix_spawn``
    refuses it in its attributes)."""
    actions: list[tuple[object, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    inherited = _inherited_fds()
    if keep is not None:
        actions.append((os.POSIX_SPAWN_DUP2, keep, 3))
        inherited = [fd for fd in inherited if fd != 3]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited]  # a pipe a caller passed down must not outlive otel-run
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True, setsigmask=())
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        pass  # the deliverer lowers its own priority first thing
    return pid


def _inherited_fds() -> list[int]:
    """Descriptors above 2 that a child would inherit."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    out = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    out.append(fd)
            except OSError:
                pass  # the descriptor listdir itself used
    return out


def wait_for_deliverers(root: str, timeout: float) -> bool:
    """Wait until no deliverer works on the store's outboxes (``otel-trace push
    --unpushed`` then does not send a run a deliverer is sending); False when
    one is still at work after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    try:
        locks = [n for n in os.listdir(os.path.join(root, OUTBOX)) if n.endswith(".lock")]
    except FileNotFoundError:
        return True
    for name in locks:
        while True:
            fd = try_lock(os.path.join(root, OUTBOX, name))
            if fd is not None:
                os.close(fd)
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    return True
