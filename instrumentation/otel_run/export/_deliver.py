"""The background deliverer: sends the runs otel-run handed off (see :mod:`._outbox`).

    python -E -c '…; from otel_run.export._deliver import main; main()' STORE KEY [--endpoint URL]

otel-run starts it detached after a run (or, with ``--runs``, once after the
whole series) and exits without waiting. The deliverer:

* runs at ``SCHED_IDLE`` priority (otel-run asks for it at spawn; otherwise it
  lowers its own, to ``nice 19`` where ``SCHED_IDLE`` is refused);
* takes the outbox's lock, or exits at once when another deliverer has it;
* waits until runs stop arriving (:data:`QUIET_S`, at most :data:`HOLD_MAX_S`),
  so that it does its work in the pause after a burst of short runs rather
  than beside them;
* claims each entry (removes it) before sending, so each handed-off run is
  tried once, by one deliverer; once the outbox is empty it waits
  :data:`LINGER_S` for more before it lets go;
* sends them as ``otel-trace push`` does (:func:`._push.send_runs`): the
  official OTLP exporters, every ``OTEL_EXPORTER_OTLP_*`` setting, within
  ``OTEL_RUN_EXPORT_TIMEOUT``, runs waiting together in one request (up to
  :data:`BATCH_SPANS` spans); on success each run is marked ``pushed/<run_id>``;
* appends one JSON line per run to the delivery record ``<store>/export.jsonl``
  (``ok``, or the ``error``). A run that was not delivered stays unpushed, and
  ``otel-trace push --unpushed`` sends it later;
* after a failed send (collector down, no answer before the deadline) does not
  try the rest of that batch against the same endpoint: those runs get a "not
  tried" line and stay unpushed;
* gives up (a record line, then exit) when one send outlasts its deadline by
  far — a hang the exporter's own timeout does not bound;
* exits quietly whatever happens: the store may be deleted under it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from otel_run._errors import OtelRunError
from otel_run.export._outbox import lock_path, outbox_dir, try_lock
from otel_run.store._store import Run, Store

VIA = "deliverer"
QUIET_S = 0.2
"""A deliverer sends once no run has been handed off for this long: while
short commands follow each other (a benchmark, a CI job of short commands) it
waits, and sends them together in the pause after them."""
HOLD_MAX_S = 5.0
"""... but it never holds a run back longer than this (a long stream of runs
is sent in batches)."""
LINGER_S = 1.0
"""Seconds a deliverer waits for the next run once its outbox is empty:
back-to-back runs share one deliverer, and so one interpreter and one import
of the exporter stack."""
BATCH_SPANS = 2048
"""Runs waiting together are sent in one request of up to this many spans."""
BACKSTOP_S = 30.0
"""Seconds past twice the send deadline after which the deliverer gives a send up."""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point; never returns (``os._exit``: exporter threads cannot hold it up)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = deliver(args, os.environ)
    except BaseException:  # the store vanished, the disk filled: nothing to tell, nobody to tell it to
        code = 1
    os._exit(code)


def deliver(args: Sequence[str], environ: Mapping[str, str]) -> int:
    """Deliver the outbox named by ``STORE KEY [--endpoint URL]``; returns the exit status."""
    if len(args) not in (2, 4) or (len(args) == 4 and args[2] != "--endpoint"):
        return 2
    root, key = args[0], args[1]
    endpoint = args[3] if len(args) == 4 else None
    _lower_priority()
    if not os.path.isdir(root):
        return 0
    lock = try_lock(lock_path(root, key))
    if lock is None:
        return 0  # another deliverer is at work on this outbox
    store = Store(root)
    box = outbox_dir(root, key)
    while True:
        _settle(box)
        claimed = _claim(box)
        if claimed:
            _send(store, claimed, environ, endpoint)
            continue
        if _linger(box):
            continue
        os.close(lock)
        if not os.listdir(box):
            return 0
        lock = try_lock(lock_path(root, key))  # an entry arrived after the last look
        if lock is None:
            return 0  # ... and the deliverer otel-run started for it has the lock


def _settle(box: str) -> None:
    """Wait until no entry has been added for :data:`QUIET_S` (at most
    :data:`HOLD_MAX_S`): runs still arriving are not competed with."""
    import time

    start = last = time.monotonic()
    seen = set(os.listdir(box))
    while seen:
        now = time.monotonic()
        if now - last >= QUIET_S or now - start >= HOLD_MAX_S:
            return
        time.sleep(0.05)
        names = set(os.listdir(box))
        if names - seen:
            last = time.monotonic()
        seen = names


def _linger(box: str) -> bool:
    """Wait up to :data:`LINGER_S` for another run (still holding the lock, so
    otel-run starts no new deliverer meanwhile); whether one arrived."""
    import time

    deadline = time.monotonic() + LINGER_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if os.listdir(box):
            return True
    return False


def _claim(box: str) -> list[str]:
    claimed = []
    for name in os.listdir(box):
        try:
            os.unlink(os.path.join(box, name))
        except FileNotFoundError:
            continue
        claimed.append(name)
    return claimed


def _send(store: Store, run_ids: list[str], environ: Mapping[str, str], endpoint: str | None) -> None:
    from otel_run.export._push import SendError, record_line, send_runs

    runs = {r.run_id: r for r in store.runs()}
    todo = []
    for run_id in run_ids:
        run = runs.get(run_id)
        if run is None:
            _record(record_line, store, {"run_id": run_id, "ok": False, "error": "not in the store's index"})
        elif not store.was_pushed(run):  # otel-trace push may have got there first
            todo.append(run)
    todo.sort(key=lambda r: r.start_ns)
    failed: tuple[str, str] | None = None  # (run id, endpoint) of a failed send
    for batch in _batches(todo):
        if failed is not None:
            error = f"not tried: sending run {failed[0][:8]} to this endpoint failed just before"
            for run in batch:
                fields = {"run_id": run.run_id, "trace_id": run.trace_id, "spans": run.spans, "endpoint": failed[1]}
                _record(record_line, store, {**fields, "ok": False, "error": error})
            continue
        watchdog = _watchdog(store, batch, environ, record_line)
        try:
            send_runs(store, batch, environ, endpoint=endpoint, via=VIA)
        except SendError as exc:
            failed = (batch[0].run_id, exc.where)
        except OtelRunError:
            pass  # in the record already (no spans, a bad setting)
        finally:
            watchdog.cancel()


def _batches(runs: list[Run]) -> Iterator[list[Run]]:
    """Consecutive runs, up to :data:`BATCH_SPANS` spans a request (a run is never split)."""
    batch: list[Run] = []
    spans = 0
    for run in runs:
        if batch and spans + (run.spans or 0) > BATCH_SPANS:
            yield batch
            batch, spans = [], 0
        batch.append(run)
        spans += run.spans or 0
    if batch:
        yield batch


def _watchdog(store: Store, batch: list[Run], environ: Mapping[str, str], record_line: Any) -> Any:
    import threading

    from otel_run.export._push import DEFAULT_TIMEOUT, export_timeout

    try:
        limit = 2 * export_timeout(environ) + BACKSTOP_S
    except OtelRunError:
        limit = 2 * DEFAULT_TIMEOUT + BACKSTOP_S

    def overdue() -> None:
        error = f"gave up: no result after {limit:.0f} s (the deliverer's own deadline)"
        for run in batch:
            _record(record_line, store, {"run_id": run.run_id, "trace_id": run.trace_id, "ok": False, "error": error})
        os._exit(1)

    timer = threading.Timer(limit, overdue)
    timer.daemon = True
    timer.start()
    return timer


def _record(record_line: Any, store: Store, fields: dict[str, Any]) -> None:
    try:
        record_line(store, {**fields, "via": VIA, "pid": os.getpid()})
    except OSError:
        pass


def _lower_priority() -> None:
    try:
        if os.sched_getscheduler(0) != os.SCHED_IDLE:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        try:
            os.nice(19)
        except OSError:
            pass
