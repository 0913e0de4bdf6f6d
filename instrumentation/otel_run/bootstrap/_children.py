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
    RECORD_WAITED,
    debug,
    derived_span_id,
    exit_status,
    new_span_id,
    reaped_child_json,
    traceparent,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from otel_run.bootstrap._boot import Process

SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
"""The directory holding otel-run's ``sitecustomize`` (and nothing else)."""

ORIGINAL_WAIT4 = os.wait4
"""``os.wait4`` before the bootstrap wrapped it (for reapers that record themselves)."""
MANAGED_PIDS: "set[int]" = set()
"""Children whose span a more precise hook (``subprocess``) writes."""


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
    """The environment for a child of ``process`` whose span ``span_id`` we reserve."""
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
    _register_fork(process)


def _exec_wrapper(
    process: "Process", original: "Callable[..., Any]", has_env: bool, pending: "list[str | None]"
) -> "Callable[..., Any]":
    def exec_(path: "Any", args: "Any", *rest: "Any") -> "Any":
        outer = pending[0] is None
        saved = os.environ.get(_env.OTEL_RUN_PROCESS)
        try:
            hint = _end_before_exec(process, args) if outer else str(pending[0])
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

    exec_.__name__ = original.__name__
    exec_.__doc__ = original.__doc__
    return exec_


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
            pending[0] = _end_before_exec(process, args)
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

    execvpe.__name__ = original.__name__
    execvpe.__doc__ = original.__doc__
    return execvpe


def _end_before_exec(process: "Process", args: "Any") -> str:
    """End this image's process span (the exec's record) and return the hint
    its successor adopts its span id from."""
    process.ensure()
    hint = f"{new_span_id()}-{process.span_id}-{process.pid}-x-{time_ns()}"
    process.exec_args = [os.fsdecode(a) for a in args]
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

    waitpid_.__doc__, wait4_.__doc__ = waitpid.__doc__, wait4.__doc__
    os.waitpid = waitpid_
    os.wait4 = wait4_


def _waited(process: "Process", pid: int, status: int, rusage: "Any") -> None:
    """A child was reaped: record its exit under the span id it derived."""
    if pid in MANAGED_PIDS:
        return
    try:
        if not (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
            return
        process.ensure()
        now = time_ns()
        code, signal_name = exit_status(status)
        span_id = derived_span_id(process.trace_id, process.pid, pid)
        record = reaped_child_json(
            process.trace_id, span_id, process.span_id, None, pid, now, now, code, signal_name, rusage, RECORD_WAITED
        )
        process.writer.write(process.trace_id, '{"resourceSpans":[' + record + "]}")
    except Exception as exc:
        debug(f"recording the exit of {pid} failed: {exc!r}")


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

    os.register_at_fork(before=before, after_in_child=after_in_child)
