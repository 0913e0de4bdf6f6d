"""span-diff throughput: 2 × 30 traces of ~5,000 spans each, end to end.

    .venv/bin/python bench/span_diff.py [--runs 30] [--spans 5000] [--repeat 7] [--out results/span_diff.md]

Generates the traces once (tests/synth.py: the codeflash vertical's shape —
CLI, aiservice calls with client, connect, server, GenAI and database spans —
with run-specific ids, ports and temp paths in names), as one OTLP JSON file
per run, the way ``otel-trace export`` writes them; then times the whole
``span-diff BEFORE AFTER --format json`` command (interpreter start-up,
reading, normalising, profiling, statistics, output) with hyperfine when it is
installed, else with a loop of ``subprocess.run``. Goal: ≥ 200,000 spans/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.synth import count_spans, runs, sized_tree, write_runs  # noqa: E402

BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--spans", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "results" / "span_diff.md"))
    args = parser.parse_args()

    tree = sized_tree(args.spans)
    per_trace = count_spans(tree)
    work = Path(tempfile.mkdtemp(prefix="otel-run-spandiff-"))
    try:
        write_runs(work / "before", runs(tree, args.runs, seed=1))
        write_runs(work / "after", runs(tree, args.runs, seed=2, scale={"chat gpt-4.1": 1.1}))
        size = sum(p.stat().st_size for p in work.rglob("*.json"))
        total = 2 * args.runs * per_trace
        command = [str(BIN / "span-diff"), str(work / "before"), str(work / "after"), "--format", "json", "--all"]
        check = subprocess.run(command, capture_output=True, text=True, check=False)
        if check.returncode != 0:
            sys.stderr.write(check.stderr)
            return 1
        rows = json.loads(check.stdout)["rows"]
        times = _time(command, args.repeat)
        med = statistics.median(times)
        report = _report(args, per_trace, total, size, times, med, len(rows), " ".join(_shown(command, work)))
        Path(args.out).write_text(report)
        sys.stdout.write(report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _time(command: list[str], repeat: int) -> list[float]:
    hyperfine = shutil.which("hyperfine")
    if hyperfine:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                [
                    hyperfine,
                    "-N",
                    "--warmup",
                    "2",
                    "--runs",
                    str(repeat),
                    "--export-json",
                    out.name,
                    "--style",
                    "none",
                    " ".join(command),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            return list(json.load(open(out.name))["results"][0]["times"])
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def _shown(command: list[str], work: Path) -> list[str]:
    return [c.replace(str(work), "$WORK").replace(str(BIN) + "/", "") for c in command]


def _report(
    args: argparse.Namespace, per_trace: int, total: int, size: int, times: list[float], med: float, rows: int, cmd: str
) -> str:
    return f"""# span-diff throughput

Made by `.venv/bin/python bench/span_diff.py --runs {args.runs} --spans {args.spans} --repeat {args.repeat}` —
{time.strftime("%Y-%m-%d")}, {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.

Input: 2 × {args.runs} traces of {per_trace} spans ({total:,} spans, {size / 2**20:.1f} MiB of OTLP JSON, one
file per trace), the codeflash vertical's shape from `tests/synth.py`; the after side's GenAI spans are 10%
slower. Command: `{cmd}` ({rows} paths compared), timed end to end (start-up, reading, profiling,
statistics, output) with {"hyperfine" if shutil.which("hyperfine") else "a subprocess loop"}.

| metric | value |
|---|---:|
| wall, median of {len(times)} | {med:.3f} s |
| wall, min … max | {min(times):.3f} … {max(times):.3f} s |
| **spans/s (median)** | **{total / med:,.0f}** |
| goal | ≥ 200,000 spans/s |
"""


if __name__ == "__main__":
    raise SystemExit(main())
