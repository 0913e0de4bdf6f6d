"""The wire format every layer shares: ids, ``traceparent``, OTLP JSON, the span writer.

The bottom floor of otel-run. The bootstrap of every traced process, the
instrumentations, otel-run itself, the store and the receiver all speak it, and
it speaks to nobody above it: standard library only (``os``, ``sys``,
``_thread``, all loaded before ``site``), so a traced process pays next to
nothing for it.

Spans are written as OTLP JSON lines (the OpenTelemetry Collector file-exporter
format: one ``ExportTraceServiceRequest`` per line) to
``$OTEL_RUN_STORE/traces/<trace_id>.jsonl``, appended with ``O_APPEND`` so any
number of processes can share a file. One span may be written in fragments,
marked by the attribute ``otel_run.record``: ``start`` (the process span as it
began), ``reap`` (the parent's view of a child it spawned, after ``wait4``) and
``waited`` (a parent's ``os.waitpid`` of a child it did not spawn through
``subprocess``, e.g. a ``multiprocessing`` worker). Readers merge fragments by
span id (:mod:`otel_run.store._merge`).
"""

import _thread
import os
import sys

from otel_run import __version__, _env
from otel_run._redact import is_secret_name, redact_args, redact_text, redact_value, remember_environment

TYPE_CHECKING = False  # ``typing`` costs milliseconds to import; mypy still sees this
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

# ----------------------------------------------------------------- constants

SCOPE_NAME = "otel-run"
RECORD_KEY = "otel_run.record"
RECORD_START = "start"
RECORD_REAP = "reap"
RECORD_WAITED = "waited"
RECORD_PROFILE = "profile"  # a fragment adding a span's profile summary (written after the run)

# OTLP enum values (opentelemetry/proto/trace/v1/trace.proto)
KIND_INTERNAL = 1
KIND_CLIENT = 3
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

# Resource usage. A process's own numbers (a Python process reads them from
# inside: RUSAGE_SELF and VmHWM) and, from its reaper's wait4, the tree's
# (the process and the descendants it waited for).
CPU_USER = "otel_run.process.cpu.user"
CPU_SYSTEM = "otel_run.process.cpu.system"
MAX_RSS = "otel_run.process.max_rss"
CPU_CHILDREN_USER = "otel_run.process.children.cpu.user"
CPU_CHILDREN_SYSTEM = "otel_run.process.children.cpu.system"
CPU_TREE_USER = "otel_run.process.cpu.tree.user"
CPU_TREE_SYSTEM = "otel_run.process.cpu.tree.system"
MAX_RSS_TREE = "otel_run.process.max_rss.tree"

SIGNAL_EXPECTED = "otel_run.process.signal.expected"
"""The signal that ended a process came from its parent, which asked for it
(``terminate()``, ``os.kill``): an ending the program chose, not an error."""

EVENT_SIGNAL_SENT = "otel_run.signal.sent"
"""An event on a process span: it sent a signal (``os.kill``) to ``process.pid``;
a reader sees a process that died of it, reaped by another, as ended as asked."""
EVENT_SIGNAL_FORWARDED = "otel_run.signal.forwarded"
"""An event on the command's process span: otel-run passed it a signal sent to
otel-run (``otel_run.process.signal``, from ``otel_run.signal.sender.pid``)."""
EVENT_SIGNAL_GROUP = "otel_run.signal.group"
"""An event on the command's process span: a signal sent to otel-run's whole
process group reached the command from its sender; otel-run did not pass it on
a second time (attributes as for ``otel_run.signal.forwarded``)."""
SIGNALS_KEPT = 256

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


def any_value(value: "Any", key: str = "") -> str:
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


_key_prefixes: "dict[str, str]" = {}
_names: "dict[str, str]" = {}
_encoded: "dict[tuple[str, Any], str]" = {}
_ENCODED_MAX = 8192


def attributes_json(attributes: "Mapping[str, Any] | Iterable[tuple[str, Any]]") -> str:
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


def learn_secrets(environ: "Mapping[str, str]") -> None:
    """Redact the values of ``environ``'s credential-named variables from now on
    (and forget encodings made before, if that taught something new).

    Called with a process's own environment when it starts and with each
    child's when it is spawned (a variable set at run time, or given to the
    child only), so a value passed on to a descendant is redacted from the
    command lines and messages this process writes too. Cheap when the
    environment is one it has seen."""
    if remember_environment(environ):
        _encoded.clear()
        _names.clear()


def span_json(
    trace_id: str,
    span_id: str,
    parent_id: "str | None",
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: "Mapping[str, Any]",
    *,
    kind: int = KIND_INTERNAL,
    events: "Iterable[tuple[str, int, Mapping[str, Any]]]" = (),
    status: "tuple[int, str]" = (STATUS_UNSET, ""),
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


def scope_json(name: str, version: "str | None") -> str:
    return '{"name":' + json_str(name) + (',"version":' + json_str(version) if version else "") + "}"


def request_json(resource_json: str, scope: str, spans: "Iterable[str]") -> str:
    """An ``ExportTraceServiceRequest`` with one resource and one scope."""
    return '{"resourceSpans":[' + resource_spans_json(resource_json, spans, scope) + "]}"


OTEL_RUN_SCOPE = scope_json(SCOPE_NAME, __version__)


def resource_spans_json(resource_json: str, spans: "Iterable[str]", scope: str = OTEL_RUN_SCOPE) -> str:
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
    argv: "list[str] | None",
    pid: "int | None",
    start_ns: int,
    end_ns: int,
    exit_code: "int | None",
    signal_name: "str | None",
    rusage: "Any",
    record: str = RECORD_REAP,
    name: "str | None" = None,
    expected: bool = False,
    events: "Iterable[tuple[str, int, Mapping[str, Any]]]" = (),
) -> str:
    """A child's process span as its parent saw it when it reaped it, as one
    ``ResourceSpans`` in JSON: pid, command, exit status and, from ``wait4``,
    CPU time and peak memory. ``argv`` None: a child whose command the reaper
    does not know (the ``waited`` record); ``pid`` None: one whose pid it does
    not know (``os.system``'s shell). ``expected``: the signal that ended it
    was sent by this process (a pool's ``terminate()``), so it is no error."""
    attrs: dict[str, Any] = {"process.parent_pid": os.getpid()}
    if pid is not None:
        attrs["process.pid"] = pid
    if argv is not None:
        executable = os.path.basename(argv[0]) if argv else "process"
        attrs["process.executable.name"] = executable
        attrs["process.command_args"] = redact_args(argv[:ARGS_MAX])
        name = name or command_name(argv)
    else:
        executable = "process"
        name = name or ("process %d" % pid if pid is not None else "process")
    resource = attributes_json({"service.name": executable, **({"process.pid": pid} if pid is not None else {})})
    status = (STATUS_UNSET, "")
    if exit_code is not None:
        attrs["process.exit.code"] = exit_code
        if signal_name:
            attrs["otel_run.process.signal"] = signal_name
            if expected:
                attrs[SIGNAL_EXPECTED] = True
            else:
                status = (STATUS_ERROR, f"killed by {signal_name}")
        elif exit_code:
            status = (STATUS_ERROR, f"exit code {exit_code}")
    if rusage is not None:
        # wait4's figures include every descendant the child waited for, and on
        # Linux the peak memory of the image before exec (a vfork child's is its
        # parent's): the tree's, not the process's own
        attrs[CPU_TREE_USER] = round(rusage.ru_utime, 6)
        attrs[CPU_TREE_SYSTEM] = round(rusage.ru_stime, 6)
        if rusage.ru_maxrss:
            attrs[MAX_RSS_TREE] = rusage.ru_maxrss * 1024
    attrs[RECORD_KEY] = record
    span = span_json(trace_id, span_id, parent_id, name, start_ns, end_ns, attrs, status=status, events=events)
    return resource_spans_json(resource, [span])


def exit_status(status: int) -> "tuple[int, str | None]":
    """``(exit code, signal name)`` of a ``wait`` status; 128+N when signal N killed it."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        return 128 + signum, signal_name(signum)
    return os.WEXITSTATUS(status), None


def signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exception_attributes(exc: BaseException) -> "dict[str, Any]":
    """The semantic conventions' ``exception.*`` attributes of ``exc``.

    Called at exit, where nothing may be imported: importing ``traceback`` (or
    anything that ``exec``s source, as ``namedtuple`` does) resets CPython's
    "unhandled KeyboardInterrupt" state, and the interpreter then exits 1
    instead of re-raising SIGINT. So ``traceback`` is used only if the program
    loaded it; otherwise the stack is formatted here, without source lines.
    """
    attrs: dict[str, Any] = {
        "exception.type": type(exc).__module__ + "." + type(exc).__qualname__,
        "exception.message": str(exc),
    }
    try:
        traceback = sys.modules.get("traceback")
        if traceback is not None:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        else:
            text = _format_exception(exc)
        attrs["exception.stacktrace"] = text
    except Exception:
        pass
    return attrs


def _format_exception(exc: BaseException, depth: int = 0) -> str:
    """``traceback.format_exception`` without its imports and source lines."""
    text = ""
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and depth < 8:
        text = _format_exception(cause, depth + 1) + (
            "\nThe above exception was the direct cause of the following exception:\n\n"
            if exc.__cause__ is not None
            else "\nDuring handling of the above exception, another exception occurred:\n\n"
        )
    tb = exc.__traceback__
    if tb is not None:
        text += "Traceback (most recent call last):\n"
        while tb is not None:
            code = tb.tb_frame.f_code
            text += '  File "%s", line %s, in %s\n' % (code.co_filename, tb.tb_lineno, code.co_name)
            tb = tb.tb_next
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = module + "." + name
    message = str(exc)
    return text + (name + ": " + message if message else name) + "\n"


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


def parse_traceparent(value: "str | None") -> "tuple[str, str, str] | None":
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


def parse_resource_attributes(value: "str | None") -> "dict[str, str]":
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


def command_name(args: "list[str]") -> str:
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

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
"""The store's modes, whatever the umask: spans hold command lines, paths and
environment-derived values, so only the store's owner reads them."""

MAX_RECORD = 256 << 20
"""The longest record (line) the store holds: writers refuse a longer one
(``EFBIG``), readers skip a longer line as damaged without holding it."""

_ENOSPC = 28  # errno.ENOSPC and EFBIG on Linux and the BSDs (``errno`` is not imported at start-up)
_EFBIG = 27


def make_private_dirs(path: str) -> None:
    """``mkdir -p`` where every directory made is 0700 whatever the umask (as
    the XDG base-directory spec asks); existing ones are left as they are."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        make_private_dirs(parent)
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        return
    os.chmod(path, PRIVATE_DIR)  # the umask may have taken bits off


def open_private(path: str, flags: int, dirs: bool = True) -> int:
    """``os.open(path, flags)``, creating the file as 0600 whatever the umask
    when it does not exist (and its directories as 0700, unless ``dirs`` is
    false: then a missing directory is FileNotFoundError)."""
    flags |= os.O_CLOEXEC
    while True:
        try:
            return os.open(path, flags & ~os.O_CREAT)
        except FileNotFoundError:
            if not flags & os.O_CREAT:
                raise
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        except FileNotFoundError:
            if not dirs:
                raise
            make_private_dirs(os.path.dirname(path))
            continue
        except FileExistsError:
            continue  # another process made it meanwhile: open theirs
        try:
            os.fchmod(fd, PRIVATE_FILE)
        except OSError:
            pass
        return fd


class SpanWriter:
    """Appends OTLP JSON lines to ``<store>/traces/<trace_id>.jsonl``.

    The contract: :meth:`write` puts the whole record in the file, on a line of
    its own, or raises :class:`OSError` (a full disk, a file-size limit).

    Each record goes out in one ``write(2)`` on an ``O_APPEND`` descriptor,
    which Linux applies atomically to a local file, so concurrent processes
    never interleave inside a line. A write can still be cut short (a full
    disk; SIGKILL in the middle of a large one), leaving a torn line. The
    framing resynchronises after it: a record starts with a newline when the
    file does not end in one, so a torn tail only damages itself (readers skip
    it with a warning) and never hides the records after it. After a short
    write the record is written once more, whole, or :class:`OSError` is raised.

    Within a process a lock guards the descriptor table, so a descriptor is
    never closed under a thread still writing to it (a service may touch many
    traces; at most ``MAX_OPEN`` stay open). Files are created 0600 and
    directories 0700, whatever the umask.
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
        """Append ``line`` (one JSON document, no newline) as one record."""
        data = line.encode("utf-8", "backslashreplace")
        with self._lock:
            fd = self._fds.get(trace_id)
            if fd is None:
                fd = self._open(trace_id)
            append_record(fd, data, self.path(trace_id))

    def after_fork(self) -> None:
        """In a forked child: the lock may have been held by a thread that is gone."""
        self._lock = _thread.allocate_lock()

    def _open(self, trace_id: str) -> int:
        # read access too: the last byte tells whether the file ends in a torn line
        fd = open_private(self.path(trace_id), os.O_RDWR | os.O_APPEND | os.O_CREAT)
        if len(self._fds) >= self.MAX_OPEN:
            oldest = next(iter(self._fds))
            os.close(self._fds.pop(oldest))
        self._fds[trace_id] = fd
        return fd


def append_record(fd: int, data: bytes, path: str) -> None:
    """Append ``data`` and a newline to the ``O_APPEND`` file ``fd`` as one line
    of its own, whole, or raise :class:`OSError` (see :class:`SpanWriter`)."""
    if len(data) > MAX_RECORD:
        raise OSError(_EFBIG, f"a record of {len(data)} bytes is over the store's {MAX_RECORD >> 20} MiB limit", path)
    head = b"\n" if _ends_torn(fd) else b""
    if os.writev(fd, (head, data, b"\n")) == len(head) + len(data) + 1:
        return
    # cut short: the torn part becomes a line of its own (ended by the newline
    # in front of the copy), and the copy is the record, whole, or nothing
    if os.writev(fd, (b"\n", data, b"\n")) == len(data) + 2:
        return
    raise OSError(_ENOSPC, "short write: the record was not stored whole", path)


def _ends_torn(fd: int) -> bool:
    """Whether the file does not end in a newline (a record cut short); True
    when that cannot be read (a newline too many is an empty line, skipped)."""
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        return end > 0 and os.pread(fd, 1, end - 1) != b"\n"
    except OSError:
        return True
