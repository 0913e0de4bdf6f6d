"""Tracing of ``subprocess``: a span for every ``Popen`` (and so ``run``,
``call``, ``check_output``…), the trace context handed to the child through its
environment, and the child's exit status, CPU time and peak memory from
``wait4(2)``.

Two recorders share the patching:

* under otel-run, :class:`BootRecorder` writes the spans straight into the
  store through the bootstrap's writer: no OpenTelemetry SDK is loaded for a
  process that only starts subprocesses (pytest, build tools);
* under stock ``opentelemetry-instrument``,
  :class:`otel_run.instrument.subprocess.SubprocessInstrumentor` plugs in an
  OpenTelemetry-API recorder (:class:`ApiRecorder`).

Each call makes two spans: the *call* span in the parent (from ``Popen()`` to
the moment the child is reaped) and the child's *process* span (from the spawn
to the reap) under it. A Python child adopts the process span reserved for it
(see :data:`otel_run._env.OTEL_RUN_PROCESS`) and fills in its own view; for any
other child, the parent's view recorded here is the whole span.

``Popen._try_wait``, ``_internal_poll`` and ``_handle_exitstatus`` are private
but unchanged from Python 3.8 to 3.13; if one is missing the instrumentation
records no rusage or no end, and never fails the call.
"""

from __future__ import annotations

import os
import subprocess
import threading
from time import time_ns

from otel_run import _wire
from otel_run._redact import redact_args
from otel_run.bootstrap import _boot, _children

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Protocol

    class Recorder(Protocol):
        def begin(self, call: Call, env: Mapping[Any, Any] | None) -> dict[Any, Any]: ...
        def end(self, call: Call) -> None: ...
        def detach_all(self) -> None: ...


# positions in Popen(args, bufsize, executable, stdin, stdout, stderr, preexec_fn, close_fds, shell, cwd, env, ...)
_ENV_INDEX = 9
_SHELL_INDEX = 7
_CALL_ATTR = "_otel_run_call"

_originals: dict[str, Any] = {}
_recorder: Recorder | None = None


class Call:
    """One ``Popen``: what the parent knows about the child."""

    __slots__ = (
        "argv",
        "child_span_id",
        "detached",
        "end_ns",
        "error",
        "handle",
        "parent_id",
        "pid",
        "returncode",
        "rusage",
        "shell",
        "span_id",
        "spawned_ns",
        "start_ns",
    )

    def __init__(self, argv: list[str], shell: bool) -> None:
        self.argv = argv
        self.shell = shell
        self.start_ns = time_ns()
        self.spawned_ns = 0
        self.end_ns = 0
        self.span_id = ""
        self.parent_id = ""
        self.child_span_id = ""
        self.pid = 0
        self.returncode: int | None = None
        self.rusage: Any = None
        self.error: BaseException | None = None
        self.detached = False
        self.handle: Any = None

    @property
    def name(self) -> str:
        return "subprocess " + (os.path.basename(self.argv[0]) if self.argv else "?")

    def call_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "process.command": self.argv[0] if self.argv else "",
            "process.command_args": redact_args(self.argv[: _wire.ARGS_MAX]),
        }
        if self.shell:
            attrs["otel_run.subprocess.shell"] = True
        if self.pid:
            attrs["process.pid"] = self.pid
        if self.returncode is not None:
            attrs["process.exit.code"] = _exit_code(self.returncode)
            if self.returncode < 0:
                attrs["otel_run.process.signal"] = _wire.signal_name(-self.returncode)
        if self.detached:
            attrs["otel_run.subprocess.detached"] = True
        return attrs

    def status(self) -> tuple[int, str]:
        if self.error is not None:
            return _wire.STATUS_ERROR, f"{type(self.error).__name__}: {self.error}"
        rc = self.returncode
        if rc is None or rc == 0:
            return _wire.STATUS_UNSET, ""
        if rc < 0:
            return _wire.STATUS_ERROR, f"killed by {_wire.signal_name(-rc)}"
        return _wire.STATUS_ERROR, f"exit code {rc}"


# ------------------------------------------------------------- recorders


class BootRecorder:
    """Writes call and child spans through the otel-run bootstrap."""

    def __init__(self) -> None:
        self._open: dict[int, Call] = {}
        self._lock = threading.Lock()

    def begin(self, call: Call, env: Mapping[Any, Any] | None) -> dict[Any, Any]:
        process = _boot.PROCESS
        assert process is not None
        call.parent_id = _boot.current_parent_span_id()
        call.span_id = _wire.new_span_id()
        call.child_span_id = _wire.new_span_id()
        base = os.environ if env is None else env
        new_env = _children.child_environment(
            process, base, call.child_span_id, call.span_id, os.getpid(), "c", time_ns()
        )
        with self._lock:
            self._open[id(call)] = call
        return new_env

    def end(self, call: Call) -> None:
        with self._lock:
            self._open.pop(id(call), None)
        process = _boot.PROCESS
        if process is None:
            return
        process.ensure()
        end = call.end_ns or time_ns()
        events: list[tuple[str, int, Mapping[str, Any]]] = [("spawned", call.spawned_ns, {})] if call.spawned_ns else []
        if call.error is not None:
            events.append(("exception", end, _wire.exception_attributes(call.error)))
        call_span = _wire.span_json(
            process.trace_id,
            call.span_id,
            call.parent_id,
            call.name,
            call.start_ns,
            end,
            call.call_attributes(),
            kind=_wire.KIND_CLIENT,
            events=events,
            status=call.status(),
        )
        resource_spans = [_wire.resource_spans_json(process.resource_json, [call_span])]
        if call.pid and not call.detached:
            rc = call.returncode
            resource_spans.append(
                _wire.reaped_child_json(
                    process.trace_id,
                    call.child_span_id,
                    call.span_id,
                    call.argv,
                    call.pid,
                    call.spawned_ns or call.start_ns,
                    end,
                    None if rc is None else _exit_code(rc),
                    _wire.signal_name(-rc) if rc is not None and rc < 0 else None,
                    call.rusage,
                )
            )
        process.writer.write(process.trace_id, '{"resourceSpans":[' + ",".join(resource_spans) + "]}")

    def detach_all(self) -> None:
        """At exit: calls whose child outlives us end here, marked detached."""
        with self._lock:
            calls = list(self._open.values())
            self._open.clear()
        for call in calls:
            call.detached = True
            self.end(call)


class ApiRecorder:
    """Records through the OpenTelemetry API (for ``opentelemetry-instrument``)."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    def begin(self, call: Call, env: Mapping[Any, Any] | None) -> dict[Any, Any]:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        span = self._tracer.start_span(call.name, kind=trace.SpanKind.CLIENT, attributes=call.call_attributes())
        call.handle = span
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
        new_env = dict(os.environ if env is None else env)
        new_env["TRACEPARENT"] = carrier.get("traceparent", "")
        if "tracestate" in carrier:
            new_env["TRACESTATE"] = carrier["tracestate"]
        return new_env

    def end(self, call: Call) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = call.handle
        if span is None:
            return
        span.set_attributes(call.call_attributes())
        if call.error is not None:
            span.record_exception(call.error)
        code, message = call.status()
        if code == _wire.STATUS_ERROR:
            span.set_status(Status(StatusCode.ERROR, message))
        span.end(end_time=call.end_ns or None)

    def detach_all(self) -> None:
        return None


# ---------------------------------------------------------------- patching


def install(recorder: Recorder | None = None) -> None:
    """Patch ``subprocess.Popen`` (idempotent)."""
    global _recorder
    if _originals:
        return
    if recorder is None:
        process = _boot.PROCESS
        if process is None:
            return
        recorder = BootRecorder()
        process.exit_callbacks.append(recorder.detach_all)
    _recorder = recorder
    popen = subprocess.Popen
    for name, wrapper in (
        ("__init__", _init),
        ("_handle_exitstatus", _handle_exitstatus),
        ("_try_wait", _try_wait),
        ("_internal_poll", _internal_poll),
    ):
        original = popen.__dict__.get(name)
        if original is None:
            _wire.debug(f"subprocess.Popen.{name} not found: recording less")
            continue
        _originals[name] = original
        setattr(popen, name, wrapper)


def uninstall() -> None:
    global _recorder
    for name, original in _originals.items():
        setattr(subprocess.Popen, name, original)
    _originals.clear()
    _recorder = None


def _init(self: subprocess.Popen[Any], args: Any, *pos: Any, **kw: Any) -> None:
    original = _originals["__init__"]
    recorder = _recorder
    call = None
    if recorder is not None:
        try:
            shell = bool(pos[_SHELL_INDEX] if len(pos) > _SHELL_INDEX else kw.get("shell", False))
            call = Call(_argv(args, shell, pos[1] if len(pos) > 1 else kw.get("executable")), shell)
            env = pos[_ENV_INDEX] if len(pos) > _ENV_INDEX else kw.get("env")
            new_env = recorder.begin(call, env)
            if len(pos) > _ENV_INDEX:
                pos = (*pos[:_ENV_INDEX], new_env, *pos[_ENV_INDEX + 1 :])
            else:
                kw["env"] = new_env
        except Exception as exc:
            _wire.debug(f"subprocess span not started: {exc!r}")
            call = None
    try:
        original(self, args, *pos, **kw)
    except BaseException as exc:
        if call is not None and recorder is not None:
            call.error = exc
            call.end_ns = time_ns()
            _safe(recorder.end, call)
        raise
    if call is not None:
        call.spawned_ns = time_ns()
        call.pid = self.pid
        _children.MANAGED_PIDS.add(self.pid)
        self.__dict__[_CALL_ATTR] = call


def _handle_exitstatus(self: subprocess.Popen[Any], sts: int, *a: Any, **kw: Any) -> None:
    _originals["_handle_exitstatus"](self, sts, *a, **kw)
    call = self.__dict__.pop(_CALL_ATTR, None)
    recorder = _recorder
    _children.MANAGED_PIDS.discard(self.pid)
    if call is not None and recorder is not None:
        call.end_ns = time_ns()
        call.returncode = self.returncode
        call.rusage = self.__dict__.pop("_otel_run_rusage", None)
        _safe(recorder.end, call)


def _try_wait(self: subprocess.Popen[Any], wait_flags: int) -> tuple[int, int]:
    if _CALL_ATTR not in self.__dict__:
        return _originals["_try_wait"](self, wait_flags)  # type: ignore[no-any-return]
    try:
        pid, sts, rusage = _children.ORIGINAL_WAIT4(self.pid, wait_flags)
    except ChildProcessError:
        return self.pid, 0
    if pid == self.pid:
        self.__dict__["_otel_run_rusage"] = rusage
    return pid, sts


def _internal_poll(self: subprocess.Popen[Any], *a: Any, **kw: Any) -> int | None:
    original = _originals["_internal_poll"]
    if _CALL_ATTR in self.__dict__ and len(a) < 2 and "_waitpid" not in kw:

        def waitpid(pid: int, flags: int) -> tuple[int, int]:
            got, sts, rusage = _children.ORIGINAL_WAIT4(pid, flags)
            if got == pid:
                self.__dict__["_otel_run_rusage"] = rusage
            return got, sts

        kw["_waitpid"] = waitpid
    return original(self, *a, **kw)  # type: ignore[no-any-return]


# ----------------------------------------------------------------- helpers


def _argv(args: Any, shell: bool, executable: Any) -> list[str]:
    if isinstance(args, (str, bytes, os.PathLike)):
        argv = [os.fsdecode(args)]
    else:
        argv = [os.fsdecode(a) for a in args]
    if shell:
        argv = [os.fsdecode(executable) if executable else "/bin/sh", "-c", *argv]
    return argv


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _safe(fn: Callable[[Call], None], call: Call) -> None:
    try:
        fn(call)
    except Exception as exc:
        _wire.debug(f"subprocess span not written: {exc!r}")
