"""``otel-run --profile imports``: an ``import MODULE`` span per slow import.

Loaded by the bootstrap only when ``OTEL_RUN_PROFILE`` names ``imports``.

**Where it measures.** CPython's import statement (``IMPORT_NAME``, C) looks a
module up in ``sys.modules`` and, only when it is missing, calls
``_find_and_load`` *by attribute* on ``_frozen_importlib``; that call is what
``python -X importtime`` times. ``importlib.import_module`` reaches the same
function through ``_bootstrap``'s globals (the same module). Replacing that one
attribute therefore sees every module loaded after the bootstrap — by either
path, nested as Python nests them (a package is loaded inside the import of
its submodule, as ``-X importtime`` prints it) — and nothing else: a module
already in ``sys.modules`` (a repeated import, one being initialised by another
thread or a circular import) is passed straight on and not counted.

Modules imported before ``site`` ran (``encodings``, ``os``, ``site`` itself)
and otel-run's own bootstrap are before the hook and not seen; ``-X importtime``
sees them. Unlike ``-X importtime`` nothing is written while the program runs
(it prints a line to stderr per import); the records are kept in a list and
turned into spans when the process ends.

**The traceback stays the program's.** CPython strips the frames of
``<frozen importlib._bootstrap>`` from a failed import's traceback. The hook is
compiled under that file name, so it is stripped with them: a traceback reads
the same traced or not (``python -v`` keeps those frames, and shows the hook as
one more of them).

**Spans.** An import of at least ``OTEL_RUN_IMPORT_THRESHOLD`` ms cumulative
becomes a span named ``import MODULE`` with ``otel_run.import.module``,
``.self_us`` and ``.cumulative_us`` (the two columns of ``-X importtime``),
``thread.id`` and ``thread.name``. Its parent is the import it ran in, else the
span open on that thread when the import began (when the OpenTelemetry API is
loaded), else the process span. Faster imports are summed into their nearest
shown ancestor (``otel_run.import.hidden.count`` and ``.hidden.cumulative_us``,
the latter without double counting nested ones). The process span gets the
totals: ``otel_run.import.count`` (every module loaded after the bootstrap),
``otel_run.import.cumulative_us`` (the time spent importing: the sum over
outermost imports) and ``otel_run.import.spans``.
"""

import sys
from time import time_ns

from otel_run import __version__, _env
from otel_run._wire import debug, new_span_id, request_json, scope_json, span_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from otel_run.bootstrap._boot import Process

DEFAULT_THRESHOLD_MS = 1.0
SPAN_PREFIX = "import "
MODULE = "otel_run.import.module"
SELF_US = "otel_run.import.self_us"
CUMULATIVE_US = "otel_run.import.cumulative_us"
HIDDEN_COUNT = "otel_run.import.hidden.count"
HIDDEN_CUMULATIVE_US = "otel_run.import.hidden.cumulative_us"
ERROR = "otel_run.import.error"
UNFINISHED = "otel_run.import.unfinished"
TOTAL_COUNT = "otel_run.import.count"
TOTAL_CUMULATIVE_US = "otel_run.import.cumulative_us"
TOTAL_SPANS = "otel_run.import.spans"
SPANS_PER_RECORD = 512
_SCOPE = scope_json("otel-run.imports", __version__)

# The hook, compiled as part of importlib so that CPython strips its frame from
# import tracebacks as it strips importlib's own (import.c, remove_importlib_frames).
# An entry is [name, thread, start_ns, end_ns, children_ns, error, parent entry, parent span].
_HOOK_SOURCE = """
def _find_and_load(name, import_):
    if name in _sys.modules:
        return _original(name, import_)
    tid = _ident()
    stack = _stacks.get(tid)
    if stack is None:
        stack = _stacks[tid] = []
        _name_thread(tid)
    parent = stack[-1] if stack else None
    entry = [name, tid, 0, 0, 0, None, parent, _outer_span() if parent is None else None]
    stack.append(entry)
    _records.append(entry)
    entry[2] = _now()
    try:
        return _original(name, import_)
    except BaseException as exc:
        entry[5] = type(exc).__name__
        raise
    finally:
        end = entry[3] = _now()
        stack.pop()
        if parent is not None:
            parent[4] += end - entry[2]
"""
_HOOK_FILE = "<frozen importlib._bootstrap>"


class ImportTimer:
    """The records of one process's imports, and the hook that makes them."""

    def __init__(self, process: "Process", threshold_ns: int) -> None:
        self.process = process
        self.threshold_ns = threshold_ns
        self.records: list[list[Any]] = []
        self.stacks: dict[int, list[list[Any]]] = {}
        self.original: Any = None
        self.main_thread = 0
        self.thread_names: dict[int, str] = {}

    def install(self) -> None:
        import _thread

        bootstrap = sys.modules.get("_frozen_importlib")
        original = getattr(bootstrap, "_find_and_load", None)
        if bootstrap is None or original is None:
            debug("no _frozen_importlib._find_and_load here: imports are not profiled")
            return
        namespace: dict[str, Any] = {
            "_sys": sys,
            "_original": original,
            "_ident": _thread.get_ident,
            "_now": time_ns,
            "_stacks": self.stacks,
            "_records": self.records,
            "_outer_span": self._outer_span,
            "_name_thread": self._name_thread,
        }
        exec(compile(_HOOK_SOURCE, _HOOK_FILE, "exec"), namespace)
        self.original = original
        self.main_thread = _thread.get_ident()
        bootstrap._find_and_load = namespace["_find_and_load"]  # type: ignore[attr-defined]

    def after_fork(self) -> None:
        """A forked child starts with no records (its parent writes those) and
        only its own thread's open imports."""
        import _thread

        del self.records[:]
        me = self.main_thread = _thread.get_ident()
        mine = self.stacks.get(me)
        self.stacks.clear()
        if mine:
            self.stacks[me] = mine

    def _name_thread(self, tid: int) -> None:
        """Note the name of a thread at its first import (it may be gone when the spans are written)."""
        threading = sys.modules.get("threading")
        if threading is not None:
            thread = threading._active.get(tid)
            if thread is not None:
                self.thread_names[tid] = thread.name

    def _outer_span(self) -> str:
        """The span an outermost import hangs under: the OpenTelemetry span open
        on this thread, else the process span (resolved when written)."""
        if "opentelemetry.trace" not in sys.modules:
            return ""
        try:
            span_id = self.process.current_span_id()
        except Exception:
            return ""
        return "" if span_id == self.process.span_id else span_id

    def finish(self) -> None:
        """Write the spans of this process's imports and put the totals on its
        process span (an exit callback: runs before the process span is written)."""
        records = list(self.records)
        del self.records[:]
        process = self.process
        now = time_ns()
        threads = {self.main_thread: "MainThread", **self.thread_names, **_thread_names()}
        ids: dict[int, str] = {}
        hidden: dict[int, list[int]] = {}  # id(entry) or 0 for the process: [count, cumulative ns]
        spans: list[str] = []
        total_ns = 0
        for entry in records:
            name, tid, start, end, children, error, parent, outer = entry
            unfinished = end == 0
            cumulative = (end or now) - start
            if parent is None:
                total_ns += cumulative
            if cumulative < self.threshold_ns:
                shown = _shown_ancestor(entry, ids)
                bucket = hidden.setdefault(id(shown) if shown is not None else 0, [0, 0])
                bucket[0] += 1
                if parent is None or id(parent) in ids:
                    bucket[1] += cumulative
                continue
            ids[id(entry)] = new_span_id()
            attrs: dict[str, Any] = {
                MODULE: name,
                SELF_US: (cumulative - children) // 1000,
                CUMULATIVE_US: cumulative // 1000,
                "thread.id": tid,
            }
            if tid in threads:
                attrs["thread.name"] = threads[tid]
            if error:
                attrs[ERROR] = error
            if unfinished:
                attrs[UNFINISHED] = True
            entry.append(attrs)
        for entry in records:
            shown_id = ids.get(id(entry))
            if shown_id is None:
                continue
            name, _tid, start, end, _children, _error, parent, outer, attrs = entry
            shown_bucket = hidden.get(id(entry))
            if shown_bucket:
                bucket = shown_bucket
                attrs[HIDDEN_COUNT], attrs[HIDDEN_CUMULATIVE_US] = bucket[0], bucket[1] // 1000
            parent_id = ids[id(parent)] if parent is not None else (outer or process.span_id)
            spans.append(span_json(process.trace_id, shown_id, parent_id, SPAN_PREFIX + name, start, end or now, attrs))
        for i in range(0, len(spans), SPANS_PER_RECORD):
            process.writer.write(
                process.trace_id,
                request_json(process.resource_json, _SCOPE, spans[i : i + SPANS_PER_RECORD]),
            )
        extra = process.extra_attributes
        extra[TOTAL_COUNT] = extra.get(TOTAL_COUNT, 0) + len(records)
        extra[TOTAL_CUMULATIVE_US] = extra.get(TOTAL_CUMULATIVE_US, 0) + total_ns // 1000
        extra[TOTAL_SPANS] = extra.get(TOTAL_SPANS, 0) + len(spans)
        top = hidden.get(0)
        if top:
            extra[HIDDEN_COUNT] = extra.get(HIDDEN_COUNT, 0) + top[0]
            extra[HIDDEN_CUMULATIVE_US] = extra.get(HIDDEN_CUMULATIVE_US, 0) + top[1] // 1000


def start(process: "Process", environ: "Mapping[str, str]") -> None:
    """Time this process's imports from now on; never raises."""
    try:
        timer = ImportTimer(process, threshold_ns(environ))
        timer.install()
        if timer.original is None:
            return
        process.exit_callbacks.append(timer.finish)
        import os

        os.register_at_fork(after_in_child=timer.after_fork)
    except Exception as exc:
        debug(f"import profiling not started: {exc!r}")


def threshold_ns(environ: "Mapping[str, str]") -> int:
    """``OTEL_RUN_IMPORT_THRESHOLD`` (ms, default 1) in nanoseconds; a bad value is the default."""
    value = environ.get(_env.OTEL_RUN_IMPORT_THRESHOLD, "")
    try:
        ms = float(value) if value else DEFAULT_THRESHOLD_MS
    except ValueError:
        ms = DEFAULT_THRESHOLD_MS
    if not ms >= 0 or ms == float("inf"):
        ms = DEFAULT_THRESHOLD_MS
    return int(ms * 1_000_000)


def _shown_ancestor(entry: "list[Any]", ids: "dict[int, str]") -> "list[Any] | None":
    parent: list[Any] | None = entry[6]
    while parent is not None and id(parent) not in ids:
        parent = parent[6]
    return parent


def _thread_names() -> "dict[int, str]":
    threading = sys.modules.get("threading")
    if threading is None:
        return {}
    try:
        return {ident: thread.name for ident, thread in dict(threading._active).items()}
    except Exception:
        return {}
