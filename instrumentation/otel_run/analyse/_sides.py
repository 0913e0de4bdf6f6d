"""The two sides of a span-diff: which runs they are, read into profiles.

A side is, tried in this order:

* a **file** of OTLP JSON (one request per line as otel-run and the Collector's
  file exporter write it, or one document as ``otel-trace export`` and Tempo's
  ``/api/traces/<id>`` give it); a file may hold many traces, each one run;
* a **directory** of such files (``*.json``, ``*.jsonl``, any depth);
* ``label:NAME`` or a **label** in the store: its finished, successful, non
  warm-up runs (``otel-run --runs N --label NAME``);
* ``runs:ID,ID,…`` or a **comma-separated list** of run or trace ids (or
  prefixes) in the store.

Reading is the slow part of a diff (JSON decoding); with more than a few runs
it is spread over worker processes, each sending back only the small
:class:`~otel_run.analyse._diff.RunProfile` of its runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from otel_run._errors import OtelRunError
from otel_run.analyse._paths import Normalizer
from otel_run.analyse._profile import (
    BYTES_ATTRIBUTES,
    RunProfile,
    SpanTable,
    profile,
    tables_from_bytes,
    tables_from_otlp,
)
from otel_run.store._merge import FormatError
from otel_run.store._store import Run, Store, StoreError, read_documents
from otel_run.store._validate import Checker

EXTENSIONS = (".json", ".jsonl")
PARALLEL_FROM = 4
"""Use worker processes from this many files or runs on."""


class SideError(OtelRunError):
    """A side names nothing usable; the message says which side and why."""


class Side:
    """One side, resolved: what to read, and what was left out."""

    def __init__(self, label: str, spec: str) -> None:
        self.label = label  # "before" / "after"
        self.spec = spec
        self.jobs: list[tuple[str, ...]] = []
        self.warnings: list[str] = []


def resolve(label: str, spec: str, store: Store) -> Side:
    """What ``spec`` names (see the module docstring); raises :class:`SideError`."""
    side = Side(label, spec)
    if not spec.strip():
        raise SideError(f"{label}: empty (give a label, a file, a directory or run ids)")
    kind, _, rest = spec.partition(":")
    if kind == "label" and rest:
        _from_label(side, rest, store, forced=True)
    elif kind == "runs" and rest:
        _from_ids(side, rest, store, forced=True)
    elif os.path.isdir(spec):
        files = sorted(_files(spec))
        if not files:
            raise SideError(f"{label}: directory {spec} holds no {' or '.join(EXTENSIONS)} files")
        side.jobs = [("file", f) for f in files]
    elif os.path.exists(spec):
        side.jobs = [("file", spec)]
    elif not _from_label(side, spec, store, forced=False) and not _from_ids(side, spec, store, forced=False):
        raise SideError(f"{label}: {spec!r} is not a file, a directory, a label or a run id in {store.root}")
    return side


def load(
    side: Side, normalize: Normalizer, metrics: Sequence[str] = (), workers: int | None = None
) -> list[RunProfile]:
    """The side's runs as profiles, in order; raises :class:`SideError` for an
    empty side and ``StoreError`` (naming the file) for unreadable data."""
    jobs = side.jobs
    workers = workers if workers is not None else min(len(jobs), os.cpu_count() or 1)
    if workers > 1 and len(jobs) >= PARALLEL_FROM:
        import multiprocessing

        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ctx.Pool(workers, initializer=_init_worker, initargs=(normalize, tuple(metrics))) as pool:
            chunks = pool.map(_run_job, jobs, chunksize=max(1, len(jobs) // (workers * 4)))
    else:
        _init_worker(normalize, tuple(metrics))
        chunks = [_run_job(job) for job in jobs]
    profiles: list[RunProfile] = []
    for chunk, warnings in chunks:
        profiles.extend(chunk)
        side.warnings.extend(warnings)
        for p in chunk:
            side.warnings.extend(p.warnings)
    empty = [p for p in profiles if not p.paths]
    if empty:
        side.warnings.append(f"{side.label}: {len(empty)} run(s) with no spans left out")
        profiles = [p for p in profiles if p.paths]
    if not profiles:
        why = f" ({side.warnings[0]})" if side.warnings else ""
        raise SideError(f"{side.label}: {side.spec!r} holds no spans{why}")
    return profiles


# ------------------------------------------------------------------ private


def _from_label(side: Side, name: str, store: Store, forced: bool) -> bool:
    runs = [r for r in _runs(store, side) if r.label == name]
    if not runs:
        if forced:
            raise SideError(f"{side.label}: no runs labelled {name!r} in {store.root} (otel-trace list shows labels)")
        return False
    warmups = [r for r in runs if r.warmup]
    unfinished = [r for r in runs if not r.warmup and not r.finished]
    failed = [r for r in runs if not r.warmup and r.finished and r.exit_code not in (0, None)]
    chosen = [r for r in runs if not r.warmup and r.finished and r.exit_code in (0, None)]
    if failed:
        side.warnings.append(
            f"{side.label}: {len(failed)} failed run(s) of {name!r} left out "
            f"(exit {', '.join(str(r.exit_code) for r in failed[:5])})"
        )
    if unfinished:
        side.warnings.append(f"{side.label}: {len(unfinished)} unfinished run(s) of {name!r} left out")
    if not chosen:
        raise SideError(
            f"{side.label}: label {name!r} has no finished, successful runs "
            f"({len(warmups)} warm-up, {len(failed)} failed, {len(unfinished)} unfinished)"
        )
    side.jobs = [_store_job(store, r) for r in chosen]
    return True


def _from_ids(side: Side, spec: str, store: Store, forced: bool) -> bool:
    refs = [r.strip() for r in spec.split(",") if r.strip()]
    if not refs:
        raise SideError(f"{side.label}: no run ids in {spec!r}")
    runs: list[Run] = []
    for ref in refs:
        try:
            runs.append(store.find_run(ref))
        except StoreError as exc:
            if forced or len(refs) > 1:
                raise SideError(f"{side.label}: {exc}") from None
            return False
    side.warnings.extend(w for w in store.warnings if w not in side.warnings)
    side.jobs = [_store_job(store, r) for r in runs]
    return True


def _runs(store: Store, side: Side) -> list[Run]:
    try:
        runs = store.runs()
    except StoreError as exc:
        raise SideError(f"{side.label}: {exc}") from None
    side.warnings.extend(w for w in store.warnings if w not in side.warnings)
    return runs


def _store_job(store: Store, run: Run) -> tuple[str, ...]:
    return ("store", store.trace_path(run.trace_id), run.trace_id, run.root_span_id, run.run_id)


def _files(directory: str) -> Iterator[str]:
    for base, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.endswith(EXTENSIONS) and not name.startswith("."):
                yield os.path.join(base, name)


_NORMALIZE: Normalizer | None = None
_METRICS: tuple[str, ...] = ()


def _init_worker(normalize: Normalizer, metrics: tuple[str, ...]) -> None:
    global _NORMALIZE, _METRICS
    _NORMALIZE, _METRICS = normalize, metrics


def _run_job(job: tuple[str, ...]) -> tuple[list[RunProfile], list[str]]:
    normalize = _NORMALIZE
    assert normalize is not None
    path = job[1]
    fast = _fast_tables(path)
    if fast is not None:
        tables, warnings = fast
    else:
        tables, warnings = _tables(path)
    if job[0] == "store":
        _, _, trace_id, root_span_id, run_id = job
        tables = [t for t in tables if t.trace_id == trace_id]
        profiles = [profile(t, normalize, _METRICS, run=run_id, source=path, root_span_id=root_span_id) for t in tables]
    else:
        profiles = [profile(t, normalize, _METRICS, source=path) for t in tables]
    if not tables:
        warnings.append(f"{path}: no spans")
    return profiles, warnings


def _fast_tables(path: str) -> tuple[list[SpanTable], list[str]] | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None  # the general path says what is wrong
    return tables_from_bytes(data, (*BYTES_ATTRIBUTES, *_METRICS), path)


def _tables(path: str) -> tuple[list[SpanTable], list[str]]:
    documents, warnings = read_documents(path)
    check = Checker(path)
    alone = len(documents) == 1
    checked = [(n, obj) for n, obj in ((n, check.request(o, n, alone=alone)) for n, o in documents) if obj is not None]
    warnings.extend(check.warnings())
    documents = checked
    try:
        tables = tables_from_otlp((obj for _number, obj in documents), (*BYTES_ATTRIBUTES, *_METRICS), path)
    except FormatError as exc:
        number = _failing_document(documents, exc)
        raise StoreError(f"{path}{f':{number}' if number else ''}: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"{path}: malformed OTLP JSON ({exc!r})") from None
    return tables, warnings


def _failing_document(documents: list[tuple[int, Any]], exc: Exception) -> int | None:
    """The line of the first document that does not parse (for the message)."""
    if len(documents) == 1:
        return None
    for number, obj in documents:
        try:
            tables_from_otlp([obj], ())
        except (FormatError, TypeError, ValueError, AttributeError):
            return number
    return None
