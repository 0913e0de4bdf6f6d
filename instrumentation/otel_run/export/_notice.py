"""Telling the user about runs the background deliverer could not send.

otel-run never waits for a collector (:mod:`._outbox`): a run's delivery is
tried after otel-run has exited, and its outcome goes to the delivery record,
``<store>/export.jsonl``. The next otel-run that exports reads the lines added
since the user was last told (from the byte offset kept in
:data:`SEEN`) and says, in one line on stderr even with ``-q``, how many runs
were not delivered, where to and why. A run pushed since (``otel-trace push
--unpushed``) is not counted.
"""

from __future__ import annotations

import os

from otel_run.store import _layout
from otel_run.store._jsonl import loads

SEEN = "export.seen"
"""``<store>/export.seen``: the size of the delivery record the user was last told about."""
READ_MAX = 4 << 20
"""At most this much of the delivery record is read at once (the rest is left for the next run)."""


def undelivered(root: str) -> str | None:
    """The line about runs not delivered since the last notice, or None; the
    notice is then taken (the next call starts after it). Never raises."""
    record = os.path.join(root, _layout.EXPORT_RECORD)
    seen_path = os.path.join(root, SEEN)
    try:
        with open(seen_path, "rb") as seen_file:
            seen = int(seen_file.read() or b"0")
    except (OSError, ValueError):
        seen = 0
    try:
        with open(record, "rb") as record_file:
            size = os.fstat(record_file.fileno()).st_size
            if size < seen:  # the record was replaced: start again
                seen = 0
            record_file.seek(seen)
            data = record_file.read(READ_MAX)
    except OSError:
        return None
    end = data.rfind(b"\n") + 1  # whole lines only: a deliverer may be writing the next
    if not end:
        return None
    failed: dict[str, tuple[str, str]] = {}  # run id -> (endpoint, error) of its latest attempt
    for line in data[:end].splitlines():
        try:
            fields = loads(line)
            run_id = fields["run_id"]
        except (ValueError, KeyError, TypeError):
            continue
        if fields.get("ok"):
            failed.pop(run_id, None)
        else:
            failed[run_id] = (str(fields.get("endpoint") or "the collector"), str(fields.get("error") or "failed"))
    _remember(seen_path, seen + end)
    pushed = os.path.join(root, _layout.PUSHED)
    missing = {run_id: why for run_id, why in failed.items() if not os.path.exists(os.path.join(pushed, run_id))}
    if not missing:
        return None
    endpoint, error = list(missing.values())[-1]
    error = error.removeprefix(endpoint + ": ")  # the exporter's message may name the endpoint again
    count = len(missing)
    runs = f"{count} earlier run{'s' if count != 1 else ''} {'were' if count != 1 else 'was'}"
    return f"{runs} not delivered to {endpoint} ({error}); kept locally: otel-trace push --unpushed"


def _remember(path: str, offset: int) -> None:
    try:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as out:
            out.write(str(offset))
        os.replace(tmp, path)
    except OSError:
        pass
