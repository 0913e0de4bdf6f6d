"""A run's stored profiles as labelled stacks, for the flame graphs and tables.

:func:`stacks` reads every process profile of a trace
(:mod:`otel_run.store._profiles`) and keeps the samples of the chosen spans and
everything below them, across processes: ``--span`` selects a span of any
process and its descendants (a child process's samples are below the span that
spawned it). Each stack is returned root first, with the process's service name
as its first frame, and a frame reads ``function (dir/file.py)``.
"""

from __future__ import annotations

from collections.abc import Iterable

from otel_run._errors import OtelRunError
from otel_run.store._model import Trace
from otel_run.store._profiles import Frame, ProcessProfile, profile_paths, read_profile

UNITS = {"cpu": "samples", "memory": "bytes"}


class ProfileError(OtelRunError):
    """The profile asked for does not exist; the message says what there is."""


def load_profiles(root: str, trace: Trace) -> tuple[list[ProcessProfile], list[str]]:
    profiles = [read_profile(p) for p in profile_paths(root, trace.trace_id)]
    return profiles, [w for p in profiles for w in p.warnings]


def select_spans(trace: Trace, ref: str | None) -> set[str] | None:
    """The span ids under ``ref`` (a span id, or every span of that name), or
    None for the whole run."""
    if not ref:
        return None
    chosen = {s.span_id for s in trace.spans if s.span_id == ref.lower() or s.name == ref}
    if not chosen:
        raise ProfileError(f"--span {ref!r}: no span of that name or id in trace {trace.trace_id}")
    children: dict[str, list[str]] = {}
    for span in trace.spans:
        if span.parent_id:
            children.setdefault(span.parent_id, []).append(span.span_id)
    todo = list(chosen)
    while todo:
        for kid in children.get(todo.pop(), ()):
            if kid not in chosen:
                chosen.add(kid)
                todo.append(kid)
    return chosen


def stacks(
    profiles: Iterable[ProcessProfile],
    spans: set[str] | None = None,
    pid: int | None = None,
    kind: str = "cpu",
    idle: bool = False,
) -> list[tuple[tuple[str, ...], int]]:
    """Labelled stacks (root first) and their values: samples for ``cpu``, bytes for ``memory``."""
    out: list[tuple[tuple[str, ...], int]] = []
    for profile in profiles:
        if pid is not None and profile.header.get("pid") != pid:
            continue
        labels = [label(f) for f in profile.frames]
        service = profile.service
        for sample in profile.samples:
            if sample.kind != kind or (sample.idle and not idle):
                continue
            if spans is not None and sample.span_id not in spans:
                continue
            value = sample.number if kind == "cpu" else sample.value
            out.append(((service, *(labels[i] for i in sample.stack)), value))
    return out


def label(frame: Frame) -> str:
    parts = frame.file.replace("\\", "/").split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else frame.file
    return f"{frame.name} ({short})" if short else frame.name


def hottest(profiles: Iterable[ProcessProfile], spans: set[str], n: int = 3) -> list[tuple[str, int]]:
    """The ``n`` functions with the most self samples under ``spans`` (CPU, idle excluded)."""
    totals: dict[str, int] = {}
    for stack, value in stacks(profiles, spans):
        if len(stack) > 1:
            totals[stack[-1]] = totals.get(stack[-1], 0) + value
    return sorted(totals.items(), key=lambda kv: -kv[1])[:n]
