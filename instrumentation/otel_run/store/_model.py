"""What a stored trace is made of, once read and merged."""

from __future__ import annotations

from otel_run.store._validate import link

TYPE_CHECKING = False  # keep ``typing`` out of otel-run's start-up
if TYPE_CHECKING:
    from typing import Any

# attribute and scope names otel-run itself writes
SCOPE = "otel-run"
RUN_ID = "otel_run.run.id"
RECORD = "otel_run.record"
UNFINISHED = "otel_run.unfinished"
ORPHAN = "otel_run.orphan"

KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


class Resource:
    """A resource (one process, as a rule): its attributes."""

    __slots__ = ("attributes", "key")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.key = repr(sorted(attributes.items(), key=lambda kv: kv[0]))

    @property
    def service(self) -> str:
        return str(self.attributes.get("service.name", "unknown_service"))


class Event:
    __slots__ = ("attributes", "name", "time_ns")

    def __init__(self, name: str, time_ns: int, attributes: dict[str, Any]) -> None:
        self.name = name
        self.time_ns = time_ns
        self.attributes = attributes


class Link:
    __slots__ = ("attributes", "span_id", "trace_id")

    def __init__(self, trace_id: str, span_id: str, attributes: dict[str, Any]) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.attributes = attributes


class Span:
    """One span (fragments already merged)."""

    __slots__ = (
        "attributes",
        "children",
        "end_ns",
        "events",
        "kind",
        "links",
        "name",
        "parent",
        "parent_id",
        "resource",
        "scope_name",
        "scope_version",
        "span_id",
        "start_ns",
        "status_code",
        "status_message",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        parent_id: str | None,
        name: str,
        *,
        kind: int = 1,
        start_ns: int = 0,
        end_ns: int = 0,
        attributes: dict[str, Any] | None = None,
        events: list[Event] | None = None,
        links: list[Link] | None = None,
        status_code: int = 0,
        status_message: str = "",
        resource: Resource | None = None,
        scope_name: str = "",
        scope_version: str | None = None,
        trace_state: str = "",
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.name = name
        self.kind = kind
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.attributes = attributes if attributes is not None else {}
        self.events = events if events is not None else []
        self.links = links if links is not None else []
        self.status_code = status_code
        self.status_message = status_message
        self.resource = resource if resource is not None else Resource({})
        self.scope_name = scope_name
        self.scope_version = scope_version
        self.trace_state = trace_state
        self.children: list[Span] = []
        self.parent: Span | None = None

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def service(self) -> str:
        return self.resource.service

    @property
    def is_process(self) -> bool:
        """A process span (written by otel-run for each process of the tree)."""
        return self.scope_name == SCOPE and "process.parent_pid" in self.attributes

    @property
    def seen_from_outside(self) -> bool:
        """A process span written only by the process's parent (not a Python
        process, or one killed before it wrote its own): pid, command, exit
        status, the tree's resource usage — and whatever it started itself is
        not in the trace unless it was Python."""
        return self.is_process and not any(e.name == "python.started" for e in self.events)

    @property
    def is_run(self) -> bool:
        return RUN_ID in self.attributes

    @property
    def unfinished(self) -> bool:
        return bool(self.attributes.get(UNFINISHED))

    def __repr__(self) -> str:
        return f"Span({self.name!r}, {self.span_id}, parent={self.parent_id})"


class Trace:
    """All spans of one trace id, linked into a tree.

    The tree is built without recursion and is always a tree: a span that is
    its own parent, or whose parent chain loops, becomes a root where the loop
    started earliest; a span that ends before it starts lasts 0 (each said in
    :attr:`warnings`, naming ``source``). :attr:`depth` is how deep the tree goes.
    """

    __slots__ = ("by_id", "depth", "roots", "spans", "trace_id", "warnings")

    def __init__(
        self, trace_id: str, spans: list[Span], warnings: list[str] | None = None, *, source: str = ""
    ) -> None:
        self.trace_id = trace_id
        self.spans = spans
        self.warnings = warnings if warnings is not None else []
        where = source or f"trace {trace_id}"
        _ends_after_start(spans, where, self.warnings)
        parents, depths = link(
            [s.span_id for s in spans], [s.parent_id for s in spans], [s.start_ns for s in spans], where, self.warnings
        )
        self.by_id: dict[str, Span] = {}
        for span in spans:
            self.by_id.setdefault(span.span_id, span)
            span.children = []
            span.parent = None
        self.roots: list[Span] = []
        for span, p in zip(spans, parents, strict=True):
            if p >= 0:
                parent = spans[p]
                span.parent = parent
                parent.children.append(span)
            else:
                self.roots.append(span)
        self.depth = max(depths, default=0)
        for span in spans:
            if len(span.children) > 1:
                span.children.sort(key=lambda s: (s.start_ns, s.end_ns))
        self.roots.sort(key=lambda s: (s.start_ns, -s.end_ns))

    @property
    def start_ns(self) -> int:
        return min((s.start_ns for s in self.spans), default=0)

    @property
    def end_ns(self) -> int:
        return max((s.end_ns for s in self.spans), default=0)

    @property
    def processes(self) -> list[Span]:
        return [s for s in self.spans if s.is_process]


def _ends_after_start(spans: list[Span], where: str, warnings: list[str]) -> None:
    """A span that ends before it starts lasts 0 (said once; an unfinished
    span with nothing under it has no end to say)."""
    bad = [s for s in spans if s.end_ns < s.start_ns]
    for span in bad:
        span.end_ns = span.start_ns
    said = [s for s in bad if not s.unfinished]
    if said:
        more = f" and {len(said) - 1} more" if len(said) > 1 else ""
        warnings.append(f"{where}: span {said[0].span_id}{more} ends before it starts: taken as lasting 0")
