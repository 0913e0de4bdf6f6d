"""The in-process bootstrap: what every traced Python process runs at start-up.

``sitecustomize`` calls :func:`start`. In well under a millisecond it

1. reads the trace context otel-run (or a traced parent) left in the environment,
2. writes the *start record* of this process's span (so a process killed with
   SIGKILL still shows up, as an unfinished span),
3. installs cheap hooks, each in the module named after what it hooks: on
   imports (:mod:`._imports`: an instrumentation loads only when the library it
   instruments is imported), on children (:mod:`._children`: ``os.exec*``,
   ``os.fork``, ``os.waitpid``) and, here, on the ways the process ends
   (``sys.exit``, ``sys.excepthook``, ``os._exit``, ``atexit``) so the process
   span ends with the right status,
4. chains to any other ``sitecustomize`` further down ``sys.path``.

Nothing from OpenTelemetry is imported here: the SDK is loaded by
:mod:`otel_run.instrument._sdk` the first time an instrumented library (or the
OpenTelemetry API itself) is imported. Spans are encoded and written by
:mod:`otel_run._wire`.

Standard library only (``os``, ``sys``, ``time``, all loaded before ``site``).
"""

import os
import sys
from time import time_ns

from otel_run import __version__, _env
from otel_run._redact import redact_args
from otel_run._wire import (
    ARGS_MAX,
    CPU_CHILDREN_SYSTEM,
    CPU_CHILDREN_USER,
    CPU_SYSTEM,
    CPU_USER,
    EVENT_SIGNAL_SENT,
    MAX_RSS,
    OTEL_RUN_SCOPE,
    RECORD_KEY,
    RECORD_START,
    SIGNALS_KEPT,
    STATUS_ERROR,
    STATUS_UNSET,
    SpanWriter,
    attributes_json,
    command_name,
    debug,
    derived_span_id,
    exception_attributes,
    learn_secrets,
    new_trace_id,
    parse_resource_attributes,
    parse_traceparent,
    request_json,
    signal_name,
    span_json,
    traceparent,
)
from otel_run.bootstrap import _children, _imports

TYPE_CHECKING = False  # ``typing`` costs milliseconds to import; mypy still sees this
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, MutableMapping
    from typing import Any


# ------------------------------------------------------- the process span


class Process:
    """This process's identity in the trace and its process span."""

    def __init__(self, environ: "Mapping[str, str]", store: str, trace_id: str, parent_id: "str | None") -> None:
        self.environ = environ
        self.writer = SpanWriter(store)
        self.trace_id = trace_id
        self.pid = os.getpid()
        self.ppid = os.getppid()  # at start: an orphan is re-parented to init before it ends
        self.span_id = ""
        self.parent_id = parent_id
        self.start_ns = 0
        self.boot_ns = time_ns()
        self.finished = False
        self.exit_status: object = None
        self.exception: BaseException | None = None
        self.exec_args: list[str] | None = None
        self.fork_pending: tuple[int, str] | None = None
        self.fork_parent: str | None = None
        self.exit_callbacks: list[Callable[[], None]] = []  # run first when the process span is written
        self.extra_attributes: dict[str, Any] = {}  # put on the process span by the exit callbacks (profiles)
        self.fork_callbacks: list[Callable[[], None]] = []
        self.signals_sent: list[tuple[int, int, int]] = []  # (when, pid, signal) of os.kill, for the readers
        self.resource: dict[str, Any] = {}
        self.resource_json = "[]"
        self.argv: list[str] = []
        self.name = ""

    # identity ------------------------------------------------------------
    def adopt(self, hint: "str | None") -> None:
        """Take the span id a traced parent reserved for us, or make a new one."""
        self.span_id = ""
        if hint:
            parts = hint.split("-")
            if len(parts) == 5:
                span_id, parent_id, spawner, relation, spawn_ns = parts
                spawner_pid = int(spawner) if spawner.isdigit() else -1
                mine = (relation == "c" and self.ppid == spawner_pid) or (relation == "x" and self.pid == spawner_pid)
                if mine and len(span_id) == 16 and spawn_ns.isdigit():
                    self.span_id, self.parent_id = span_id, parent_id
                    self.start_ns = int(spawn_ns)
        if not self.span_id:
            self.span_id = derived_span_id(self.trace_id, self.ppid, self.pid)
            self.start_ns = process_start_ns(self.boot_ns)

    def describe(self, service_name: "str | None" = None) -> None:
        """Resource and span name of this Python process."""
        argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
        self.argv = argv
        environ = self.environ
        resource: dict[str, Any] = {}
        resource.update(parse_resource_attributes(environ.get(_env.OTEL_RESOURCE_ATTRIBUTES)))
        service = (
            environ.get(_env.OTEL_SERVICE_NAME) or service_name or resource.get("service.name") or _python_service(argv)
        )
        resource["service.name"] = service
        resource["process.pid"] = self.pid
        resource["process.executable.name"] = os.path.basename(sys.executable or "python")
        resource["process.runtime.name"] = sys.implementation.name
        resource["process.runtime.version"] = "%d.%d.%d" % sys.version_info[:3]
        resource["host.name"] = os.uname().nodename
        resource["telemetry.sdk.name"] = "otel-run"
        resource["telemetry.sdk.language"] = "python"
        resource["telemetry.sdk.version"] = __version__
        self.resource = resource
        self.resource_json = attributes_json(resource)
        self.name = _python_span_name(argv)

    def rename(self, service_name: str) -> None:
        """A new ``service.name`` (a service naming itself after start-up); spans
        already written keep the old one."""
        if self.resource.get("service.name") != service_name:
            self.resource["service.name"] = service_name
            self.resource_json = attributes_json(self.resource)

    def span_attributes(self) -> "dict[str, Any]":
        attrs: dict[str, Any] = {
            "process.pid": self.pid,
            "process.parent_pid": self.ppid,
            "process.executable.name": os.path.basename(sys.executable or "python"),
            "process.executable.path": sys.executable or "",
            "process.command_args": redact_args(self.argv[:ARGS_MAX]),
        }
        try:
            attrs["process.working_directory"] = os.getcwd()
        except OSError:
            pass
        return attrs

    # records -------------------------------------------------------------
    def write_start(self) -> None:
        attrs = self.span_attributes()
        attrs[RECORD_KEY] = RECORD_START
        events: list[tuple[str, int, Mapping[str, Any]]] = [("python.started", self.boot_ns, {})]
        self._write(self.start_ns, self.start_ns, attrs, events, (STATUS_UNSET, ""))

    def finish(self, exit_code: "int | None" = None) -> None:
        """Write the complete record of this process span (at exit or exec)."""
        if self.finished:
            return
        self.finished = True
        for callback in self.exit_callbacks:
            try:
                callback()
            except Exception as exc:
                debug(f"exit callback failed: {exc!r}")
        now = time_ns()
        worker = os.environ.get(_env.PYTEST_XDIST_WORKER)  # set by pytest-xdist once the worker runs
        if worker:
            self.name = "pytest-xdist " + worker
        attrs = self.span_attributes()
        attrs.update(self.extra_attributes)
        if worker:
            attrs["otel_run.pytest.xdist_worker"] = worker
        events: list[tuple[str, int, Mapping[str, Any]]] = [("python.started", self.boot_ns, {})]
        status = (STATUS_UNSET, "")
        if self.exception is not None:
            events.append(("exception", now, exception_attributes(self.exception)))
        if self.exec_args is not None:
            attrs["otel_run.exec.command_args"] = redact_args(self.exec_args[:ARGS_MAX])
            events.append(("process.exec", now, {}))
        else:
            if exit_code is None:
                exit_code = _exit_code(self.exit_status, self.exception)
            attrs["process.exit.code"] = exit_code
            if exit_code != 0:
                status = (STATUS_ERROR, f"exit code {exit_code}")
            events.append(("python.exit", now, {}))
        for when, pid, signum in self.signals_sent[:SIGNALS_KEPT]:
            events.append(
                (EVENT_SIGNAL_SENT, when, {"process.pid": pid, "otel_run.process.signal": signal_name(signum)})
            )
        times = os.times()
        attrs[CPU_USER] = round(times.user, 6)
        attrs[CPU_SYSTEM] = round(times.system, 6)
        attrs[CPU_CHILDREN_USER] = round(times.children_user, 6)
        attrs[CPU_CHILDREN_SYSTEM] = round(times.children_system, 6)
        max_rss = _max_rss_bytes()
        if max_rss:
            attrs[MAX_RSS] = max_rss
        self._write(self.start_ns, now, attrs, events, status)

    def _write(
        self,
        start: int,
        end: int,
        attrs: "Mapping[str, Any]",
        events: "Iterable[tuple[str, int, Mapping[str, Any]]]",
        status: "tuple[int, str]",
    ) -> None:
        span = span_json(
            self.trace_id, self.span_id, self.parent_id, self.name, start, end, attrs, events=events, status=status
        )
        self.writer.write(self.trace_id, request_json(self.resource_json, OTEL_RUN_SCOPE, [span]))

    def current_span_id(self) -> str:
        """The span a new child should hang under: the current OpenTelemetry
        span of the calling thread when the API is loaded and it belongs to our
        trace, otherwise this process's span."""
        self.ensure()
        trace_mod = sys.modules.get("opentelemetry.trace")
        if trace_mod is not None:
            try:
                ctx = trace_mod.get_current_span().get_span_context()
                if ctx.is_valid and "%032x" % ctx.trace_id == self.trace_id:
                    return "%016x" % ctx.span_id
            except Exception as exc:
                debug(f"reading the current span failed: {exc!r}")
        return self.span_id

    # fork ----------------------------------------------------------------
    def ensure(self) -> None:
        """Materialise the process span of a forked child at first use (nothing
        may be done in the fork handler itself: the child may be about to exec)."""
        if self.fork_pending is None:
            return
        fork_ns, parent_id = self.fork_pending
        self.fork_pending = None
        self.pid = os.getpid()
        self.ppid = os.getppid()
        self.span_id = derived_span_id(self.trace_id, self.ppid, self.pid)
        self.parent_id = parent_id
        self.fork_parent = parent_id  # spans the child starts under it belong under us
        self.start_ns = fork_ns
        self.boot_ns = fork_ns
        self.finished = False
        self.exit_status = None
        self.exception = None
        self.signals_sent = []
        self.extra_attributes = {}
        self.resource["process.pid"] = self.pid
        self.resource_json = attributes_json(self.resource)
        self.name = self.name + " (fork)"
        os.environ[_env.TRACEPARENT] = traceparent(self.trace_id, self.span_id)
        for callback in self.fork_callbacks:
            try:
                callback()
            except Exception as exc:
                debug(f"fork callback failed: {exc!r}")
        self.write_start()


PROCESS: "Process | None" = None
"""This process's state once :func:`start` ran; None when not traced."""


def current_parent_span_id() -> str:
    """The span a new child of this process should hang under (see
    :meth:`Process.current_span_id`)."""
    process = PROCESS
    assert process is not None
    return process.current_span_id()


# ------------------------------------------------------------------ start


def start(environ: "MutableMapping[str, str]", site_dir: str) -> None:
    """Bootstrap this process (called once by ``sitecustomize``)."""
    _forget_site_dir(site_dir)
    try:
        if PROCESS is None and environ.get(_env.OTEL_SDK_DISABLED, "").strip().lower() != "true":
            _start(environ)
    finally:
        _chain_sitecustomize(site_dir)


def _start(environ: "MutableMapping[str, str]") -> None:
    store = environ.get(_env.OTEL_RUN_STORE)
    context = parse_traceparent(environ.get(_env.TRACEPARENT))
    if not store or context is None:
        debug("no OTEL_RUN_STORE or valid TRACEPARENT: not tracing this process")
        return
    _begin(environ, store, context[0], context[1])


def start_standalone(environ: "MutableMapping[str, str]", store: str, service_name: "str | None" = None) -> None:
    """Bootstrap a process otel-run did not start (a service calling
    :func:`otel_run.setup`): the trace context in its environment if any, else
    a trace of its own whose root is its process span."""
    if PROCESS is not None or environ.get(_env.OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return
    context = parse_traceparent(environ.get(_env.TRACEPARENT))
    if context is None:
        _begin(environ, store, new_trace_id(), None, service_name)
    else:
        _begin(environ, store, context[0], context[1], service_name)


def _begin(
    environ: "MutableMapping[str, str]",
    store: str,
    trace_id: str,
    parent_id: "str | None",
    service_name: "str | None" = None,
) -> None:
    global PROCESS
    learn_secrets(environ)
    process = Process(environ, store, trace_id, parent_id)
    process.adopt(environ.get(_env.OTEL_RUN_PROCESS))
    process.describe(service_name)
    process.write_start()
    PROCESS = process
    # Children started by means we do not hook (os.system, C code) hang under us.
    environ[_env.TRACEPARENT] = traceparent(trace_id, process.span_id)
    environ[_env.OTEL_RUN_STORE] = store
    environ.pop(_env.OTEL_RUN_PROCESS, None)
    _install_hooks(process, environ)


def _install_hooks(process: "Process", environ: "Mapping[str, str]") -> None:
    import atexit

    disabled = {n.strip() for n in environ.get(_env.OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "").split(",")}
    enabled = {n.strip() for n in environ.get(_env.OTEL_RUN_INSTRUMENTATIONS, "").split(",")}
    _imports.install(disabled, enabled)
    atexit.register(_at_exit)
    _wrap_exits(process)
    profile = environ.get(_env.OTEL_RUN_PROFILE)
    if profile:
        wanted = {k.strip().lower() for k in profile.split(",")}
        if "cpu" in wanted or "memory" in wanted:
            from otel_run.bootstrap import _sampler  # before _children wraps os.waitpid

            _sampler.start(process, environ, wanted)
        if "imports" in wanted:  # after the samplers: their own imports (memray) are otel-run's, not the program's
            from otel_run.bootstrap import _importtime

            _importtime.start(process, environ)
    _children.install(process)


# ------------------------------------------------------------ exit hooks


def _at_exit() -> None:
    process = PROCESS
    if process is None:
        return
    try:
        process.ensure()
        process.finish()
    except Exception as exc:
        debug(f"writing the process span failed: {exc!r}")


def _wrap_exits(process: "Process") -> None:
    original_exit = sys.exit
    original_hook = sys.excepthook
    original_os_exit = os._exit

    def exit(status: "Any" = None) -> None:
        process.exit_status = status
        original_exit(status)

    def excepthook(exc_type: "type[BaseException]", exc: BaseException, tb: "Any") -> None:
        process.exception = exc
        original_hook(exc_type, exc, tb)

    def os_exit(code: int) -> None:
        try:
            process.ensure()
            process.finish(code)
        except Exception as exc:
            debug(f"writing the process span failed: {exc!r}")
        original_os_exit(code)

    sys.exit = exit  # type: ignore[assignment]
    sys.excepthook = excepthook
    os._exit = os_exit  # type: ignore[assignment]


# ----------------------------------------------------------- private helpers


def _forget_site_dir(site_dir: str) -> None:
    """Take our directory off ``sys.path``: the program sees the path it would
    see without otel-run (``PYTHONPATH`` stays, for its children)."""
    try:
        while site_dir in sys.path:
            sys.path.remove(site_dir)
    except ValueError:
        pass


def _chain_sitecustomize(site_dir: str) -> None:
    """Run the ``sitecustomize`` ours shadows, if there is one."""
    finder = next((f for f in sys.meta_path if getattr(f, "__name__", "") == "PathFinder"), None)
    if finder is None:
        return
    try:
        spec = finder.find_spec("sitecustomize", [p for p in sys.path if p != site_dir])  # type: ignore[attr-defined]
    except Exception:
        return
    if spec is None or spec.loader is None or spec.origin == os.path.join(site_dir, "sitecustomize.py"):
        return
    try:
        import importlib.util

        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        debug(f"the chained sitecustomize {spec.origin} failed: {exc!r}")


def process_start_ns(now_ns: int) -> int:
    """When this process was forked, for a process no traced parent spawned.

    ``/proc/self/stat`` gives the fork time in clock ticks (10 ms) on the boot
    clock; the CPU time used so far bounds it from the other side (start-up is
    CPU bound, and a single thread cannot use more CPU than time has passed).
    """
    from time import clock_gettime_ns, process_time_ns

    estimate = now_ns - process_time_ns()
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        ticks = int(stat.rpartition(b")")[2].split()[19])
        hz = os.sysconf("SC_CLK_TCK")
        since_fork = clock_gettime_ns(7) - ticks * 1_000_000_000 // hz  # 7: CLOCK_BOOTTIME
    except (OSError, ValueError, IndexError):
        return estimate
    floor = now_ns - since_fork
    ceiling = floor + 1_000_000_000 // hz
    return max(floor, min(estimate, ceiling))


def _max_rss_bytes() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _exit_code(status: object, exception: "BaseException | None") -> int:
    if exception is not None:
        if isinstance(exception, KeyboardInterrupt):
            return 130
        return 1
    if status is None:
        return 0
    if isinstance(status, bool):
        return int(status)
    if isinstance(status, int):
        return status & 0xFF
    return 1


def _python_args(argv: "list[str]") -> "tuple[str, str, list[str]]":
    """Split ``orig_argv`` into (mode, target, rest): mode is ``-m``, ``-c``,
    ``script`` or ``repl``."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("-m", "-c"):
            return arg, (argv[i + 1] if i + 1 < len(argv) else ""), argv[i + 2 :]
        if arg.startswith("-m") and len(arg) > 2:
            return "-m", arg[2:], argv[i + 1 :]
        if arg.startswith("-c") and len(arg) > 2:
            return "-c", arg[2:], argv[i + 1 :]
        if arg in ("-W", "-X", "--check-hash-based-pycs"):
            i += 2
            continue
        if arg == "-" or not arg.startswith("-"):
            return "script", arg, argv[i + 1 :]
        i += 1
    return "repl", "", []


def _python_service(argv: "list[str]") -> str:
    mode, target, rest = _python_args(argv)
    if mode == "-m":
        return target.split(".")[0] or "python"
    if mode == "script" and target != "-":
        base = os.path.basename(target.rstrip("/"))
        if base in ("__main__.py", "__init__.py"):
            return _package_of(os.path.dirname(os.path.abspath(target))) or "python"
        return base[:-3] if base.endswith(".py") else base or "python"
    if mode == "-c" and "--multiprocessing-fork" in rest:
        return "multiprocessing"
    return os.path.basename(argv[0]) if argv else "python"


def _package_of(directory: str) -> str:
    """The dotted name of the package in ``directory`` (``jedi.inference.compiled.subprocess``
    for a ``__main__.py`` run by path), climbing while the parent is a package too."""
    names = [os.path.basename(directory)]
    parent = os.path.dirname(directory)
    while parent != directory and os.path.exists(os.path.join(parent, "__init__.py")) and len(names) < 8:
        directory, parent = parent, os.path.dirname(parent)
        names.append(os.path.basename(directory))
    return ".".join(reversed(names))


def _python_span_name(argv: "list[str]") -> str:
    mode, target, rest = _python_args(argv)
    if mode == "script":
        return command_name([target, *rest])
    if mode == "-m":
        return command_name([os.path.basename(argv[0]), "-m", target, *rest])
    if mode == "-c" and "--multiprocessing-fork" in rest:
        return "multiprocessing spawn"
    return command_name(argv)
