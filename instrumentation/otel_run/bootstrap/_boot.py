"""The in-process bootstrap: what every traced Python process runs at start-up.

``sitecustomize`` calls :func:`start`. In well under a millisecond it

1. reads the trace context otel-run (or a traced parent) left in the environment,
2. writes the *start record* of this process's span (so a process killed with
   SIGKILL still shows up, as an unfinished span),
3. installs cheap hooks: a post-import finder that loads an instrumentation only
   when the library it instruments is imported, and wrappers of ``os.exec*``,
   ``os._exit``, ``os.fork`` (via ``os.register_at_fork``), ``sys.exit`` and
   ``sys.excepthook`` so the process span ends with the right status,
4. chains to any other ``sitecustomize`` further down ``sys.path``.

Nothing from OpenTelemetry is imported here: the SDK is loaded by
:mod:`otel_run.instrument._sdk` the first time an instrumented library (or the
OpenTelemetry API itself) is imported.

Spans are written as OTLP JSON lines (the OpenTelemetry Collector file-exporter
format: one ``ExportTraceServiceRequest`` per line) to
``$OTEL_RUN_STORE/traces/<trace_id>.jsonl``, appended with ``O_APPEND`` so any
number of processes can share a file. One span may be written in fragments,
marked by the attribute ``otel_run.record``: ``start`` (the process span as it
began), ``reap`` (the parent's view of a child it spawned, after ``wait4``) and
``waited`` (a parent's ``os.waitpid`` of a child it did not spawn through
``subprocess``, e.g. a ``multiprocessing`` worker). Readers merge fragments by
span id (:mod:`otel_run.store._merge`).

Standard library only (``os``, ``sys``, ``time``, all loaded before ``site``).
"""

from __future__ import annotations

import _thread
import os
import sys
from time import time_ns

from otel_run import __version__, _env
from otel_run.bootstrap._redact import is_secret_name, redact_args, redact_text, redact_value, remember_environment

TYPE_CHECKING = False  # ``typing`` costs milliseconds to import; mypy still sees this
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, MutableMapping
    from typing import Any

# ----------------------------------------------------------------- constants

SCOPE_NAME = "otel-run"
RECORD_KEY = "otel_run.record"
RECORD_START = "start"
RECORD_REAP = "reap"
RECORD_WAITED = "waited"

# OTLP enum values (opentelemetry/proto/trace/v1/trace.proto)
KIND_INTERNAL = 1
KIND_CLIENT = 3
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
NAME_MAX = 100
ARGS_MAX = 64

_ESCAPES = {i: "\\u%04x" % i for i in range(32)}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


# ------------------------------------------------------------ JSON encoding
# Hand-written because the bootstrap must not import ``json`` (it pulls in ``re``,
# several milliseconds here) and because OTLP JSON differs from a plain dump
# (hex ids, 64-bit integers as strings, typed ``AnyValue`` wrappers).


def json_str(text: str) -> str:
    """A JSON string literal. Non-ASCII stays as is; lone surrogates (undecodable
    bytes in argv) are escaped when the line is encoded."""
    return '"' + text.translate(_ESCAPES) + '"'


def any_value(value: Any, key: str = "") -> str:
    """OTLP ``AnyValue`` in JSON; strings are redacted by attribute ``key``."""
    if isinstance(value, str):
        return '{"stringValue":' + json_str(redact_value(key, value)) + "}"
    if isinstance(value, bool):
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    if isinstance(value, int):
        return '{"intValue":"%d"}' % value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return '{"doubleValue":"%s"}' % ("NaN" if value != value else ("Infinity" if value > 0 else "-Infinity"))
        return '{"doubleValue":%r}' % value
    if isinstance(value, (list, tuple)):
        return '{"arrayValue":{"values":[' + ",".join(any_value(v, key) for v in value) + "]}}"
    if isinstance(value, bytes):
        return '{"stringValue":' + json_str(value.hex()) + "}"
    return '{"stringValue":' + json_str(redact_value(key, str(value))) + "}"


_key_prefixes: dict[str, str] = {}
_names: dict[str, str] = {}
_encoded: dict[tuple[str, Any], str] = {}
_ENCODED_MAX = 8192


def attributes_json(attributes: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """OTLP ``KeyValue`` list in JSON (the per-span hot path: keys' JSON is
    cached, strings take the shortest route)."""
    # the SDK's BoundedAttributes iterates in Python; its ``_dict`` in C
    items = getattr(attributes, "_dict", attributes)
    items = items.items() if hasattr(items, "items") else items
    parts: list[str] = []
    append = parts.append
    prefixes = _key_prefixes
    encoded = _encoded
    for key, value in items:
        kind = type(value)
        if kind is str or kind is int:
            # attribute values repeat (methods, hosts, ports, status codes): their JSON is remembered
            done = encoded.get((key, value))
            if done is not None:
                append(done)
                continue
        prefix = prefixes.get(key)
        if prefix is None:
            # the prefix also remembers whether the key names a credential
            prefix = ("!" if is_secret_name(key) else "") + '{"key":' + json_str(key) + ',"value":'
            if len(prefixes) < 4096:
                prefixes[key] = prefix
        if prefix[0] == "!":
            text = prefix[1:] + ('{"stringValue":"REDACTED"}}' if kind is str else any_value(value, key) + "}")
        elif kind is str:
            text = prefix + '{"stringValue":' + json_str(redact_text(value)) + "}}"
        else:
            text = prefix + any_value(value, key) + "}"
        if (kind is str and len(value) <= 256) or kind is int:
            if len(encoded) >= _ENCODED_MAX:
                encoded.clear()
            encoded[(key, value)] = text
        append(text)
    return "[" + ",".join(parts) + "]"


def learn_secrets(environ: Mapping[str, str]) -> None:
    """Redact the values of ``environ``'s credential-named variables from now on
    (and forget encodings made before)."""
    remember_environment(environ)
    _encoded.clear()
    _names.clear()


def span_json(
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any],
    *,
    kind: int = KIND_INTERNAL,
    events: Iterable[tuple[str, int, Mapping[str, Any]]] = (),
    status: tuple[int, str] = (STATUS_UNSET, ""),
) -> str:
    """One OTLP span in JSON."""
    name_json = _names.get(name)
    if name_json is None:
        name_json = json_str(redact_text(name))
        if len(_names) < 4096:
            _names[name] = name_json
    head = '{"traceId":"%s","spanId":"%s",%s"name":%s,"kind":%d,"startTimeUnixNano":"%d","endTimeUnixNano":"%d"' % (
        trace_id,
        span_id,
        '"parentSpanId":"%s",' % parent_id if parent_id else "",
        name_json,
        kind,
        start_ns,
        end_ns,
    )
    tail = ""
    if events:
        tail = ',"events":[%s]' % ",".join(
            '{"timeUnixNano":"%d","name":%s,"attributes":%s}' % (t, json_str(n), attributes_json(a))
            for n, t, a in events
        )
    code, message = status
    if code:
        tail += (
            ',"status":{"code":%d,"message":%s}' % (code, json_str(message))
            if message
            else ',"status":{"code":%d}' % code
        )
    return head + ',"attributes":' + attributes_json(attributes) + tail + "}"


def scope_json(name: str, version: str | None) -> str:
    return '{"name":' + json_str(name) + (',"version":' + json_str(version) if version else "") + "}"


def request_json(resource_json: str, scope: str, spans: Iterable[str]) -> str:
    """An ``ExportTraceServiceRequest`` with one resource and one scope."""
    return '{"resourceSpans":[' + resource_spans_json(resource_json, spans, scope) + "]}"


OTEL_RUN_SCOPE = scope_json(SCOPE_NAME, __version__)


def resource_spans_json(resource_json: str, spans: Iterable[str], scope: str = OTEL_RUN_SCOPE) -> str:
    """One ``ResourceSpans`` in JSON (requests may hold several)."""
    return (
        '{"resource":{"attributes":'
        + resource_json
        + '},"scopeSpans":[{"scope":'
        + scope
        + ',"spans":['
        + ",".join(spans)
        + "]}]}"
    )


def reaped_child_json(
    trace_id: str,
    span_id: str,
    parent_id: str,
    argv: list[str] | None,
    pid: int,
    start_ns: int,
    end_ns: int,
    exit_code: int | None,
    signal_name: str | None,
    rusage: Any,
    record: str = RECORD_REAP,
) -> str:
    """A child's process span as its parent saw it when it reaped it, as one
    ``ResourceSpans`` in JSON: pid, command, exit status and, from ``wait4``,
    CPU time and peak memory. ``argv`` None: a child whose command the reaper
    does not know (the ``waited`` record)."""
    attrs: dict[str, Any] = {"process.pid": pid}
    resource = "[]"
    name = ""
    if argv is not None:
        executable = os.path.basename(argv[0]) if argv else "process"
        attrs["process.parent_pid"] = os.getpid()
        attrs["process.executable.name"] = executable
        attrs["process.command_args"] = redact_args(argv[:ARGS_MAX])
        resource = attributes_json({"service.name": executable, "process.pid": pid})
        name = command_name(argv)
    status = (STATUS_UNSET, "")
    if exit_code is not None:
        attrs["process.exit.code"] = exit_code
        if signal_name:
            attrs["otel_run.process.signal"] = signal_name
            status = (STATUS_ERROR, f"killed by {signal_name}")
        elif exit_code:
            status = (STATUS_ERROR, f"exit code {exit_code}")
    if rusage is not None:
        attrs["otel_run.process.cpu.user"] = round(rusage.ru_utime, 6)
        attrs["otel_run.process.cpu.system"] = round(rusage.ru_stime, 6)
        attrs["otel_run.process.max_rss"] = rusage.ru_maxrss * 1024
    attrs[RECORD_KEY] = record
    span = span_json(trace_id, span_id, parent_id, name, start_ns, end_ns, attrs, status=status)
    return resource_spans_json(resource, [span])


def exit_status(status: int) -> tuple[int, str | None]:
    """``(exit code, signal name)`` of a ``wait`` status; 128+N when signal N killed it."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        return 128 + signum, signal_name(signum)
    return os.WEXITSTATUS(status), None


# ----------------------------------------------------------- small helpers


_urandom = os.urandom  # bound now: test harnesses patch os.urandom to make tests deterministic


def new_span_id() -> str:
    while True:
        span_id = _urandom(8).hex()
        if span_id != "0000000000000000":
            return span_id


def new_trace_id() -> str:
    while True:
        trace_id = _urandom(16).hex()
        if trace_id != "0" * 32:
            return trace_id


def derived_span_id(trace_id: str, parent_pid: int, pid: int) -> str:
    """The span id of a process no traced parent reserved one for.

    A function of (trace, parent pid, pid), so the parent that later reaps the
    process with ``os.waitpid`` can name its span without talking to it.
    (splitmix64 over the mixed inputs: unique within a trace unless a pid is
    reused by the same parent.)
    """
    mask = 0xFFFFFFFFFFFFFFFF
    x = (int(trace_id[16:], 16) ^ (parent_pid * 0x9E3779B97F4A7C15) ^ (pid << 17)) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    x ^= x >> 31
    return "%016x" % (x or 1)


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """``(trace_id, span_id, flags)`` of a W3C ``traceparent``, or None if invalid."""
    if not value:
        return None
    parts = value.strip().lower().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace_id, span_id, flags = parts[:4]
    if version == "00" and len(parts) != 4:
        return None
    if len(trace_id) != 32 or len(span_id) != 16 or len(flags) != 2:
        return None
    try:
        int(trace_id, 16), int(span_id, 16), int(flags, 16)
    except ValueError:
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, flags


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def parse_resource_attributes(value: str | None) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``, values percent-decoded)."""
    out: dict[str, str] = {}
    if not value:
        return out
    for item in value.split(","):
        key, eq, val = item.partition("=")
        key = key.strip()
        if eq and key:
            out[key] = _percent_decode(val.strip())
    return out


def _percent_decode(text: str) -> str:
    if "%" not in text:
        return text
    raw = bytearray()
    i = 0
    data = text.encode("utf-8")
    while i < len(data):
        if data[i] == 0x25 and i + 2 < len(data):
            try:
                raw.append(int(data[i + 1 : i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        raw.append(data[i])
        i += 1
    return raw.decode("utf-8", "replace")


def command_name(args: list[str]) -> str:
    """Short span name for a command line: ``pytest -x tests``, ``sh -c …``."""
    if not args:
        return "process"
    words = [os.path.basename(args[0]), *args[1:]]
    name = " ".join(" ".join(redact_args(words)).split())
    return name if len(name) <= NAME_MAX else name[: NAME_MAX - 1] + "…"


def debug(message: str) -> None:
    if os.environ.get(_env.OTEL_RUN_DEBUG) == "1":
        try:
            sys.stderr.write(f"otel-run[{os.getpid()}]: {message}\n")
        except Exception:
            pass


# -------------------------------------------------------------- the writer


class SpanWriter:
    """Appends OTLP JSON lines to ``<store>/traces/<trace_id>.jsonl``.

    Each line goes out in one ``write(2)`` on an ``O_APPEND`` descriptor, which
    Linux applies atomically to a local file, so concurrent processes never
    interleave inside a line. Within a process a lock guards the descriptor
    table, so a descriptor is never closed under a thread still writing to it
    (a service may touch many traces; at most ``MAX_OPEN`` stay open).
    """

    MAX_OPEN = 32

    def __init__(self, store: str) -> None:
        self.store = store
        self._dir = os.path.join(store, "traces")
        self._fds: dict[str, int] = {}
        self._lock = _thread.allocate_lock()

    def path(self, trace_id: str) -> str:
        return os.path.join(self._dir, trace_id + ".jsonl")

    def write(self, trace_id: str, line: str) -> None:
        data = line.encode("utf-8", "backslashreplace")
        with self._lock:
            fd = self._fds.get(trace_id)
            if fd is None:
                fd = self._open(trace_id)
            written = os.writev(fd, (data, b"\n"))  # one system call: the line and its newline
            if written < len(data) + 1:  # short write (disk full, signal): finish, no longer atomic
                rest = (data + b"\n")[written:]
                while rest:
                    rest = rest[os.write(fd, rest) :]

    def after_fork(self) -> None:
        """In a forked child: the lock may have been held by a thread that is gone."""
        self._lock = _thread.allocate_lock()

    def _open(self, trace_id: str) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(self.path(trace_id), flags, 0o644)
        except FileNotFoundError:
            os.makedirs(self._dir, exist_ok=True)
            fd = os.open(self.path(trace_id), flags, 0o644)
        if len(self._fds) >= self.MAX_OPEN:
            oldest = next(iter(self._fds))
            os.close(self._fds.pop(oldest))
        self._fds[trace_id] = fd
        return fd


# ------------------------------------------------------- the process span


class Process:
    """This process's identity in the trace and its process span."""

    def __init__(self, environ: Mapping[str, str], store: str, trace_id: str, parent_id: str | None) -> None:
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
        self.exit_callbacks: list[Callable[[], None]] = []
        self.fork_callbacks: list[Callable[[], None]] = []
        self.resource: dict[str, Any] = {}
        self.resource_json = "[]"
        self.argv: list[str] = []
        self.name = ""

    # identity ------------------------------------------------------------
    def adopt(self, hint: str | None) -> None:
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

    def describe(self, service_name: str | None = None) -> None:
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

    def span_attributes(self) -> dict[str, Any]:
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

    def finish(self, exit_code: int | None = None) -> None:
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
        attrs = self.span_attributes()
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
        times = os.times()
        attrs["otel_run.process.cpu.user"] = round(times.user, 6)
        attrs["otel_run.process.cpu.system"] = round(times.system, 6)
        attrs["otel_run.process.children.cpu.user"] = round(times.children_user, 6)
        attrs["otel_run.process.children.cpu.system"] = round(times.children_system, 6)
        max_rss = _max_rss_bytes()
        if max_rss:
            attrs["otel_run.process.max_rss"] = max_rss
        self._write(self.start_ns, now, attrs, events, status)

    def _write(
        self,
        start: int,
        end: int,
        attrs: Mapping[str, Any],
        events: Iterable[tuple[str, int, Mapping[str, Any]]],
        status: tuple[int, str],
    ) -> None:
        span = span_json(
            self.trace_id, self.span_id, self.parent_id, self.name, start, end, attrs, events=events, status=status
        )
        self.writer.write(self.trace_id, request_json(self.resource_json, OTEL_RUN_SCOPE, [span]))

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


PROCESS: Process | None = None
"""This process's state once :func:`start` ran; None when not traced."""
FINDER: PostImportFinder | None = None
"""The post-import hook, once installed."""


def enable_instrumentation(name: str) -> None:
    """Switch on an instrumentation (one that is opt-in) in this process: now if
    its library is imported already, else when it is."""
    from otel_run.bootstrap._registry import triggers

    if FINDER is None:
        return
    for module, callback in triggers(enabled={name}, only={name}).items():
        when_imported(module, callback)


def when_imported(module: str, callback: Callable[[Any], None]) -> bool:
    """Run ``callback(module)`` right after ``module`` is first imported, or now
    if it is imported already. False when there is no import hook (a process
    otel-run does not trace): the caller decides what to do then."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        callback(loaded)
        return True
    finder = FINDER
    if finder is None:
        return False
    previous = finder.triggers.get(module)
    if previous is None:
        finder.triggers[module] = callback
    else:

        def both(mod: Any) -> None:
            try:
                previous(mod)
            finally:
                callback(mod)

        finder.triggers[module] = both
    return True


def ensure_finder() -> PostImportFinder:
    """The post-import hook, installed now (with nothing to watch) if otel-run
    did not install it: lets an instrumentor loaded by stock
    ``opentelemetry-instrument`` wait for its library instead of importing it."""
    global FINDER
    if FINDER is None:
        FINDER = PostImportFinder({})
        sys.meta_path.insert(0, FINDER)
    return FINDER


def current_parent_span_id() -> str:
    """The span a new child should hang under: the current OpenTelemetry span of
    the calling thread when the API is loaded and it belongs to our trace,
    otherwise this process's span."""
    process = PROCESS
    assert process is not None
    process.ensure()
    trace_mod = sys.modules.get("opentelemetry.trace")
    if trace_mod is not None:
        try:
            ctx = trace_mod.get_current_span().get_span_context()
            if ctx.is_valid and "%032x" % ctx.trace_id == process.trace_id:
                return "%016x" % ctx.span_id
        except Exception as exc:
            debug(f"reading the current span failed: {exc!r}")
    return process.span_id


def child_environment(
    base: Mapping[str, str], span_id: str, parent_id: str, spawner_pid: int, relation: str, spawn_ns: int
) -> dict[str, str]:
    """The environment for a child process whose span ``span_id`` we reserve."""
    process = PROCESS
    assert process is not None
    env = dict(base)
    for name in (_env.TRACESTATE, _env.BAGGAGE, _env.OTEL_RUN_PYLIB):
        value = process.environ.get(name)
        if value and name not in env:
            env[name] = value
    return prepare_environment(
        env, process.trace_id, span_id, parent_id, spawner_pid, relation, spawn_ns, process.writer.store
    )


def prepare_environment(
    env: dict[str, str],
    trace_id: str,
    span_id: str,
    parent_id: str,
    spawner_pid: int,
    relation: str,
    spawn_ns: int,
    store: str,
) -> dict[str, str]:
    """Put the trace context and the bootstrap into ``env`` (in place)."""
    env[_env.TRACEPARENT] = traceparent(trace_id, span_id)
    env[_env.OTEL_RUN_PROCESS] = f"{span_id}-{parent_id}-{spawner_pid}-{relation}-{spawn_ns}"
    env[_env.OTEL_RUN_STORE] = store
    env[_env.PYTHONPATH] = with_site_dir(env.get(_env.PYTHONPATH))
    return env


def with_site_dir(pythonpath: str | None) -> str:
    """``PYTHONPATH`` with our ``sitecustomize`` directory first (once)."""
    parts = [p for p in (pythonpath or "").split(os.pathsep) if p and p != SITE_DIR]
    return os.pathsep.join([SITE_DIR, *parts])


# ------------------------------------------------------------------ start


def start(environ: MutableMapping[str, str], site_dir: str) -> None:
    """Bootstrap this process (called once by ``sitecustomize``)."""
    _forget_site_dir(site_dir)
    try:
        if PROCESS is None and environ.get(_env.OTEL_SDK_DISABLED, "").strip().lower() != "true":
            _start(environ)
    finally:
        _chain_sitecustomize(site_dir)


def _start(environ: MutableMapping[str, str]) -> None:
    store = environ.get(_env.OTEL_RUN_STORE)
    context = parse_traceparent(environ.get(_env.TRACEPARENT))
    if not store or context is None:
        debug("no OTEL_RUN_STORE or valid TRACEPARENT: not tracing this process")
        return
    _begin(environ, store, context[0], context[1])


def start_standalone(environ: MutableMapping[str, str], store: str, service_name: str | None = None) -> None:
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
    environ: MutableMapping[str, str], store: str, trace_id: str, parent_id: str | None, service_name: str | None = None
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


def _install_hooks(process: Process, environ: Mapping[str, str]) -> None:
    import atexit

    from otel_run.bootstrap._registry import triggers

    global FINDER
    disabled = {n.strip() for n in environ.get(_env.OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "").split(",")}
    enabled = {n.strip() for n in environ.get(_env.OTEL_RUN_INSTRUMENTATIONS, "").split(",")}
    finder = FINDER = PostImportFinder(triggers(disabled, enabled))
    sys.meta_path.insert(0, finder)
    for name in list(finder.triggers):
        module = sys.modules.get(name)
        if module is not None:  # imported before us (by a .pth file)
            finder.fire(name, module)

    atexit.register(_at_exit)
    _wrap_exits(process)
    _wrap_exec()
    _wrap_wait()
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


# ------------------------------------------------------------------ hooks


class PostImportFinder:
    """Runs a callback right after a watched module finished executing.

    ``wrapt.importer`` does the same; importing wrapt costs several
    milliseconds, this is forty lines.
    """

    def __init__(self, triggers: Mapping[str, Callable[[Any], None]]) -> None:
        self.triggers = dict(triggers)
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.triggers or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._busy.discard(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _HookLoader(loader, self, fullname)  # type: ignore[assignment]
        return spec

    def fire(self, fullname: str, module: Any) -> None:
        callback = self.triggers.pop(fullname, None)
        if callback is None:
            return
        try:
            callback(module)
        except Exception as exc:
            debug(f"instrumenting {fullname} failed: {exc!r}")


class _HookLoader:
    def __init__(self, loader: Any, finder: PostImportFinder, fullname: str) -> None:
        self._loader = loader
        self._finder = finder
        self._fullname = fullname

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # The module shows its own loader, not this wrapper.
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._loader
        self._loader.exec_module(module)
        self._finder.fire(self._fullname, sys.modules.get(self._fullname, module))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _at_exit() -> None:
    process = PROCESS
    if process is None:
        return
    try:
        process.ensure()
        process.finish()
    except Exception as exc:
        debug(f"writing the process span failed: {exc!r}")


def _wrap_exits(process: Process) -> None:
    original_exit = sys.exit
    original_hook = sys.excepthook
    original_os_exit = os._exit

    def exit(status: Any = None) -> None:
        process.exit_status = status
        original_exit(status)

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
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


def _wrap_exec() -> None:
    for name in ("execv", "execve"):
        original = getattr(os, name)
        setattr(os, name, _exec_wrapper(original, name == "execve"))


def _exec_wrapper(original: Callable[..., Any], has_env: bool) -> Callable[..., Any]:
    def exec_(path: Any, args: Any, *rest: Any) -> Any:
        process = PROCESS
        if process is None:
            return original(path, args, *rest)
        saved = None
        try:
            process.ensure()
            span_id = new_span_id()
            hint = f"{span_id}-{process.span_id}-{process.pid}-x-{time_ns()}"
            if has_env and rest:
                env = dict(rest[0])
                env[_env.TRACEPARENT] = traceparent(process.trace_id, process.span_id)
                env[_env.OTEL_RUN_PROCESS] = hint
                rest = (env, *rest[1:])
            else:
                saved = os.environ.get(_env.OTEL_RUN_PROCESS)
                os.environ[_env.OTEL_RUN_PROCESS] = hint
            process.exec_args = [os.fsdecode(a) for a in args]
            process.finish()
        except Exception as exc:
            debug(f"preparing exec failed: {exc!r}")
        try:
            return original(path, args, *rest)
        except BaseException:
            # exec failed: this image goes on; its span is written again at exit.
            process.finished = False
            process.exec_args = None
            if saved is None:
                os.environ.pop(_env.OTEL_RUN_PROCESS, None)
            raise

    exec_.__name__ = original.__name__
    exec_.__doc__ = original.__doc__
    return exec_


ORIGINAL_WAIT4 = os.wait4
"""``os.wait4`` before the bootstrap wrapped it (for reapers that record themselves)."""
MANAGED_PIDS: set[int] = set()
"""Children whose span a more precise hook (``subprocess``) writes."""


def _wrap_wait() -> None:
    waitpid, wait4 = os.waitpid, os.wait4

    def waitpid_(pid: int, options: int) -> tuple[int, int]:
        result = waitpid(pid, options)
        if result[0] > 0:
            _waited(result[0], result[1], None)
        return result

    def wait4_(pid: int, options: int) -> tuple[int, int, Any]:
        result = wait4(pid, options)
        if result[0] > 0:
            _waited(result[0], result[1], result[2])
        return result

    waitpid_.__doc__, wait4_.__doc__ = waitpid.__doc__, wait4.__doc__
    os.waitpid = waitpid_
    os.wait4 = wait4_


def _waited(pid: int, status: int, rusage: Any) -> None:
    """A child was reaped: record its exit under the span id it derived."""
    process = PROCESS
    if process is None or pid in MANAGED_PIDS:
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


_fork_ns = 0
_fork_parent = ""


def _before_fork() -> None:
    global _fork_ns, _fork_parent
    process = PROCESS
    if process is None:
        return
    try:
        _fork_ns = time_ns()
        _fork_parent = current_parent_span_id()
        for callback in process.fork_callbacks:
            callback()  # flush buffers so the child does not inherit them
    except Exception as exc:
        debug(f"before fork: {exc!r}")


def _after_fork_in_child() -> None:
    process = PROCESS
    if process is not None:
        process.writer.after_fork()
        process.fork_pending = (_fork_ns or time_ns(), _fork_parent or process.span_id)


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


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _max_rss_bytes() -> int:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _exit_code(status: object, exception: BaseException | None) -> int:
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


def exception_attributes(exc: BaseException) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "exception.type": type(exc).__module__ + "." + type(exc).__qualname__,
        "exception.message": str(exc),
    }
    try:
        import traceback

        attrs["exception.stacktrace"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        pass
    return attrs


def _python_args(argv: list[str]) -> tuple[str, str, list[str]]:
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


def _python_service(argv: list[str]) -> str:
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


def _python_span_name(argv: list[str]) -> str:
    mode, target, rest = _python_args(argv)
    if mode == "script":
        return command_name([target, *rest])
    if mode == "-m":
        return command_name([os.path.basename(argv[0]), "-m", target, *rest])
    if mode == "-c" and "--multiprocessing-fork" in rest:
        return "multiprocessing spawn"
    return command_name(argv)
