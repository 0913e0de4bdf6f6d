"""otel-run's hand-off to the background deliverer: otel-run never waits for a collector.

After a run is written (its index end line), otel-run leaves the run id in the
store's outbox and, unless a deliverer is already working on that outbox, starts
one (:mod:`._deliver`) and exits at once. The deliverer is started with
``posix_spawn`` (no ``fork`` of otel-run, no wait): in a session of its own
(``setsid``: a shell's ``$(otel-run …)`` or a pipe does not wait for it, Ctrl-C
and a closing terminal do not reach it), stdio on ``/dev/null``, no inherited
descriptors, at ``SCHED_IDLE`` priority (it runs only on CPU time nothing else
wants, so it never slows the user's next command), with otel-run's environment
(every ``OTEL_EXPORTER_OTLP_*`` setting applies as before).

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

This module is imported by otel-run after every exported run: standard library
only, and only what the hand-off needs.
"""

from __future__ import annotations

import os
import sys

from otel_run.store._layout import OUTBOX

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
) -> int | None:
    """Put ``run_ids`` in the outbox and start a deliverer unless one is at work.

    Returns the new deliverer's pid, or None when a running deliverer takes the
    runs. Raises OSError (an unwritable store, a failed spawn)."""
    key = settings_key(environ, endpoint)
    box = outbox_dir(root, key)
    os.makedirs(box, exist_ok=True)
    for run_id in run_ids:
        os.close(os.open(os.path.join(box, run_id), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    fd = try_lock(lock_path(root, key))
    if fd is None:
        return None
    os.close(fd)  # releases the lock: the deliverer takes it
    return start_deliverer(root, key, environ, endpoint, extra_path)


def try_lock(path: str) -> int | None:
    """The descriptor of ``path`` locked exclusively, or None when another
    process holds the lock (never blocks). Closing the descriptor unlocks."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def start_deliverer(
    root: str, key: str, environ: Mapping[str, str], endpoint: str | None, extra_path: str | None = None
) -> int:
    """Start ``otel_run.export._deliver`` detached; returns its pid, never waits.

    The interpreter is otel-run's own, started with ``-E`` (no ``PYTHONPATH``:
    the deliverer is never itself traced, even when otel-run runs under
    another otel-run) and with this ``otel_run`` package first on its path."""
    import otel_run

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(otel_run.__file__)))
    path = [package_parent] + ([extra_path] if extra_path and extra_path != package_parent else [])
    code = (
        f"import sys; sys.path[0:1] = {path!r}; from otel_run.export._deliver import main; main()"  # replaces '' (cwd)
    )
    argv = [sys.executable, "-E", "-c", code, root, key] + (["--endpoint", endpoint] if endpoint else [])
    actions: list[tuple[object, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
    pid = os.posix_spawn(sys.executable, argv, dict(environ), file_actions=actions, setsid=True, setsigmask=())
    try:  # at once, so that even its interpreter's start-up runs idle (glibc's posix_spawn refuses SCHED_IDLE)
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        pass  # the deliverer lowers its own priority first thing
    return pid


def _inherited_fds() -> list[int]:
    """Descriptors above 2 that a child would inherit (a pipe a caller passed
    down must not stay open in a process that outlives otel-run)."""
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
