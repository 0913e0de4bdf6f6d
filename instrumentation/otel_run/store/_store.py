"""Reading and writing the embedded store (see :mod:`otel_run.store`)."""

from __future__ import annotations

import io
import itertools
import os

from otel_run import _wire
from otel_run._errors import OtelRunError
from otel_run._wire import MAX_RECORD
from otel_run.store import _layout
from otel_run.store._jsonl import loads
from otel_run.store._merge import FormatError, merge, parse_request
from otel_run.store._model import Span, Trace
from otel_run.store._validate import Checker, check_index_record, separate_duplicates

TYPE_CHECKING = False  # keep ``typing`` out of otel-run's start-up
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any, BinaryIO

_MAX_LINE = MAX_RECORD + 1  # a record and its newline
_RECORD_START = b'{"resourceSpans":'
"""How every record otel-run's writers make begins (a quote inside a JSON
string is escaped, so these bytes begin a record and nothing else)."""
_LINES_NAMED = 5
"""Damaged lines a warning names one by one."""
_START_SLACK_NS = 2_000_000_000
"""``/proc``'s start times are in clock ticks from a boot time in seconds."""


class StoreError(OtelRunError):
    """The store or one of its files cannot be used; the message names the file."""


class Run:
    """One otel-run invocation, as the index records it."""

    __slots__ = (
        "command",
        "cwd",
        "died",
        "end_ns",
        "exit_code",
        "finished",
        "git_commit",
        "host",
        "label",
        "pid",
        "processes",
        "repeat",
        "root_span_id",
        "run_id",
        "series",
        "spans",
        "start_ns",
        "trace_id",
        "warmup",
    )

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.trace_id = ""
        self.root_span_id = ""
        self.command: list[str] = []
        self.cwd = ""
        self.start_ns = 0
        self.end_ns = 0
        self.exit_code: int | None = None
        self.label: str | None = None
        self.git_commit: str | None = None
        self.host = ""
        self.spans: int | None = None
        self.processes: int | None = None
        self.finished = False
        self.pid: int | None = None
        """otel-run's process id (runs recorded before it was kept: None)."""
        self.died = False
        """otel-run died before it recorded the run's end (SIGKILL, a crash):
        the run ended at its last record (``end_ns``), its exit is unknown."""
        self.warmup = False
        """A warm-up run of ``otel-run --warmup``: stored, but not compared."""
        self.series: str | None = None
        """The id shared by the runs of one ``otel-run --runs`` invocation."""
        self.repeat: int | None = None

    @property
    def wall_ms(self) -> float | None:
        return (self.end_ns - self.start_ns) / 1e6 if self.finished or self.died else None

    def update(self, record: Mapping[str, Any]) -> None:
        for key, value in record.items():
            if key in self.__slots__ and key != "run_id" and value is not None:
                setattr(self, key, value)
        if record.get("event") == "end":
            self.finished = True

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}
        out["wall_ms"] = self.wall_ms
        return out


class Store:
    """A store directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.warnings: list[str] = []
        """What reading skipped or left out (damaged lines, index lines and fields
        of the wrong type, in the index and in the traces loaded), each naming
        the file and line, for the commands to print."""

    def warn(self, warnings: Iterable[str]) -> None:
        for warning in warnings:
            if warning not in self.warnings:
                self.warnings.append(warning)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], override: str | None = None) -> Store:
        return cls(_layout.store_root(environ, override))

    # paths -------------------------------------------------------------------
    @property
    def index_path(self) -> str:
        return _layout.index_path(self.root)

    def trace_path(self, trace_id: str) -> str:
        return _layout.trace_path(self.root, trace_id)

    # index -------------------------------------------------------------------
    def runs(self) -> list[Run]:
        """All runs, oldest first."""
        runs: dict[str, Run] = {}
        self.warnings.clear()
        for number, raw in self._index_records():
            record = check_index_record(raw, f"{self.index_path}:{number}", self.warnings)
            if record is None:
                continue
            run_id = record["run_id"]
            run = runs.get(run_id)
            if run is None:
                run = runs[run_id] = Run(run_id)
            run.update(record)
        host = os.uname().nodename
        for run in runs.values():
            if not run.finished and run.host == host and _otel_run_died(run):
                run.died = True
                run.end_ns = max(run.start_ns, self._last_record_ns(run.trace_id))
        return sorted(runs.values(), key=lambda r: r.start_ns)

    def _index_records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            with open(self.index_path, "rb") as f:
                damage = _Damage(self.index_path, "index line")
                for number, line, last in _lines(f):
                    record = damage.decode(number, line, last)
                    if record is _DAMAGED:
                        continue
                    if not isinstance(record, dict):
                        damage.add(number, "not an object", False)
                        continue
                    damage.good += 1
                    yield number, record
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"{self.index_path}: cannot read: {exc.strerror}") from exc
        self.warn(damage.warnings())

    def _last_record_ns(self, trace_id: str) -> int:
        """When the trace's file was last written (0 when it is missing)."""
        try:
            return os.stat(self.trace_path(trace_id)).st_mtime_ns
        except (OSError, ValueError):
            return 0

    def import_runs(self, source: Store) -> tuple[int, int]:
        """Add the finished runs of ``source`` (another machine's store) that this store lacks:
        their trace files and index records, checked as every reader checks them.

        Returns:
            (runs added, runs of ``source`` left out because they have not finished).
        """
        import shutil  # otel-run loads this module on every run: only otel-vm fetch needs shutil

        have = {run.run_id for run in self.runs()}
        finished = {run.run_id: run for run in source.runs() if run.finished}
        unfinished = 0
        records: dict[str, list[dict[str, Any]]] = {}
        for number, raw in source._index_records():
            record = check_index_record(raw, f"{source.index_path}:{number}", source.warnings)
            if record is not None and record["run_id"] not in have:
                records.setdefault(record["run_id"], []).append(record)
        _layout.create_store(self.root)
        for run_id, lines in records.items():
            run = finished.get(run_id)
            if run is None:
                unfinished += 1
                continue
            src, dst = source.trace_path(run.trace_id), self.trace_path(run.trace_id)
            if run.trace_id and os.path.exists(src) and not os.path.exists(dst):
                fd = _layout.open_private(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
                with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                    shutil.copyfileobj(f, out)
            for record in lines:
                _layout.append_index(self.root, record)
        return len(records) - unfinished, unfinished

    def find_run(self, ref: str | None = None) -> Run:
        """A run by id, id prefix or trace id (prefix); the last run if ``ref`` is None."""
        runs = self.runs()
        if not runs:
            raise StoreError(f"{self.root}: no runs stored yet (run a command with otel-run first)")
        if ref is None or ref in ("last", "-1"):
            return runs[-1]
        ref = ref.lower()
        matches = [r for r in runs if r.run_id.startswith(ref)] or [r for r in runs if r.trace_id.startswith(ref)]
        if not matches:
            raise StoreError(f"no run or trace {ref!r} in {self.root}")
        if len({r.run_id for r in matches}) > 1 and not any(ref in (r.run_id, r.trace_id) for r in matches):
            raise StoreError(f"{ref!r} is ambiguous: {', '.join(r.run_id for r in matches[:5])}")
        return matches[-1]

    def was_pushed(self, run: Run) -> bool:
        return os.path.exists(os.path.join(self.root, _layout.PUSHED, run.run_id))

    def mark_pushed(self, run: Run, endpoint: str) -> None:
        """Write ``pushed/<run_id>``. Raises FileNotFoundError when the store
        itself is gone (a background deliverer must not re-create it)."""
        path = os.path.join(self.root, _layout.PUSHED)
        try:
            os.mkdir(path, _wire.PRIVATE_DIR)
            os.chmod(path, _wire.PRIVATE_DIR)
        except FileExistsError:
            pass
        import time

        fd = _layout.open_private(os.path.join(path, run.run_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {endpoint}\n")

    # traces --------------------------------------------------------------------
    def load_trace(self, trace_id: str) -> Trace:
        """The merged trace; a missing file is an empty trace. What was
        skipped is in its warnings, and the store's."""
        trace = load_trace_file(self.trace_path(trace_id), trace_id)
        self.warn(trace.warnings)
        return trace


def load_trace_file(path: str, trace_id: str | None = None) -> Trace:
    """Read an OTLP JSON file (one request per line, or one JSON document) and
    merge it into a :class:`Trace`. Errors name the file and line."""
    records, warnings = _read_records(path, trace_id is not None)
    if trace_id is None:
        trace_id = records[0].trace_id if records else os.path.basename(path).split(".")[0]
    spans = merge(separate_duplicates([r for r in records if r.trace_id == trace_id], path, warnings))
    others = {r.trace_id for r in records if r.trace_id != trace_id}
    if others:
        warnings.append(f"{path}: {len(others)} other trace(s) ignored")
    return Trace(trace_id, spans, warnings, source=path)


def read_documents(path: str) -> tuple[list[tuple[int, Any]], list[str]]:
    """The decoded JSON documents of an OTLP JSON file, with their line
    numbers, and warnings: a damaged line (torn, truncated, not UTF-8, over
    :data:`~otel_run._wire.MAX_RECORD`) is skipped, naming the file, the line
    and how many records were skipped; everything else is read. Errors name the file."""
    try:
        with open(path, "rb") as f:
            return _decode(path, f)
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StoreError(f"{path}: is a directory, expected an OTLP JSON file") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}") from exc


def _decode(path: str, f: BinaryIO) -> tuple[list[tuple[int, Any]], list[str]]:
    """JSON lines, or a single (possibly pretty-printed) JSON document."""
    lines = _lines(f)
    head = next(lines, None)
    if head is None:
        return [], []
    damage = _Damage(path, "record")
    first = head[1]
    if first is not None:
        pretty = first.strip() in (b"{", b"[")
        obj = _DAMAGED if pretty else _loads(first)
        if obj is _DAMAGED:
            # one document over several lines (pretty-printed), or a damaged first line
            data = _head_of(f, head[0]) + f.read()
            obj = _loads(data)
            if obj is not _DAMAGED:
                return [(1, obj)], []
            if pretty:
                raise StoreError(f"{path}: not OTLP JSON ({_reason_of(data)})")
            lines = _lines(io.BytesIO(data))
            head = next(lines)
    out: list[tuple[int, Any]] = []
    for number, line, last in itertools.chain((head,), lines):
        obj = damage.decode(number, line, last)
        if obj is not _DAMAGED:
            out.append((number, obj))
        elif not out and number == head[0] and line is not None and not line.lstrip().startswith(b"{"):
            raise StoreError(f"{path}: not OTLP JSON ({damage.reasons[-1][1]})")
    damage.good = len(out)
    return out, damage.warnings()


def _head_of(f: BinaryIO, lines: int) -> bytes:
    """The file's first ``lines`` lines again (read past already)."""
    f.seek(0)
    return b"".join(f.readline(_MAX_LINE) for _ in range(lines))


def _read_records(path: str, missing_ok: bool) -> tuple[list[Span], list[str]]:
    try:
        documents, warnings = read_documents(path)
    except StoreError:
        if missing_ok and not os.path.exists(path):
            return [], []
        raise
    records: list[Span] = []
    check = Checker(path)
    for number, obj in documents:
        obj = check.request(obj, number, alone=len(documents) == 1)
        if obj is None:
            continue
        try:
            records.extend(parse_request(obj))
        except FormatError as exc:
            raise StoreError(f"{path}:{number}: {exc}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"{path}:{number}: malformed OTLP JSON ({exc})") from exc
    warnings.extend(check.warnings())
    return records, warnings


def _lines(f: BinaryIO) -> Iterator[tuple[int, bytes | None, bool]]:
    """``(number, line, is the last)`` of each non-empty line; the line is None
    when it is longer than :data:`~otel_run._wire.MAX_RECORD` (its bytes are
    read past, never held). Empty lines (the writers' resynchronising
    newlines) are left out."""
    number = 0
    pending: tuple[int, bytes | None] | None = None
    while True:
        line: bytes | None = f.readline(_MAX_LINE)
        if not line:
            break
        number += 1
        if len(line) == _MAX_LINE and not line.endswith(b"\n"):
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = f.readline(_MAX_LINE)
            line = None
        elif not line.strip():
            continue
        if pending is not None:
            yield pending[0], pending[1], False
        pending = (number, line)
    if pending is not None:
        yield pending[0], pending[1], True


class _Damage:
    """The damaged lines of one file, and the one warning that names them."""

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        self.what = what
        self.reasons: list[tuple[int, str]] = []
        self.good = 0

    def decode(self, number: int, line: bytes | None, last: bool) -> Any:
        """The line's JSON value, or :data:`_DAMAGED` (and the line is named).
        A line where a write cut short was followed by a whole record (written
        before the writers resynchronised) gives that record."""
        if line is None:
            self.add(number, f"longer than {MAX_RECORD >> 20} MiB", last)
            return _DAMAGED
        obj = _loads(line)
        if obj is not _DAMAGED:
            return obj
        ended = line.endswith(b"\n")
        line = line.rstrip(b"\r\n")
        reason = _reason_of(line)
        start = line.find(_RECORD_START, 1)
        while start != -1:
            obj = _loads(line[start:])
            if obj is not _DAMAGED:
                self.add(number, f"cut short, then a whole record ({reason})", False)
                return obj
            start = line.find(_RECORD_START, start + 1)
        self.add(number, reason, last and not ended)
        return _DAMAGED

    def add(self, number: int, reason: str, incomplete_last: bool) -> None:
        self.reasons.append((number, "incomplete last line" if incomplete_last else reason))

    def warnings(self) -> list[str]:
        if not self.reasons:
            return []
        count = len(self.reasons)
        if count == 1:
            number, reason = self.reasons[0]
            what = (
                "incomplete last line skipped (a write in progress or cut short)"
                if reason == "incomplete last line"
                else f"damaged line skipped ({reason})"
            )
            return [f"{self.path}:{number}: {what}: 1 {self.what} skipped, {self.good} read"]
        named = "; ".join(f"line {n}: {r}" for n, r in self.reasons[:_LINES_NAMED])
        more = f"; and {count - _LINES_NAMED} more" if count > _LINES_NAMED else ""
        return [
            f"{self.path}: {count} damaged lines skipped ({named}{more}): "
            f"{count} {self.what}s skipped, {self.good} read"
        ]


def _otel_run_died(run: Run) -> bool:
    """Whether the otel-run that made ``run`` (on this host) is gone without
    recording its end: its pid is free, a zombie's, or another process's (one
    that started after the run did)."""
    pid = run.pid
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass  # alive, another user's
    found = _process_state(pid)
    if found is None:
        return False
    state, started = found
    return state == b"Z" or started > run.start_ns + _START_SLACK_NS


def _process_state(pid: int) -> tuple[bytes, int] | None:
    """The state letter of process ``pid`` and when it started (``/proc``;
    None when that cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        state, ticks = fields[0], int(fields[19])
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return state, boot * 1_000_000_000 + ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


_DAMAGED: Any = object()
"""What :func:`_loads` gives for bytes that are not one JSON value."""


def _loads(data: bytes) -> Any:
    try:
        return loads(data)
    except ValueError:  # UnicodeDecodeError too
        return _DAMAGED


def _reason_of(data: bytes) -> str:
    """Why ``data`` is not JSON, in a few words."""
    try:
        loads(data)
    except ValueError as exc:
        return _reason(exc)
    return "not JSON"


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    text = str(exc)
    return text.split(":", maxsplit=1)[0] if ": line" in text else text
