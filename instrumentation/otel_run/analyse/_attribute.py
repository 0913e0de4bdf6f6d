"""Profiler output attributed to spans: raw py-spy samples → the store's profiles.

The bootstrap of each profiled process started a sampler
(:mod:`otel_run.bootstrap._sampler`) that wrote, under
``profiles/<trace>/raw/``, py-spy's ``chrometrace`` (per thread, a begin and an
end event per frame whenever the sampled stack changes, in µs from py-spy's
start) and a ``.meta`` line (pid, process span, when py-spy was started).
:func:`convert` turns each into one :mod:`otel_run.store._profiles` file:

1. per thread, the stack held over each stretch of time (the events replayed);
2. each stretch is cut where a span of that process, on that thread
   (``thread.id``; the process span stands for every thread), starts or ends,
   and each piece is charged to the innermost span open over it;
3. a piece's samples are its length over the sampling period.

The time base is the moment the bootstrap spawned py-spy, which starts its
clock within a few ms of it (``sh`` and py-spy's exec in between): that is
the error of a span boundary, under one sample at 100 Hz.

Idle samples: py-spy runs with ``--idle`` (see the sampler) and samples whose
leaf is one of py-spy's own idle heuristics (``threading`` ``wait``,
``selectors`` ``select``, ``poll``), or ``subprocess``'s blocking ``waitpid``
on a child (the child's own samples say where that time went), are marked ``idle``: shown with
``otel-trace profile --idle``, not counted as CPU. py-spy knows which threads
the OS saw running, but none of its output formats carries it; so, beyond its
heuristic, a sample is idle when its leaf *line* (py-spy records it) is a
blocking call — a socket's ``recv``, a pipe's ``readline``, a queue's
``get(block=True)``, ``sleep``, a lock's ``acquire`` (:data:`_BLOCKING_LINE`,
read from the source on this machine). A thread pool's idle workers or a
reader thread on a pipe would otherwise top every profile. The rule errs
towards CPU: a line it does not know stays CPU.
"""

from __future__ import annotations

import functools
import itertools
import json
import linecache
import os
import re
import time
from collections import defaultdict
from typing import Any

from otel_run.bootstrap._sampler import MEMRAY_TRIGGER, wait_unlocked
from otel_run.store._model import Span, Trace
from otel_run.store._profiles import Frame, Sample, profile_dir, profile_paths, raw_dir, read_profile, write_profile

MEMORY_WINDOW_NS = 10_000_000
"""The window assumed before memray's first snapshot."""
WAIT_S = 10.0
"""How long otel-run waits after the command for its samplers to write their output."""
CPU_SAMPLES = "otel_run.profile.cpu.samples"
CPU_SELF_S = "otel_run.profile.cpu.self_s"
MEMORY_ALLOCATED = "otel_run.profile.memory.allocated_bytes"
MEMORY_PEAK = "otel_run.profile.memory.peak_bytes"
PROFILE_EVENT = "otel_run.profile"
PROFILE_FILE = "otel_run.profile.file"


def convert(root: str, trace: Trace, wait_s: float = WAIT_S) -> list[str]:
    """Write the profile of every process of ``trace`` whose raw output is
    complete; returns one line per problem (a sampler that could not attach,
    output still being written, damaged output)."""
    directory = raw_dir(root, trace.trace_id)
    try:
        metas = sorted(n for n in os.listdir(directory) if n.endswith(".meta"))
    except FileNotFoundError:
        return []
    messages: list[str] = []
    deadline = time.monotonic() + wait_s
    for name in metas:
        span_id = name[: -len(".meta")]
        out = os.path.join(profile_dir(root, trace.trace_id), span_id + ".jsonl")
        if os.path.exists(out):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                meta = json.loads(f.readline())
            messages.extend(_convert_one(root, trace, meta, directory, out, deadline))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            messages.append(f"profile of process span {span_id} not read: {exc}")
    return messages


def _convert_one(root: str, trace: Trace, meta: dict[str, Any], directory: str, out: str, deadline: float) -> list[str]:
    pid = int(meta["pid"])
    base = os.path.join(directory, str(meta["span_id"]))
    spans = _process_spans(trace, str(meta["span_id"]), pid)
    frames: list[Frame] = []
    frame_ids: dict[tuple[str, str], int] = {}
    samples: list[Sample] = []
    kinds: dict[str, Any] = {}
    messages: list[str] = []
    if meta.get("cpu"):
        messages.extend(_cpu(meta, base, spans, frames, frame_ids, samples, kinds, deadline))
    memory = meta.get("memory")
    if memory:
        if "error" in memory:
            messages.append(f"memory profiling of pid {pid} was not possible: {memory['error']}")
        else:
            messages.extend(_memory(meta, base, spans, frames, frame_ids, samples, kinds))
    if not kinds:
        return messages
    process = next((s for s in spans if s.span_id == meta["span_id"]), None)
    header = {
        "trace_id": trace.trace_id,
        "span_id": meta["span_id"],
        "pid": pid,
        "service": process.service if process is not None else "",
        "kinds": kinds,
    }
    os.makedirs(os.path.dirname(out), mode=0o700, exist_ok=True)
    write_profile(out, header, frames, samples)
    return messages


def summary_records(root: str, trace: Trace) -> list[str]:
    """OTLP JSON records that put each profiled span's summary on it (one
    ``otel_run.record = profile`` fragment per span, folded by the store's
    merge): ``otel_run.profile.cpu.samples`` and ``.cpu.self_s`` (the span's
    own CPU samples, idle ones left out), ``.memory.allocated_bytes`` (bytes
    allocated on its thread while it was the innermost span) and
    ``.memory.peak_bytes`` (the process's heap high-water mark while it was
    open), and an ``otel_run.profile`` event naming the profile file."""
    from otel_run._wire import RECORD_KEY, RECORD_PROFILE, attributes_json, request_json, scope_json, span_json

    spans = {s.span_id: s for s in trace.spans}
    summary: dict[str, dict[str, Any]] = defaultdict(dict)
    files: dict[str, set[str]] = defaultdict(set)
    for path in profile_paths(root, trace.trace_id):
        profile = read_profile(path)
        relative = os.path.relpath(path, root)
        for sample in profile.samples:
            if sample.idle or sample.span_id not in spans:
                continue
            attrs = summary[sample.span_id]
            files[sample.span_id].add(relative)
            if sample.kind == "cpu":
                attrs[CPU_SAMPLES] = attrs.get(CPU_SAMPLES, 0) + sample.number
                attrs[CPU_SELF_S] = attrs.get(CPU_SELF_S, 0) + sample.value
            elif sample.kind == "memory":
                attrs[MEMORY_ALLOCATED] = attrs.get(MEMORY_ALLOCATED, 0) + sample.value
        memory = (profile.header.get("kinds") or {}).get("memory") or {}
        for span_id, peak in (memory.get("peak_heap_bytes") or {}).items():
            if span_id in spans and isinstance(peak, int):
                summary[span_id][MEMORY_PEAK] = peak
                files[span_id].add(relative)
    by_resource: dict[str, list[str]] = defaultdict(list)
    for span_id, attrs in summary.items():
        span = spans[span_id]
        if CPU_SELF_S in attrs:
            attrs[CPU_SELF_S] = round(attrs[CPU_SELF_S] / 1e9, 6)
        attrs[RECORD_KEY] = RECORD_PROFILE
        event = (PROFILE_EVENT, span.start_ns, {PROFILE_FILE: sorted(files[span_id])})
        by_resource[attributes_json(span.resource.attributes)].append(
            span_json(
                trace.trace_id, span_id, span.parent_id, span.name, span.start_ns, span.end_ns, attrs, events=[event]
            )
        )
    scope = scope_json("otel-run.profile", None)
    return [request_json(resource, scope, group) for resource, group in by_resource.items()]


def _cpu(
    meta: dict[str, Any],
    base: str,
    spans: list[Span],
    frames: list[Frame],
    frame_ids: dict[tuple[str, str], int],
    samples: list[Sample],
    kinds: dict[str, Any],
    deadline: float,
) -> list[str]:
    cpu = meta["cpu"]
    pid = int(meta["pid"])
    if not wait_unlocked(base + ".cpu.lock", deadline):
        return [f"cpu profile of pid {pid} is still being written by py-spy; otel-trace profile reads it later"]
    try:
        with open(base + ".cpu.json", "rb") as f:
            events = json.loads(f.read())
    except FileNotFoundError:
        return [f"cpu profiling of pid {pid} was not possible: {_pyspy_error(base + '.cpu.log')}"]
    except ValueError as exc:
        return [f"cpu profile of pid {pid} is damaged ({exc}); nothing read from it"]
    period_ns = 1_000_000_000 // int(cpu.get("rate_hz") or 100)
    origin = int(cpu["spawned_ns"])
    stretches = _stretches(events, pid, origin, frames, frame_ids)
    main = int(meta.get("main_thread") or 0)
    charged: dict[tuple[str, int, tuple[int, ...], bool], int] = defaultdict(int)
    for tid, pieces in stretches.items():
        on_thread = [s for s in spans if _thread_of(s, main) in (tid, None)]
        for start, end, stack, line in pieces:
            leaf = frames[stack[-1]] if stack else None
            idle = _is_idle(leaf) or (leaf is not None and _blocks_at(leaf.file, line))
            for a, b, span_id in _cut(start, end, on_thread):
                charged[(span_id, tid, stack, idle)] += b - a
    if not charged:
        return [f"cpu profiling of pid {pid} took no sample: {_pyspy_error(base + '.cpu.log')}"]
    for (span_id, tid, stack, idle), value in charged.items():
        count = round(value / period_ns)
        if count > 0:
            samples.append(Sample("cpu", span_id, tid, stack, count, value, idle))
    kinds["cpu"] = {"source": "py-spy", "rate_hz": 1_000_000_000 // period_ns, "period_ns": period_ns}
    return []


def _memory(
    meta: dict[str, Any],
    base: str,
    spans: list[Span],
    frames: list[Frame],
    frame_ids: dict[tuple[str, str], int],
    samples: list[Sample],
    kinds: dict[str, Any],
) -> list[str]:
    """memray's allocations, each charged to the innermost span of its thread
    open over the whole window (between two memory snapshots, 10 ms apart) in
    which it happened."""
    pid = int(meta["pid"])
    try:
        from memray import FileReader

        reader = FileReader(base + ".memray")
        taken = list(reader.get_memory_snapshots())
        snapshots = [s.time * 1_000_000 for s in taken]
        records = list(reader.get_temporal_allocation_records(merge_threads=False))
        main_tid = reader.metadata.main_thread_id
    except Exception as exc:
        return [f"memory profile of pid {pid} not read: {exc}"]
    if not snapshots:
        return [f"memory profile of pid {pid} has no snapshot: nothing to attribute"]
    main = int(meta.get("main_thread") or 0)
    trigger = ("", "")
    try:
        with open(base + ".memray.trigger", encoding="utf-8") as f:
            caught = json.loads(f.read())
        trigger = (str(caught.get("name") or ""), str(caught.get("file") or ""))
    except (OSError, ValueError, AttributeError):
        pass
    by_name: dict[str, int] = {}
    for span in spans:
        name, tid = span.attributes.get("thread.name"), span.attributes.get("thread.id")
        if isinstance(name, str) and isinstance(tid, int):
            by_name.setdefault(name, tid)
    charged: dict[tuple[str, int, tuple[int, ...]], list[int]] = {}
    for record in records:
        tid = main if record.tid == main_tid else by_name.get(str(record.thread_name).split(" (")[0], -1)
        on_thread = [s for s in spans if _thread_of(s, main) in (tid, None)]
        stack = []
        for function, filename, _line in reversed(record.stack_trace()):
            key = (str(function), str(filename))
            if key[0] == MEMRAY_TRIGGER:  # the frame that started memray stands for the call it caught
                if not trigger[0]:
                    continue
                key = trigger
            index = frame_ids.get(key)
            if index is None:
                index = frame_ids[key] = len(frames)
                frames.append(Frame(key[0], key[1], None))
            stack.append(index)
        for interval in record.intervals:
            k = interval.allocated_before_snapshot
            end = snapshots[min(k, len(snapshots) - 1)]
            start = snapshots[k - 1] if 0 < k <= len(snapshots) else end - MEMORY_WINDOW_NS
            owner = None
            for span in on_thread:  # sorted by start: the last one covering the window is the innermost
                if span.start_ns <= start and end <= span.end_ns:
                    owner = span
            if owner is None:
                continue
            entry = charged.setdefault((owner.span_id, tid, tuple(stack)), [0, 0])
            entry[0] += interval.n_allocations
            entry[1] += interval.n_bytes
    for (span_id, tid, frames_of), (count, value) in charged.items():
        samples.append(Sample("memory", span_id, tid, frames_of, count, value, False))
    peaks: dict[str, int] = {}
    for span in spans:  # the heap's high-water mark while the span was open (the process's, all threads)
        during = [s.heap for s, t in zip(taken, snapshots, strict=True) if span.start_ns <= t <= span.end_ns]
        if during:
            peaks[span.span_id] = max(during)
    kinds["memory"] = {
        "source": "memray",
        "unit": "bytes",
        "snapshot_ms": meta["memory"].get("interval_ms"),
        "peak_heap_bytes": peaks,
    }
    return []


def _stretches(
    events: Any, pid: int, origin: int, frames: list[Frame], frame_ids: dict[tuple[str, str], int]
) -> dict[int, list[tuple[int, int, tuple[int, ...], int]]]:
    """Per thread: (start ns, end ns, stack root first, the leaf's line) of each
    stretch of one stack (py-spy starts a new stretch when a frame's line changes)."""
    if not isinstance(events, list):
        raise ValueError("not a chrometrace event list")
    stacks: dict[int, list[int]] = {}
    lines: dict[int, list[int]] = {}
    since: dict[int, int] = {}
    out: dict[int, list[tuple[int, int, tuple[int, ...], int]]] = defaultdict(list)
    for event in events:
        if event.get("pid") != pid:
            continue
        tid = int(event["tid"])
        now = origin + int(event["ts"]) * 1000
        stack = stacks.setdefault(tid, [])
        at = lines.setdefault(tid, [])
        if stack and since.get(tid, now) < now:
            out[tid].append((since[tid], now, tuple(stack), at[-1]))
        since[tid] = now
        args = event.get("args") or {}
        key = (str(event.get("name", "")), str(args.get("filename", "")))
        if event.get("ph") == "B":
            index = frame_ids.get(key)
            if index is None:
                index = frame_ids[key] = len(frames)
                frames.append(Frame(key[0], key[1], args.get("line")))
            stack.append(index)
            line = args.get("line")
            at.append(line if isinstance(line, int) else 0)
        elif event.get("ph") == "E" and stack:
            stack.pop()
            at.pop()
    return out


def _process_spans(trace: Trace, process_span_id: str, pid: int) -> list[Span]:
    """The spans this process wrote: its process span and every other span of its pid."""
    spans = []
    for span in trace.spans:
        if span.span_id == process_span_id or (
            not span.is_process and span.resource.attributes.get("process.pid") == pid
        ):
            spans.append(span)
    spans.sort(key=lambda s: (s.start_ns, -s.end_ns))
    return spans


def _thread_of(span: Span, main: int) -> int | None:
    """The thread a span ran on; None for the process span (it stands for every thread)."""
    if span.is_process:
        return None
    tid = span.attributes.get("thread.id")
    return int(tid) if isinstance(tid, int) else main


def _cut(start: int, end: int, spans: list[Span]) -> list[tuple[int, int, str]]:
    """[start, end) cut at the spans' boundaries, each piece with its innermost span."""
    inside = [s for s in spans if s.start_ns < end and s.end_ns > start]
    if not inside:
        return []
    points = sorted(
        {start, end, *(s.start_ns for s in inside if start < s.start_ns < end)}
        | {s.end_ns for s in inside if start < s.end_ns < end}
    )
    pieces = []
    for a, b in itertools.pairwise(points):
        middle = (a + b) // 2
        best = None
        for span in inside:  # latest-starting span open over the piece (spans sorted by start)
            if span.start_ns <= middle < span.end_ns:
                best = span
        if best is not None:
            pieces.append((a, b, best.span_id))
    return pieces


def _is_idle(frame: Frame | None) -> bool:
    """py-spy's idle heuristic (python_spy.rs, ``_heuristic_is_thread_idle``)."""
    if frame is None:
        return False
    name, file = frame.name.rsplit(".", 1)[-1], frame.file
    return (
        (name == "wait" and file.endswith("threading.py"))
        or (name == "select" and file.endswith("selectors.py"))
        or (name == "poll" and any(k in file for k in ("asyncore.py", "zmq", "gevent", "tornado")))
        or (name == "_try_wait" and file.endswith("subprocess.py"))  # ours: a blocking waitpid on a child
    )


_BLOCKING_LINE = re.compile(
    r"\.(recv|recv_into|recvfrom|recvmsg|accept|read|read1|readline|readlines|readinto|wait|select|poll|"
    r"acquire|communicate|getresponse|waitpid|wait4)\s*\("
    r"|\b(sleep|select|poll|input|urlopen)\s*\("
    r"|\.join\(\s*(\)|timeout)"  # a thread's join, not str.join
    r"|\.get\(\s*(block\s*=\s*True|True|timeout\s*=)"  # a queue's blocking get
    r"|iter\([^)]*\.readline"
    r"|(pickle\.load|Unpickler\([^)]*\)\.load)\s*\("
)
"""A source line whose call blocks: its frame is the leaf of a thread waiting in C
(a socket, a pipe, a lock, a queue), which py-spy's own heuristic does not see."""


@functools.lru_cache(maxsize=4096)
def _blocks_at(file: str, line: int) -> bool:
    """Whether the source at ``file:line`` (read from this machine, if it is there)
    is a blocking call (see :data:`_BLOCKING_LINE`)."""
    if line <= 0 or not file.endswith(".py"):
        return False
    text = linecache.getline(file, line)
    return bool(text) and _BLOCKING_LINE.search(text.split("#", 1)[0]) is not None


def _pyspy_error(log: str) -> str:
    """py-spy's own reason, in one line: its ``Error:`` and the last cause."""
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "py-spy did not start (no log)"
    error = next((line[len("Error:") :].strip() for line in lines if line.startswith("Error:")), "")
    causes = [line.split(":", 1)[1].strip() for line in lines if line[:1].isdigit() and ":" in line]
    reason = "; ".join(x for x in (error, causes[-1] if causes else "") if x) or (lines or ["py-spy wrote nothing"])[-1]
    if "ermission" in reason:
        reason += (
            " (py-spy needs ptrace rights over the process: CAP_SYS_PTRACE, e.g. a container's --cap-add SYS_PTRACE)"
        )
    return reason[:400]
