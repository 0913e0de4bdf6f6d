"""The hooks on how a traced process makes children: ``os.exec*``, ``os.fork``
and ``os.waitpid``/``os.wait4``, and the environment a child inherits.

:func:`install` wraps them once, for the process span :mod:`._boot` made:

* ``exec`` ends this image's span (its successor adopts a new span id through
  ``OTEL_RUN_PROCESS``) and puts it back if the ``exec`` fails;
* ``fork`` notes when and under which span the child was forked; the child
  makes its own process span at first use (nothing may happen in the fork
  handler itself: the child may be about to ``exec``);
* a child reaped with ``os.waitpid`` that no more precise hook recorded (a
  ``multiprocessing`` worker) gets a ``waited`` record under the span id it
  derived for itself (:func:`otel_run._wire.derived_span_id`).

Standard library only; loaded at start-up by every traced process.
"""

import os
from time import time_ns

from otel_run import _env
from otel_run._wire import (
    RECORD_REAP,
    RECORD_WAITED,
    SIGNALS_KEPT,
    command_name,
    debug,
    derived_span_id,
    exit_status,
    learn_secrets,
    new_span_id,
    reaped_child_json,
    traceparent,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar

    from otel_run.bootstrap._boot import Process

    _F = TypeVar("_F")

SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
"""The directory holding otel-run's ``sitecustomize`` (and nothing else)."""

ORIGINAL_WAIT4 = os.wait4
"""``os.wait4`` before the bootstrap wrapped it (for reapers that record themselves)."""
MANAGED_PIDS: "set[int]" = set()
"""Children whose span a more precise hook (``subprocess``) writes."""
SPAWNED: "dict[int, tuple[str, int, str, list[str], str]]" = {}
"""Children started by ``os.fork``/``os.forkpty``/``os.posix_spawn*``, by pid:
(span id, start, parent span, command, span name), for the record written when
one is reaped (a worker killed before it wrote its own span is still there)."""


# ---------------------------------------------------------- the environment


def child_environment(
    process: "Process",
    base: "Mapping[str, str]",
    span_id: str,
    parent_id: str,
    spawner_pid: int,
    relation: str,
    spawn_ns: int,
) -> "dict[str, str]":
    """The environment for a child of ``process`` whose span ``span_id`` we reserve
    (its credential-named variables' values are redacted from what we write)."""
    learn_secrets(base)
    env = dict(base)
    for name in (_env.TRACESTATE, _env.BAGGAGE, _env.OTEL_RUN_PYLIB):
        value = process.environ.get(name)
        if value and name not in env:
            env[name] = value
    return prepare_environment(
        env, process.trace_id, span_id, parent_id, spawner_pid, relation, spawn_ns, process.writer.store
    )


def prepare_environment(
    env: "dict[str, str]",
    trace_id: str,
    span_id: str,
    parent_id: str,
    spawner_pid: int,
    relation: str,
    spawn_ns: int,
    store: str,
) -> "dict[str, str]":
    """Put the trace context and the bootstrap into ``env`` (in place)."""
    env[_env.TRACEPARENT] = traceparent(trace_id, span_id)
    env[_env.OTEL_RUN_PROCESS] = f"{span_id}-{parent_id}-{spawner_pid}-{relation}-{spawn_ns}"
    env[_env.OTEL_RUN_STORE] = store
    env[_env.PYTHONPATH] = with_site_dir(env.get(_env.PYTHONPATH))
    return env


def with_site_dir(pythonpath: "str | None") -> str:
    """``PYTHONPATH`` with our ``sitecustomize`` directory first (once)."""
    parts = [p for p in (pythonpath or "").split(os.pathsep) if p and p != SITE_DIR]
    return os.pathsep.join([SITE_DIR, *parts])


# ---------------------------------------------------------------- the hooks


def install(process: "Process") -> None:
    """Wrap ``os.execv``/``os.execve`` (and ``os._execvpe``, behind
    ``os.execvp*``/``os.execlp*``), ``os.waitpid``/``os.wait4`` and register
    the fork handlers, for ``process``."""
    pending: "list[str | None]" = [None]  # the hint of the exec under way: execvp tries one PATH entry after another
    for name in ("execv", "execve"):
        setattr(os, name, _exec_wrapper(process, getattr(os, name), name == "execve", pending))
    execvpe = getattr(os, "_execvpe", None)
    if execvpe is not None:
        setattr(os, "_execvpe", _path_search_wrapper(process, execvpe, pending))  # noqa: B010 - private, maybe absent
    _wrap_wait(process)
    _wrap_kill(process)
    _register_fork(process)
    _wrap_spawns(process)


def _exec_wrapper(
    process: "Process", original: "Callable[..., Any]", has_env: bool, pending: "list[str | None]"
) -> "Callable[..., Any]":
    def exec_(path: "Any", args: "Any", *rest: "Any") -> "Any":
        outer = pending[0] is None
        saved = os.environ.get(_env.OTEL_RUN_PROCESS)
        try:
            hint = _end_before_exec(process, args, rest[0] if has_env and rest else None) if outer else str(pending[0])
            if has_env and rest:
                env = dict(rest[0])
                env[_env.TRACEPARENT] = traceparent(process.trace_id, process.span_id)
                env[_env.OTEL_RUN_PROCESS] = hint
                rest = (env, *rest[1:])
            else:
                os.environ[_env.OTEL_RUN_PROCESS] = hint
        except Exception as exc:
            debug(f"preparing exec failed: {exc!r}")
        try:
            return original(path, args, *rest)
        except BaseException:
            if outer:
                _exec_failed(process, saved)
            raise

    return _like(original, exec_)


def _path_search_wrapper(
    process: "Process", original: "Callable[..., Any]", pending: "list[str | None]"
) -> "Callable[..., Any]":
    """``os._execvpe`` tries ``exec`` in each ``PATH`` directory until one
    works: the process span ends once, before the first try, not once a try."""

    def execvpe(file: "Any", args: "Any", env: "Any" = None) -> "Any":
        if pending[0] is not None:
            return original(file, args, env)
        saved = os.environ.get(_env.OTEL_RUN_PROCESS)
        try:
            pending[0] = _end_before_exec(process, args, env)
        except Exception as exc:
            debug(f"preparing exec failed: {exc!r}")
            return original(file, args, env)
        try:
            return original(file, args, env)
        except BaseException:
            _exec_failed(process, saved)
            raise
        finally:
            pending[0] = None

    return _like(original, execvpe)


def _end_before_exec(process: "Process", args: "Any", env: "Mapping[str, str] | None") -> str:
    """End this image's process span (the exec's record) and return the hint
    its successor adopts its span id from."""
    learn_secrets(os.environ if env is None else env)
    process.ensure()
    hint = f"{new_span_id()}-{process.span_id}-{process.pid}-x-{time_ns()}"
    process.exec_args = [os.fsdecode(a) for a in args]
    if process.fork_parent is not None and process.name.endswith(" (fork)"):
        process.name = command_name(process.exec_args)  # fork + exec: the child is the program it runs
    process.finish()
    return hint


def _exec_failed(process: "Process", saved: "str | None") -> None:
    """Every exec failed: this image goes on; its span is written again at exit."""
    process.finished = False
    process.exec_args = None
    if saved is None:
        os.environ.pop(_env.OTEL_RUN_PROCESS, None)
    else:
        os.environ[_env.OTEL_RUN_PROCESS] = saved


def _wrap_wait(process: "Process") -> None:
    waitpid, wait4 = os.waitpid, os.wait4

    def waitpid_(pid: int, options: int) -> "tuple[int, int]":
        result = waitpid(pid, options)
        if result[0] > 0:
            _waited(process, result[0], result[1], None)
        return result

    def wait4_(pid: int, options: int) -> "tuple[int, int, Any]":
        result = wait4(pid, options)
        if result[0] > 0:
            _waited(process, result[0], result[1], result[2])
        return result

    os.waitpid = _like(waitpid, waitpid_)
    os.wait4 = _like(wait4, wait4_)


def _waited(process: "Process", pid: int, status: int, rusage: "Any") -> None:
    """A child was reaped: record its exit, under the span id we gave it when we
    started it, else under the one it derived."""
    if pid in MANAGED_PIDS:
        return
    try:
        if not (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
            return
        process.ensure()
        now = time_ns()
        code, signal_name = exit_status(status)
        known = SPAWNED.pop(pid, None)
        record_kind, name, argv = RECORD_WAITED, None, None
        if known is not None:
            span_id, start, parent_id, argv, name = known
            record_kind = RECORD_REAP
        else:
            span_id = derived_span_id(process.trace_id, process.pid, pid)
            start, parent_id = now, process.span_id
        record = reaped_child_json(
            process.trace_id,
            span_id,
            parent_id,
            argv,
            pid,
            start,
            now,
            code,
            signal_name,
            rusage,
            record_kind,
            name=name,
        )
        process.writer.write(process.trace_id, '{"resourceSpans":[' + record + "]}")
    except Exception as exc:
        debug(f"recording the exit of {pid} failed: {exc!r}")


def _wrap_kill(process: "Process") -> None:
    original = os.kill

    def kill(pid: int, signal: int) -> None:
        original(pid, signal)
        # the readers see a process that died of it as ended as asked (store._merge)
        if pid > 0 and signal and len(process.signals_sent) < SIGNALS_KEPT:
            process.signals_sent.append((time_ns(), pid, int(signal)))

    os.kill = _like(original, kill)


def _register_fork(process: "Process") -> None:
    forked: list[Any] = [0, ""]  # when, and under which span, the last fork happened

    def before() -> None:
        try:
            forked[0] = time_ns()
            forked[1] = process.current_span_id()
            for callback in process.fork_callbacks:
                callback()  # flush buffers so the child does not inherit them
        except Exception as exc:
            debug(f"before fork: {exc!r}")

    def after_in_child() -> None:
        process.writer.after_fork()
        process.fork_pending = (forked[0] or time_ns(), forked[1] or process.span_id)
        SPAWNED.clear()  # the parent's children are not ours

    os.register_at_fork(before=before, after_in_child=after_in_child)
    for name in ("fork", "forkpty"):
        original = getattr(os, name, None)
        if original is not None:
            setattr(os, name, _fork_wrapper(process, original, forked))


def _fork_wrapper(process: "Process", original: "Callable[..., Any]", forked: "list[Any]") -> "Callable[..., Any]":
    """Remember a forked child (when, under which span) for its reaper's record:
    the child itself writes its span only at first use, or never if killed first."""

    def fork_() -> "Any":
        result = original()
        pid = result if isinstance(result, int) else result[0]
        if pid > 0:
            try:
                span_id = derived_span_id(process.trace_id, process.pid, pid)
                name = process.name + " (fork)"
                SPAWNED[pid] = (span_id, forked[0] or time_ns(), forked[1] or process.span_id, process.argv, name)
            except Exception as exc:
                debug(f"fork: {exc!r}")
        return result

    return _like(original, fork_)


def _wrap_spawns(process: "Process") -> None:
    """``os.posix_spawn``/``os.posix_spawnp`` (the child's environment carries
    the trace) and ``os.system`` (its shell becomes a span)."""
    for name in ("posix_spawn", "posix_spawnp"):
        original = getattr(os, name, None)
        if original is not None:
            setattr(os, name, _posix_spawn_wrapper(process, original))
    os.system = _system_wrapper(process, os.system)  # type: ignore[assignment]


def _posix_spawn_wrapper(process: "Process", original: "Callable[..., Any]") -> "Callable[..., Any]":
    def posix_spawn(path: "Any", argv: "Any", env: "Any", *args: "Any", **kwargs: "Any") -> "Any":
        known = None
        try:
            hint = env.get(_env.OTEL_RUN_PROCESS, "") if hasattr(env, "get") else ""
            if hint.split("-")[2:3] != [str(os.getpid())]:  # not prepared by a hook of ours (subprocess)
                process.ensure()
                span_id, parent_id, now = new_span_id(), process.current_span_id(), time_ns()
                env = child_environment(process, env, span_id, parent_id, os.getpid(), "c", now)
                command = [os.fsdecode(a) for a in argv]
                known = (span_id, now, parent_id, command, command_name(command))
        except Exception as exc:
            debug(f"posix_spawn: {exc!r}")
        pid = original(path, argv, env, *args, **kwargs)
        if known is not None:
            SPAWNED[pid] = known
        return pid

    return _like(original, posix_spawn)


def _usage(user: float, system: float) -> "Any":
    """The part of a ``struct rusage`` a record holds (a difference of two);
    made when ``os.system`` is used, not at start-up."""
    from types import SimpleNamespace

    return SimpleNamespace(ru_utime=user, ru_stime=system, ru_maxrss=0)


def _system_wrapper(process: "Process", original: "Callable[[Any], int]") -> "Callable[[Any], int]":
    """``os.system`` forks, execs and waits in C, out of the other hooks' sight:
    its shell becomes a process span (no pid: C keeps it) with the exit status
    and the CPU its tree used, and the programs it runs nest under it."""

    def system(command: "Any") -> int:
        try:
            process.ensure()
            span_id, parent_id, start = new_span_id(), process.current_span_id(), time_ns()
            import resource  # a C module: safe to load here, not paid at start-up

            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            saved = os.environ.get(_env.TRACEPARENT)
            os.environ[_env.TRACEPARENT] = traceparent(process.trace_id, span_id)
        except Exception as exc:
            debug(f"os.system: {exc!r}")
            return original(command)
        try:
            status = original(command)
        finally:
            if saved is None:
                os.environ.pop(_env.TRACEPARENT, None)
            else:
                os.environ[_env.TRACEPARENT] = saved
        try:
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = _usage(after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)
            code, signal_name = exit_status(status) if status >= 0 else (None, None)
            argv = ["sh", "-c", os.fsdecode(command)]
            learn_secrets(os.environ)  # the shell's: a variable set at run time
            record = reaped_child_json(
                process.trace_id, span_id, parent_id, argv, None, start, time_ns(), code, signal_name, used
            )
            process.writer.write(process.trace_id, '{"resourceSpans":[' + record + "]}")
        except Exception as exc:
            debug(f"os.system: {exc!r}")
        return status

    return _like(original, system)


def _like(original: "Callable[..., Any]", wrapper: "_F") -> "_F":
    """``wrapper`` under ``original``'s name and docstring (``functools.wraps``
    without the import, on every traced process's start-up path)."""
    wrapper.__name__ = original.__name__  # type: ignore[attr-defined]
    wrapper.__doc__ = original.__doc__
    return wrapper
