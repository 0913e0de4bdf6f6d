"""Profiles in the store: one file per profiled process, beside the trace.

Layout: ``profiles/<trace_id>/<process span id>.jsonl`` (what ``otel-trace
profile`` reads) and ``profiles/<trace_id>/raw/`` (what the profilers wrote:
py-spy's chrometrace, memray's capture, a ``.meta`` line per process).

Format ``otel-run.profile`` version 1, JSON lines (UTF-8), so a file cut short
is read up to the damage:

* line 1, the header: ``{"format": "otel-run.profile", "version": 1,
  "trace_id", "span_id" (the process span), "pid", "service",
  "kinds": {"cpu": {"source": "py-spy", "rate_hz", "period_ns"}}}``;
* ``{"frame": N, "name", "file", "line"}``: frame N (0, 1, …), defined before use;
* ``{"kind": "cpu", "span": "<16 hex>", "thread": ident, "stack": [N, …]
  (root first), "count": samples, "value": nanoseconds, "idle": bool}``: the
  samples of one stack, attributed to the innermost span open on that thread.

Why not pprof or OTLP profiles: pprof carries no span per sample without a
label per sample and needs protobuf at read time; OTLP profiles are still a
development signal (``profiles/v1development``) that neither the Collector nor
Pyroscope takes by default. ``otel-trace profile --format collapsed`` and
``speedscope`` give the usual tools what they read.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

from otel_run._wire import open_private

PROFILES = "profiles"
RAW = "raw"
FORMAT = "otel-run.profile"
VERSION = 1


class Frame(NamedTuple):
    name: str
    file: str
    line: int | None


class Sample(NamedTuple):
    kind: str
    span_id: str
    thread: int
    stack: tuple[int, ...]
    number: int
    value: int
    idle: bool


class ProcessProfile:
    """One process's profile as read back; ``warnings`` say what was damaged."""

    __slots__ = ("frames", "header", "path", "samples", "warnings")

    def __init__(self, path: str) -> None:
        self.path = path
        self.header: dict[str, Any] = {}
        self.frames: list[Frame] = []
        self.samples: list[Sample] = []
        self.warnings: list[str] = []

    @property
    def service(self) -> str:
        return str(self.header.get("service") or "process")


def profile_dir(root: str, trace_id: str) -> str:
    return os.path.join(root, PROFILES, trace_id)


def raw_dir(root: str, trace_id: str) -> str:
    return os.path.join(root, PROFILES, trace_id, RAW)


def profile_paths(root: str, trace_id: str) -> list[str]:
    directory = profile_dir(root, trace_id)
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".jsonl"))
    except FileNotFoundError:
        return []
    return [os.path.join(directory, n) for n in names]


def write_profile(path: str, header: dict[str, Any], frames: list[Frame], samples: list[Sample]) -> None:
    """Write a profile whole (a temporary file renamed over ``path``)."""
    lines = [json.dumps({"format": FORMAT, "version": VERSION, **header})]
    lines.extend(json.dumps({"frame": i, "name": f.name, "file": f.file, "line": f.line}) for i, f in enumerate(frames))
    lines.extend(
        json.dumps(
            {
                "kind": s.kind,
                "span": s.span_id,
                "thread": s.thread,
                "stack": list(s.stack),
                "count": s.number,
                "value": s.value,
                "idle": s.idle,
            }
        )
        for s in samples
    )
    tmp = path + ".tmp"
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, ("\n".join(lines) + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_profile(path: str) -> ProcessProfile:
    """Read a profile file; damaged lines are skipped with a warning naming them."""
    profile = ProcessProfile(path)
    bad: list[int] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                obj = json.loads(raw)
                if number == 1:
                    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
                        raise ValueError("not an otel-run profile")
                    if obj.get("version") != VERSION:
                        raise ValueError(f"version {obj.get('version')!r}, this otel-run reads {VERSION}")
                    profile.header = obj
                elif "frame" in obj:
                    if obj["frame"] != len(profile.frames):
                        raise ValueError("frame out of order")
                    profile.frames.append(Frame(str(obj["name"]), str(obj["file"]), obj.get("line")))
                else:
                    stack = tuple(int(i) for i in obj["stack"])
                    if any(i < 0 or i >= len(profile.frames) for i in stack):
                        raise ValueError("stack names an undefined frame")
                    profile.samples.append(
                        Sample(
                            str(obj["kind"]),
                            str(obj["span"]),
                            int(obj["thread"]),
                            stack,
                            int(obj["count"]),
                            int(obj["value"]),
                            bool(obj.get("idle")),
                        )
                    )
            except (ValueError, KeyError, TypeError) as exc:
                if number == 1:
                    profile.warnings.append(f"{path}: line 1: {exc}; file skipped")
                    return profile
                bad.append(number)
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        profile.warnings.append(f"{path}: {len(bad)} damaged line{'s' if len(bad) != 1 else ''} skipped ({shown})")
    return profile
