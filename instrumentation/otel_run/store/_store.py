"""Reading and writing the embedded store (see :mod:`otel_run.store`)."""

from __future__ import annotations

import os

from otel_run._errors import OtelRunError
from otel_run.store import _layout
from otel_run.store._jsonl import loads
from otel_run.store._merge import FormatError, merge, parse_request
from otel_run.store._model import Span, Trace
from otel_run.store._validate import Checker, check_index_record, separate_duplicates

TYPE_CHECKING = False  # keep ``typing`` out of otel-run's start-up
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any


class StoreError(OtelRunError):
    """The store or one of its files cannot be used; the message names the file."""


class Run:
    """One otel-run invocation, as the index records it."""

    __slots__ = (
        "command",
        "cwd",
        "end_ns",
        "exit_code",
        "finished",
        "git_commit",
        "host",
        "label",
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
        self.warmup = False
        """A warm-up run of ``otel-run --warmup``: stored, but not compared."""
        self.series: str | None = None
        """The id shared by the runs of one ``otel-run --runs`` invocation."""
        self.repeat: int | None = None

    @property
    def wall_ms(self) -> float | None:
        return (self.end_ns - self.start_ns) / 1e6 if self.finished else None

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
        """What was wrong in the index (lines left out, fields of the wrong type)."""

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
        return sorted(runs.values(), key=lambda r: r.start_ns)

    def _index_records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            with open(self.index_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"{self.index_path}: cannot read: {exc.strerror}") from exc
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = loads(line)
            except ValueError as exc:
                raise StoreError(f"{self.index_path}:{number}: corrupt index line ({_reason(exc)})") from exc
            if not isinstance(record, dict):
                raise StoreError(f"{self.index_path}:{number}: corrupt index line (not an object)")
            yield number, record

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
            os.mkdir(path)
        except FileExistsError:
            pass
        import time

        with open(os.path.join(path, run.run_id), "w", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {endpoint}\n")

    # traces --------------------------------------------------------------------
    def load_trace(self, trace_id: str) -> Trace:
        """The merged trace; a missing file is an empty trace."""
        return load_trace_file(self.trace_path(trace_id), trace_id)


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
    numbers, and warnings (a partial last line is skipped). Errors name the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise StoreError(f"{path}: is a directory, expected an OTLP JSON file") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}") from exc
    return _decode(path, data)


def _decode(path: str, data: bytes) -> tuple[list[tuple[int, Any]], list[str]]:
    warnings: list[str] = []
    lines = data.splitlines()
    last = len(lines)
    try:
        documents = list(_documents(lines))
    except ValueError as exc:
        raise StoreError(f"{path}: not OTLP JSON ({_reason(exc)})") from exc
    out: list[tuple[int, Any]] = []
    for number, obj, error in documents:
        if error is not None:
            if number == last:
                # a writer killed mid-line leaves a partial last line: skip it, keep the rest
                warnings.append(f"{path}:{number}: incomplete last line skipped")
                continue
            raise StoreError(f"{path}:{number}: corrupt trace data ({error})")
        out.append((number, obj))
    return out, warnings


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


def _documents(lines: list[bytes]) -> Iterator[tuple[int, Any, str | None]]:
    """JSON lines, or a single (possibly pretty-printed) JSON document."""
    if (lines and lines[0].strip() in (b"{", b"[")) or (len(lines) > 1 and not lines[0].rstrip().endswith(b"}")):
        yield 1, loads(b"\n".join(lines)), None
        return
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, loads(line), None
        except ValueError as exc:
            if number == 1 and not line.lstrip().startswith(b"{"):
                raise
            yield number, None, _reason(exc)


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    text = str(exc)
    return text.split(":", maxsplit=1)[0] if ": line" in text else text
