"""What otel-run itself writes for a run: the root span, the parent's view of
the command's process span, and the index lines."""

from __future__ import annotations

import os
import sys
from time import time_ns

from otel_run import __version__, _wire
from otel_run._redact import redact_args, redact_text
from otel_run.bootstrap import _boot
from otel_run.store._layout import append_index

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from otel_run.run._supervise import Child

RUN_ID = "otel_run.run.id"
LABEL = "otel_run.label"
SERIES = "otel_run.series.id"
SERIES_INDEX = "otel_run.series.run"
WARMUP = "otel_run.series.warmup"
GIT_COMMIT = "vcs.ref.head.revision"  # semantic conventions: VCS attributes


class RunRecord:
    """Ids, times and outcome of one run, and how to write them."""

    def __init__(
        self,
        store: str,
        argv: list[str],
        *,
        trace_id: str,
        parent_id: str | None,
        root_id: str,
        child_id: str,
        service_name: str,
        label: str | None,
        start_ns: int | None = None,
        series: dict[str, Any] | None = None,
        extra_attributes: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.argv = argv
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.root_id = root_id
        self.child_id = child_id
        self.label = redact_text(label) if label else label
        """Redacted like any text: the span, the index and every reader see the same label."""
        self.service_name = service_name
        self.start_ns = start_ns if start_ns is not None else _boot.process_start_ns(time_ns())
        self.series = series
        self.extra_attributes = extra_attributes or {}
        """More attributes of the root span (the CI job's, see ``run._ci``)."""
        """``otel-run --runs``: the series id, this run's number and whether it is a warm-up."""
        self.pid = os.getpid()
        self.cwd = os.getcwd()
        self.host = os.uname().nodename
        self.git_commit: str | None = None
        self.writer = _wire.SpanWriter(store)
        self.resource_json = _wire.attributes_json(
            {
                "service.name": service_name,
                "process.pid": self.pid,
                "process.executable.name": "otel-run",
                "host.name": self.host,
                "telemetry.sdk.name": "otel-run",
                "telemetry.sdk.language": "python",
                "telemetry.sdk.version": __version__,
            }
        )

    @property
    def run_id(self) -> str:
        return self.root_id

    @property
    def name(self) -> str:
        return "otel-run " + _wire.command_name(self.argv)

    # spans --------------------------------------------------------------------
    def root_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            RUN_ID: self.run_id,
            "process.pid": self.pid,
            "process.command_args": redact_args(self.argv[: _wire.ARGS_MAX]),
            "process.working_directory": self.cwd,
        }
        attrs.update(self.extra_attributes)
        if self.label:
            attrs[LABEL] = self.label
        if self.series:
            attrs[SERIES] = self.series["series"]
            attrs[SERIES_INDEX] = self.series["repeat"]
            if self.series.get("warmup"):
                attrs[WARMUP] = True
        if self.git_commit:
            attrs[GIT_COMMIT] = self.git_commit
        return attrs

    def write_root_start(self) -> None:
        attrs = self.root_attributes()
        attrs[_wire.RECORD_KEY] = _wire.RECORD_START
        self._write(self.root_id, self.parent_id, self.name, self.start_ns, self.start_ns, attrs)

    def write_root_end(self, end_ns: int, exit_code: int, error: str | None) -> None:
        attrs = self.root_attributes()
        attrs["process.exit.code"] = exit_code
        status = (_wire.STATUS_ERROR, error) if error else (_wire.STATUS_UNSET, "")
        self._write(self.root_id, self.parent_id, self.name, self.start_ns, end_ns, attrs, status=status)

    def write_child_start(self, child: Child) -> None:
        """The command's process span as otel-run saw it spawned: its start
        record, so that if otel-run dies (SIGKILL) the command, and whatever
        it started, are still in the trace (an unfinished span)."""
        record = _wire.reaped_child_json(
            self.trace_id,
            self.child_id,
            self.root_id,
            self.argv,
            child.pid,
            child.spawn_ns,
            child.spawn_ns,
            None,
            None,
            None,
            record=_wire.RECORD_START,
        )
        self.writer.write(self.trace_id, '{"resourceSpans":[' + record + "]}")

    def write_child_reap(self, child: Child) -> None:
        """The command's process span as otel-run saw it (merged with the
        child's own record when the child is a traced Python)."""
        record = _wire.reaped_child_json(
            self.trace_id,
            self.child_id,
            self.root_id,
            self.argv,
            child.pid,
            child.spawn_ns,
            child.end_ns,
            child.exit_code,
            child.signal_name,
            child.rusage,
            expected=child.died_of_forwarded,
            events=[
                (
                    _wire.EVENT_SIGNAL_FORWARDED if passed_on else _wire.EVENT_SIGNAL_GROUP,
                    when,
                    {"otel_run.process.signal": _wire.signal_name(signo), "otel_run.signal.sender.pid": sender},
                )
                for when, signo, sender, passed_on in child.forwarded[: _wire.SIGNALS_KEPT]
            ],
        )
        self.writer.write(self.trace_id, '{"resourceSpans":[' + record + "]}")

    def write_spans(self, spans: list[str]) -> None:
        """Spans already encoded as OTLP JSON, under otel-run's resource."""
        self.writer.write(self.trace_id, _wire.request_json(self.resource_json, _wire.OTEL_RUN_SCOPE, spans))

    def writer_path(self, trace_id: str) -> str:
        from otel_run.store._layout import trace_path

        return trace_path(self.store, trace_id)

    def _write(
        self,
        span_id: str,
        parent_id: str | None,
        name: str,
        start: int,
        end: int,
        attrs: dict[str, Any],
        status: tuple[int, str] = (_wire.STATUS_UNSET, ""),
    ) -> None:
        span = _wire.span_json(self.trace_id, span_id, parent_id, name, start, end, attrs, status=status)
        self.writer.write(self.trace_id, _wire.request_json(self.resource_json, _wire.OTEL_RUN_SCOPE, [span]))

    # index ----------------------------------------------------------------------
    def append_index(self, record: dict[str, Any]) -> None:
        append_index(self.store, record)

    def index_start(self) -> dict[str, Any]:
        return {
            "event": "start",
            "run_id": self.run_id,
            "trace_id": self.trace_id,
            "root_span_id": self.root_id,
            "command": redact_args(self.argv),
            "cwd": self.cwd,
            "host": self.host,
            "pid": self.pid,
            "start_ns": self.start_ns,
            "label": self.label,
            "python": sys.executable,
            **(self.series or {}),
        }

    def index_end(self, end_ns: int, exit_code: int, spans: int | None, processes: int | None) -> dict[str, Any]:
        return {
            "event": "end",
            "run_id": self.run_id,
            "end_ns": end_ns,
            "exit_code": exit_code,
            "git_commit": self.git_commit,
            "spans": spans,
            "processes": processes,
        }
