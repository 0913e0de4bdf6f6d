"""Where the store lives and how it is laid out (no imports: otel-run's hot path)."""

from __future__ import annotations

import os

from otel_run import _env, _wire
from otel_run._wire import json_str

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

INDEX = "index.jsonl"
TRACES = "traces"
PUSHED = "pushed"
OUTBOX = "outbox"
"""``outbox/<key>/<run_id>``: runs otel-run handed to the background deliverer
(one directory per set of export settings); ``outbox/<key>.lock`` is held by
the deliverer working on that directory."""
EXPORT_RECORD = "export.jsonl"
"""One JSON line per attempt to send a run to a collector."""


def store_root(environ: Mapping[str, str], override: str | None = None) -> str:
    """The store directory: ``--store``, else ``$OTEL_RUN_STORE``, else the
    user's data directory (``$XDG_DATA_HOME/otel-run``, ``~/.local/share/otel-run``)."""
    root = override or environ.get(_env.OTEL_RUN_STORE)
    if not root:
        data = environ.get(_env.XDG_DATA_HOME) or os.path.join(
            environ.get(_env.HOME) or os.path.expanduser("~"), ".local", "share"
        )
        root = os.path.join(data, "otel-run")
    return os.path.abspath(root)


def trace_path(root: str, trace_id: str) -> str:
    return os.path.join(root, TRACES, trace_id + ".jsonl")


def index_path(root: str) -> str:
    return os.path.join(root, INDEX)


def create_store(root: str) -> None:
    """Make the store's directories (0700 whatever the umask: the store is
    private to its owner; existing directories are left as they are)."""
    _wire.make_private_dirs(os.path.join(root, TRACES))


open_private = _wire.open_private
"""Open a file of the store, creating it 0600 (its directories 0700) whatever the umask."""
make_private_dirs = _wire.make_private_dirs
"""``mkdir -p``, each directory made 0700 whatever the umask."""


def append_line(path: str, data: bytes, dirs: bool = True) -> None:
    """Append one JSON line (``data``, no newline) to a file of the store: one
    ``write(2)`` with ``O_APPEND``, on a line of its own, whole, or OSError
    (see :class:`otel_run._wire.SpanWriter`)."""
    fd = _wire.open_private(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, dirs)
    try:
        _wire.append_record(fd, data, path)
    finally:
        os.close(fd)


def append_index(root: str, record: Mapping[str, Any]) -> None:
    """Append one line to the index; one ``write(2)`` with ``O_APPEND``, so
    concurrent otel-run invocations never interleave."""
    line = "{" + ",".join(json_str(k) + ":" + _json_value(v) for k, v in record.items()) + "}"
    append_line(index_path(root), line.encode("utf-8", "backslashreplace"))


def _json_value(value: Any) -> str:
    """JSON for the flat values an index line holds (``json`` would import ``re``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json_value(v) for v in value) + "]"
    return json_str(str(value))
