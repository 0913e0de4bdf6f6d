"""Spans lost when a traced Python process is killed with SIGKILL mid-burst.

    .venv/bin/python bench/reliability_kill.py [--tries 20] [--spans 10000] [--rate 0] [--seed 1] [--json]

Each try runs ``otel-run -q python -c BURST`` on a fresh store. The traced
Python opens a parent span with the OpenTelemetry API and ends ``--spans``
child spans under it as fast as it can (or ``--rate`` a second: then the
flush timer, not the batch size, bounds the loss); after ending child ``i`` it writes the
time it ended into a shared ``mmap`` (``/dev/shm``), so the killer knows which
spans had ended before the kill, and when. The killer waits for the burst to
start, sleeps a random part of the burst's expected length, and sends SIGKILL
to the Python process (not to otel-run, which reaps it and records the run).

Per try: spans ended before the kill, of those the ones on disk, the lost
ones as a time window (the kill's time minus the end of the oldest lost span:
how much of the last moments a SIGKILL costs), whether the open parent is in
the store (as an unfinished span) and how many spans are orphans (their parent
is missing). The goal is a window of at most 0.2 s (the flush period).

Measures whatever ``otel_run`` the interpreter imports: put another checkout's
``instrumentation`` first on ``PYTHONPATH`` to measure it instead.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from otel_run.store._store import Store

BIN = Path(sys.executable).parent
OTEL_RUN = str(BIN / "otel-run")

BURST = """
import mmap, os, struct, sys, time
from opentelemetry import trace
n, path, pause = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
fd = os.open(path, os.O_RDWR)
ends = mmap.mmap(fd, 8 * (n + 1))
tracer = trace.get_tracer("burst")
pack = struct.pack_into
with tracer.start_as_current_span("burst parent"):
    pack("q", ends, 8 * n, os.getpid())
    for i in range(n):
        with tracer.start_as_current_span("api %d" % i):
            pass
        pack("q", ends, 8 * i, time.time_ns())
        if pause:
            time.sleep(pause)
"""


def one_try(n: int, delay: float, work: Path, pause: float) -> dict[str, Any]:
    """One traced burst killed ``delay`` seconds after it started."""
    store = work / "store"
    shm = Path(tempfile.mktemp(prefix="otel-run-kill-", dir="/dev/shm"))
    shm.write_bytes(b"\0" * 8 * (n + 1))
    env = {**os.environ, "OTEL_RUN_STORE": str(store)}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    try:
        fd = os.open(shm, os.O_RDWR)
        ends = mmap.mmap(fd, 8 * (n + 1))
        os.close(fd)
        proc = subprocess.Popen([OTEL_RUN, "-q", sys.executable, "-c", BURST, str(n), str(shm), str(pause)], env=env)
        deadline = time.monotonic() + 120
        while int.from_bytes(ends[0:8], "little") == 0:  # the first span ended: the burst is on
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the burst did not start (otel-run exit {proc.returncode})")
            time.sleep(0.001)
        pid = int.from_bytes(ends[8 * n : 8 * n + 8], "little")
        time.sleep(delay)
        kill_ns = time.time_ns()
        try:
            os.kill(pid, signal.SIGKILL)
            killed = True
        except ProcessLookupError:
            killed = False  # the burst was over before the kill
        proc.wait(timeout=120)
        ended = {i: t for i in range(n) if (t := int.from_bytes(ends[8 * i : 8 * i + 8], "little"))}
        ends.close()
    finally:
        shm.unlink()
    run = Store(str(store)).find_run()
    trace = Store(str(store)).load_trace(run.trace_id)
    stored = {int(s.name[4:]) for s in trace.spans if s.name.startswith("api ")}
    lost = [i for i in ended if i not in stored]
    parent = next((s for s in trace.spans if s.name == "burst parent"), None)
    orphans = sum(1 for s in trace.spans if s.parent_id and s.parent_id not in trace.by_id)
    return {
        "killed": killed,
        "ended": len(ended),
        "stored": len(stored & set(ended)),
        "lost": len(lost),
        "lost_window_ms": (kill_ns - min(ended[i] for i in lost)) / 1e6 if lost else 0.0,
        "parent_stored": parent is not None,
        "parent_unfinished": parent is not None and parent.unfinished,
        "orphans": orphans,
        "warnings": trace.warnings,
    }


def burst_seconds(n: int, work: Path, pause: float) -> float:
    """How long an unkilled burst of ``n`` spans takes here (one warm-up run)."""
    env = {**os.environ, "OTEL_RUN_STORE": str(work / "warmup")}
    shm = Path(tempfile.mktemp(prefix="otel-run-kill-", dir="/dev/shm"))
    shm.write_bytes(b"\0" * 8 * (n + 1))
    try:
        subprocess.run([OTEL_RUN, "-q", sys.executable, "-c", BURST, str(n), str(shm), str(pause)], env=env, check=True)
        data = shm.read_bytes()
    finally:
        shm.unlink()
    times = [int.from_bytes(data[8 * i : 8 * i + 8], "little") for i in range(n)]
    return (times[-1] - times[0]) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0, help="spans per second (default 0: as fast as it can)")
    parser.add_argument("--json", action="store_true", help="one JSON object per try, then the summary")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pause = 1 / args.rate if args.rate else 0.0
    with tempfile.TemporaryDirectory(prefix="otel-run-kill-") as tmp:
        length = burst_seconds(args.spans, Path(tmp), pause)
        print(f"burst of {args.spans} spans: {length:.3f} s unkilled; killing at a random point in it", file=sys.stderr)
        results = []
        for n in range(args.tries):
            work = Path(tmp) / f"try-{n}"
            work.mkdir()
            result = one_try(args.spans, rng.uniform(0.05, 0.95) * length, work, pause)
            results.append(result)
            print(json.dumps(result) if args.json else f"try {n + 1:2d}: {_describe(result)}", flush=True)
    killed = [r for r in results if r["killed"]]
    lost_pct = [100 * r["lost"] / r["ended"] for r in killed if r["ended"]]
    windows = [r["lost_window_ms"] for r in killed]
    summary = {
        "tries": len(results),
        "killed_mid_burst": len(killed),
        "lost_pct_median": statistics.median(lost_pct) if lost_pct else 0.0,
        "lost_pct_max": max(lost_pct, default=0.0),
        "lost_window_ms_median": statistics.median(windows) if windows else 0.0,
        "lost_window_ms_max": max(windows, default=0.0),
        "parent_missing": sum(1 for r in killed if not r["parent_stored"]),
        "tries_with_orphans": sum(1 for r in killed if r["orphans"]),
    }
    print(
        json.dumps(summary)
        if args.json
        else "summary: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items())
    )
    return 0


def _describe(result: dict[str, Any]) -> str:
    parent = "unfinished" if result["parent_unfinished"] else ("stored" if result["parent_stored"] else "MISSING")
    return (
        f"ended {result['ended']:5d}, on disk {result['stored']:5d}, lost {result['lost']:5d} "
        f"({result['lost_window_ms']:6.1f} ms), parent {parent}, orphans {result['orphans']}"
    )


if __name__ == "__main__":
    sys.exit(main())
