"""The profilers a traced process starts for ``otel-run --profile cpu,memory``.

Imported by the bootstrap only when ``OTEL_RUN_PROFILE`` asks for ``cpu`` or
``memory``: a process traced without profiles never loads this module, py-spy
or memray.

**cpu** — one ``py-spy record --pid <self>`` per Python process, started here
at start-up (and in a forked child at the fork). Why one sampler per process
rather than one ``py-spy --subprocesses`` for the tree: py-spy's subprocess
mode looks for new children every 100 ms and needs ~90 ms more to attach, so
short processes (a pytest worker's first second, a helper that lives 150 ms)
are lost, and it only sees descendants of the root, never a container's
processes or a daemon that re-parented itself. Per process the sampler starts
within the bootstrap, covers every process at any depth, and costs the same
sampling work. It is started through ``sh -c '… &'`` so py-spy is not a child
of the traced program (its ``os.wait()`` or SIGCHLD handler never sees it); the
bootstrap reaps the short-lived ``sh`` at once.

py-spy is run with ``--idle`` and ``--nonblocking``: its ``chrometrace`` output
only ends a stack when a later *recorded* sample differs, so without ``--idle``
an idle stretch would be charged to the last busy stack; with it, every sample
of every thread has a time, and idle samples are told apart when the profile is
read (py-spy's own heuristic: a leaf in ``threading.wait``, ``selectors.select``,
``poll``). ``--nonblocking`` does not stop the process at each sample, so the
traced program is not slowed by the sampler's reads (a torn stack is possible,
rarely). ``--native`` is not used: it needs the blocking mode and costs ~10×.

Each sampler holds a lock file (an inherited ``flock``) until it has written
its output, so otel-run waits for exactly the samplers of its trace.

**memory** — a ``memray.Tracker`` writing every allocation
(``FileFormat.ALL_ALLOCATIONS``, readable up to the damage when the process is
killed) with memory snapshots every 10 ms, one file per process.

Every profiler writes under ``<store>/profiles/<trace_id>/raw/``, named after
the process span, with a one-line ``.meta`` file saying what was started and
when (the time py-spy's timestamps count from).
"""

import os
from time import time_ns

from otel_run import _env
from otel_run._wire import debug, derived_span_id, json_str, make_private_dirs, open_private

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from otel_run.bootstrap._boot import Process

PROFILES = "profiles"
RAW = "raw"
DEFAULT_RATE = 100
MEMORY_INTERVAL_MS = 10

_WAITPID = os.waitpid  # imported before the bootstrap wraps os.waitpid: the sh is no child of the program's


def raw_dir(store: str, trace_id: str) -> str:
    return os.path.join(store, PROFILES, trace_id, RAW)


def start(process: "Process", environ: "Mapping[str, str]", wanted: "set[str]") -> None:
    """Start the profilers ``wanted`` for this process (and, for ``cpu``, in
    every child it forks); never raises."""
    try:
        _start(process, environ, wanted, process.span_id)
    except Exception as exc:
        debug(f"profiling not started: {exc!r}")
        return
    if "cpu" in wanted:
        os.register_at_fork(after_in_child=lambda: _in_forked_child(process, environ))


def _start(process: "Process", environ: "Mapping[str, str]", wanted: "set[str]", span_id: str) -> None:
    directory = raw_dir(process.writer.store, process.trace_id)
    make_private_dirs(directory)
    base = os.path.join(directory, span_id)
    import _thread

    meta: dict[str, Any] = {
        "span_id": span_id,
        "pid": os.getpid(),
        "main_thread": _thread.get_ident(),
        "start_ns": time_ns(),
    }
    if "memory" in wanted:
        meta["memory"] = _start_memray(process, base)
    if "cpu" in wanted:
        meta["cpu"] = _start_pyspy(environ, base)
        if meta["pid"] == 1 or environ.get(_env.OTEL_RUN_IN_CONTAINER) == "1":
            process.exit_callbacks.append(lambda: _stop_pyspy(base))
    fd = open_private(base + ".meta", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, False)
    try:
        os.write(fd, (_json(meta) + "\n").encode("utf-8", "backslashreplace"))
    finally:
        os.close(fd)


def _start_pyspy(environ: "Mapping[str, str]", base: str) -> "dict[str, Any]":
    pyspy = environ.get(_env.OTEL_RUN_PYSPY) or "py-spy"
    rate = _rate(environ)
    lock = base + ".cpu.lock"
    fd = open_private(lock, os.O_WRONLY | os.O_CREAT, False)
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)
    argv = [
        pyspy, "record", "--pid", str(os.getpid()), "--rate", str(rate), "--format", "chrometrace",
        "--output", base + ".cpu.json", "--idle", "--nonblocking",
    ]  # fmt: skip
    # sh backgrounds py-spy and exits: py-spy is re-parented away from the traced program.
    # Its stdin is /dev/null, its output goes to a log the reader shows on failure;
    # the lock is inherited as fd 3 and held until py-spy exits.
    script = 'exec 3>&"$0"; "$@" </dev/null >"$LOG" 2>&1 3>&3 & echo $! >"$LOG.pid"'
    env = {"PATH": environ.get("PATH", "/usr/bin:/bin"), "LOG": base + ".cpu.log"}
    spawned = time_ns()
    os.set_inheritable(fd, True)
    try:
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", script, str(fd), *argv], env)
    finally:
        os.close(fd)
    _reap(pid)
    return {"rate_hz": rate, "spawned_ns": spawned, "file": base + ".cpu.json", "lock": lock, "log": base + ".cpu.log"}


def _start_memray(process: "Process", base: str) -> "dict[str, Any]":
    """A memray tracker for this process, started when ``__main__`` first runs.

    Started here, inside ``site``, memray loses the Python stacks of everything
    after start-up (memray 1.x on CPython 3.11: every allocation of the program
    has an empty stack). So the bootstrap sets a one-shot profile function that
    starts the tracker at the first call ``__main__`` makes (a function, an
    import or a builtin) and removes itself. memray then sees one frame too
    many, the trigger's own (:data:`MEMRAY_TRIGGER`), and not the function whose
    call fired it, while that function runs; the trigger writes that function's
    name to a side file and the reader puts it in the trigger's place.
    """
    path = base + ".memray"
    try:
        import memray
    except ImportError as exc:
        return {"error": f"memray cannot be imported here: {exc}"}
    import sys

    if os.path.exists(path):
        os.unlink(path)
    state: dict[str, Any] = {}

    def begin() -> None:
        try:
            tracker = memray.Tracker(
                path, memory_interval_ms=MEMORY_INTERVAL_MS, file_format=memray.FileFormat.ALL_ALLOCATIONS
            )
            tracker.__enter__()
            state["tracker"] = tracker
        except Exception as exc:
            debug(f"memray could not start: {exc!r}")

    def _otel_run_memray_start(frame: "Any", event: str, arg: "Any") -> None:
        caller = frame.f_back if event == "call" else frame
        if caller is None or caller.f_globals.get("__name__") != "__main__":
            return
        sys.setprofile(None)
        called = (frame.f_code.co_name, frame.f_code.co_filename) if event == "call" else ("", "")
        try:
            fd = open_private(base + ".memray.trigger", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, False)
            os.write(fd, _json({"name": called[0], "file": called[1]}).encode("utf-8", "backslashreplace"))
            os.close(fd)
        except OSError:
            pass
        begin()

    if sys.getprofile() is None:
        sys.setprofile(_otel_run_memray_start)
    else:  # the program's own profiler is there already: start now (stacks may be empty)
        begin()

    def stop() -> None:
        if sys.getprofile() is _otel_run_memray_start:
            sys.setprofile(None)
        tracker = state.pop("tracker", None)
        if tracker is None:
            return
        try:
            tracker.__exit__(None, None, None)
        except Exception as exc:
            debug(f"stopping memray failed: {exc!r}")

    process.exit_callbacks.append(stop)
    return {"file": path, "interval_ms": MEMORY_INTERVAL_MS, "version": getattr(memray, "__version__", "")}


MEMRAY_TRIGGER = "_otel_run_memray_start"
"""The name of the profile function that starts memray (see :func:`_start_memray`)."""


def _stop_pyspy(base: str, deadline_s: float = 3.0) -> None:
    """Make py-spy write its output now and wait for it (bounded): in a
    container, whose pid 1's exit kills every process of its pid namespace —
    py-spy included, before it has written anything. Elsewhere py-spy notices
    the exit by itself and otel-run waits for it, not the program."""
    import signal
    from time import monotonic

    try:
        with open(base + ".cpu.log.pid", encoding="ascii") as f:
            pid = int(f.read().strip())
        os.kill(pid, signal.SIGINT)  # py-spy's Ctrl-C: stop sampling, write the output
    except (OSError, ValueError) as exc:
        debug(f"stopping py-spy failed: {exc!r}")
        return
    wait_unlocked(base + ".cpu.lock", monotonic() + deadline_s, 0.01)


def wait_unlocked(lock: str, deadline: float, poll_s: float = 0.02) -> bool:
    """Wait until no sampler holds ``lock`` (its py-spy has written its output)
    or ``time.monotonic()`` passes ``deadline``; True when it is free (or gone)."""
    import fcntl
    from time import monotonic, sleep

    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if monotonic() >= deadline:
                    return False
                sleep(poll_s)
    finally:
        os.close(fd)


def _in_forked_child(process: "Process", environ: "Mapping[str, str]") -> None:
    """A child forked without exec (a multiprocessing worker) gets a sampler of
    its own at once, named after the span its bootstrap will give it (the
    span is only written at first use; the samples cannot wait). memray does
    not follow forks here: a forked child has no memory profile."""
    try:
        _start(process, environ, {"cpu"}, derived_span_id(process.trace_id, os.getppid(), os.getpid()))
    except Exception as exc:
        debug(f"profiling the forked child not started: {exc!r}")


def _reap(pid: int) -> None:
    try:
        _WAITPID(pid, 0)
    except ChildProcessError:
        pass


def _rate(environ: "Mapping[str, str]") -> int:
    value = environ.get(_env.OTEL_RUN_PROFILE_RATE, "")
    if value.isdigit() and 0 < int(value) <= 10_000:
        return int(value)
    return DEFAULT_RATE


def _json(obj: "Any") -> str:
    if isinstance(obj, dict):
        return "{" + ",".join(json_str(str(k)) + ":" + _json(v) for k, v in obj.items()) + "}"
    if isinstance(obj, bool):
        return "true" if obj else "false"
    if isinstance(obj, (int, float)):
        return repr(obj)
    if obj is None:
        return "null"
    return json_str(str(obj))
