"""Where a container run's time goes: start-up stages, side by side.

    .venv/bin/python bench/container_startup.py [--rounds 15] [--out results/container_startup.md]

Needs the engine and image of ``bench/container/setup-engine``. Three workloads,
each ``podman run --rm IMAGE python3 -c …``:

* ``pass`` — nothing;
* ``bind`` — the same with a read-only bind-mounted directory of 2,000 files;
* ``heavy`` — importing a dozen large stdlib packages (asyncio, email, http.server,
  xml, unittest, decimal, ssl, …) inside the container;

each three ways: bare, under ``otel-run`` (bootstrap mounted: the Python inside is
traced), and under ``otel-run --no-container-mount`` (only the context is passed).
Rounds are interleaved (every round runs every combination, shuffled), since this
machine's speed drifts. The stage medians come from the traced runs' container
spans; the tracer's own cost is the difference of wall-time medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
IMAGE = "localhost/otel-run-python:bookworm"
HEAVY = (
    "import asyncio, email.mime.multipart, http.server, xml.dom.minidom, unittest, decimal, ssl, "
    "logging.handlers, concurrent.futures, argparse, json, csv, zipfile, tarfile"
)
STAGES = ("container.create", "container.start", "container.boot", "container.workload", "container.teardown")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", default=str(ROOT / "results" / "container_startup.md"))
    args = parser.parse_args()
    if shutil.which("podman") is None:
        sys.stderr.write("podman is not installed: run bench/container/setup-engine\n")
        return 1
    work = Path(tempfile.mkdtemp(prefix="otel-run-container-bench-"))
    try:
        data = work / "data"
        data.mkdir()
        for i in range(2000):
            (data / f"f{i}.txt").write_text("x" * 100)
        workloads = {
            "pass": [IMAGE, "python3", "-c", "pass"],
            "bind": ["-v", f"{data}:/data:ro", IMAGE, "python3", "-c", "pass"],
            "heavy": [IMAGE, "python3", "-c", HEAVY],
        }
        modes = {
            "bare": [],
            "otel-run": [str(BIN / "otel-run"), "-q"],
            "otel-run --no-container-mount": [str(BIN / "otel-run"), "-q", "--no-container-mount"],
        }
        store = work / "store"
        env = {**os.environ, "OTEL_RUN_STORE": str(store)}
        walls: dict[tuple[str, str], list[float]] = {}
        combos = [(w, m) for w in workloads for m in modes]
        for _ in range(2):  # warm-up: page cache, podman's storage
            for w, m in combos:
                _run(modes[m], workloads[w], env, label=None)
        for r in range(args.rounds):
            random.shuffle(combos)
            for w, m in combos:
                label = f"{w}|{m}" if m != "bare" else None
                walls.setdefault((w, m), []).append(_run(modes[m], workloads[w], env, label))
            sys.stderr.write(f"round {r + 1}/{args.rounds}\n")
        stages = _stages(store)
        report = _report(args, workloads, modes, walls, stages)
        Path(args.out).write_text(report)
        sys.stdout.write(report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _run(prefix: list[str], workload: list[str], env: dict[str, str], label: str | None) -> float:
    labelled = [*prefix[:1], "-l", label, *prefix[1:]] if label and prefix else prefix
    command = [*labelled, "podman", "run", "--rm", *workload]
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _stages(store: Path) -> dict[str, dict[str, list[float]]]:
    """Per label: each stage's durations (ms) and the in-container interpreter start-up."""
    from otel_run.store._store import Store

    s = Store(str(store))
    out: dict[str, dict[str, list[float]]] = {}
    for run in s.runs():
        if not run.label:
            continue
        trace = s.load_trace(run.trace_id)
        per = out.setdefault(run.label, {})
        for span in trace.spans:
            if span.name in STAGES:
                per.setdefault(span.name, []).append(span.duration_ns / 1e6)
            if span.is_process and span.parent is not None and span.parent.name.startswith("container "):
                started = next((e.time_ns for e in span.events if e.name == "python.started"), None)
                if started is not None:
                    per.setdefault("python start-up", []).append((started - span.start_ns) / 1e6)
    return out


def _report(
    args: argparse.Namespace,
    workloads: dict[str, list[str]],
    modes: dict[str, list[str]],
    walls: dict[tuple[str, str], list[float]],
    stages: dict[str, dict[str, list[float]]],
) -> str:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.1f}" if values else ""

    lines = [
        "# Container start-up: where `podman run` time goes, with and without otel-run",
        "",
        f"Made by `.venv/bin/python bench/container_startup.py --rounds {args.rounds}` — {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, podman {_version()} with runc, image `{IMAGE}` "
        "(Debian bookworm minbase + python3 3.11.2, from `bench/container/setup-engine`). "
        f"{args.rounds} interleaved rounds after 2 warm-up rounds; medians.",
        "",
        "## Wall time of `podman run --rm …` and the tracer's own cost",
        "",
        "| workload | bare | otel-run | added | otel-run --no-container-mount | added |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in workloads:
        bare = statistics.median(walls[(w, "bare")]) * 1000
        traced = statistics.median(walls[(w, "otel-run")]) * 1000
        plain = statistics.median(walls[(w, "otel-run --no-container-mount")]) * 1000
        lines.append(
            f"| `{w}` | {bare:.1f} ms | {traced:.1f} ms | {traced - bare:+.1f} ms ({(traced / bare - 1) * 100:+.1f}%) "
            f"| {plain:.1f} ms | {plain - bare:+.1f} ms ({(plain / bare - 1) * 100:+.1f}%) |"
        )
    lines += [
        "",
        "## Start-up stages (from the traced runs' container spans; ms)",
        "",
        "| workload | mode | create | start | boot | workload | teardown | python start-up inside |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workloads:
        for m in ("otel-run", "otel-run --no-container-mount"):
            per = stages.get(f"{w}|{m}", {})
            cells = [med(per.get(s, [])) for s in STAGES] + [med(per.get("python start-up", []))]
            lines.append(f"| `{w}` | {m} | " + " | ".join(c or "—" for c in cells) + " |")
    lines += [
        "",
        "Stages: **create** = `podman run` started → the engine's `create` event; **start** = create → `init` (the "
        "runtime has started the container's process); **boot** = init → the Python inside is ready to run the "
        "program (its `python.started`: interpreter start-up, site, otel-run's bootstrap); **workload** = ready → "
        "the engine's `died`; **teardown** = died → `podman run` returned (with `--rm`: removal). Without the "
        "bootstrap mount nothing inside is traced, so boot and workload are one stage (shown as workload).",
        "",
    ]
    return "\n".join(lines) + "\n"


def _version() -> str:
    try:
        out = subprocess.run(["podman", "--version"], capture_output=True, text=True, check=False).stdout
        return out.split()[-1]
    except (OSError, IndexError):
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
