"""What otel-run costs the headline command: the fixture's ``codeflash optimize
foo.py`` with and without tracing, the LLM replayed with zero latency so the CLI
dominates.

    .venv/bin/python bench/codeflash_overhead.py [--rounds 8] [--looping-time 1] [--out results/codeflash.md]

Three variants, each run in a fresh scratch copy of bench/fixture against the
reference backend and the replay LLM on loopback:

* ``bare``  — nothing traced: codeflash as a user runs it; the services run with
  ``OTEL_SDK_DISABLED=true``;
* ``cli``   — ``otel-run codeflash optimize foo.py``; services untraced (the
  cost of tracing the CLI, its subprocesses and its HTTP calls);
* ``full``  — as ``cli``, and the backend and replay LLM traced too (the whole
  vertical in one trace, as ``otel-demo`` runs it).

The machine's speed drifts, so runs are interleaved: every round runs every
variant, in a shuffled order, and the overhead is also reported per round
(paired). The services are restarted between the untraced and traced groups
(their ports are fixed by codeflash's local mode); their start-up is not timed.
A run counts only if codeflash exits 0 and reports both fixture optimizations;
otherwise the table says so, since a run that optimized less did less work.
Our package is byte-compiled first, as a real install is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VARIANTS = ("bare", "cli", "full")
PROFILES = {"cpu": "cpu", "memory": "memory", "cpu+memory": "cpu,memory", "imports": "imports"}
"""More variants (``--variants``): ``otel-run --profile KINDS``, services untraced, like ``cli``."""
SUCCESS = "Optimization successful"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds; each runs every variant once (default 8)")
    parser.add_argument("--looping-time", type=float, default=1.0, help="CODEFLASH_LOOPING_TIME (default 1)")
    parser.add_argument("--llm-port", type=int, default=8100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "results" / "codeflash.md"))
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, from {', '.join((*VARIANTS, *PROFILES))} (default: bare,cli,full)",
    )
    parser.add_argument("--report-only", action="store_true", help="re-render OUT from its .json, run nothing")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in (*VARIANTS, *PROFILES)]
    if unknown or "bare" not in args.variants:
        parser.error(f"--variants: unknown {unknown[0]!r}" if unknown else "--variants: bare is the baseline, name it")
    raw = Path(args.out).with_suffix(".json")
    if args.report_only:
        data = json.loads(raw.read_text())
    else:
        data = measure(args)
        raw.write_text(json.dumps(data, indent=1) + "\n")
    report = render(data)
    Path(args.out).write_text(report)
    print(report)
    return 0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    from otel_run.analyse._ledger import ledger
    from otel_run.demo._cli import _project, codeflash_environment, scratch_copy, services
    from otel_run.store._store import Store

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "instrumentation")], check=True, stdout=subprocess.DEVNULL
    )
    project = _project(None)
    rng = random.Random(args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="otel-run-codeflash-bench-"))
    store = scratch / "store"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE"))}
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    environ["OTEL_RUN_STORE"] = str(store)
    runs: list[dict[str, Any]] = []

    def run(number: int, variant: str) -> None:
        with scratch_copy(project) as (workdir, home):
            env = codeflash_environment(environ, home, args.looping_time)
            argv = [str(BIN / "codeflash"), "optimize", "foo.py"]
            if variant != "bare":
                profile = ["--profile", PROFILES[variant]] if variant in PROFILES else []
                argv = [str(BIN / "otel-run"), "-q", "-l", f"bench-{variant}-{number}", *profile, "--", *argv]
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            result = subprocess.run(
                argv, check=False, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True
            )
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        output = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
        ok = result.returncode == 0 and output.count(SUCCESS) >= 2
        print(
            f"  {variant:5} {wall:7.2f} s  cpu {cpu:6.2f} s  exit {result.returncode}  {'ok' if ok else 'INCOMPLETE'}"
        )
        runs.append({"round": number, "variant": variant, "wall_s": wall, "cpu_s": cpu, "ok": ok})

    try:
        for number in range(1, args.rounds + 1):
            print(f"round {number}/{args.rounds}", flush=True)
            untraced = [v for v in args.variants if v != "full"]
            groups = [("untraced", untraced)] + ([("traced", ["full"])] if "full" in args.variants else [])
            rng.shuffle(groups)
            for group, variants in groups:
                rng.shuffle(variants)
                with services(project, args.llm_port, 0.0, environ, traced=group == "traced"):
                    for variant in variants:
                        run(number, variant)
        full = sorted((r["wall_s"], r["round"]) for r in runs if r["variant"] == "full" and r["ok"])
        boundaries = None
        if full:
            median_round = full[len(full) // 2][1]
            s = Store(str(store))
            [traced] = [r for r in s.runs() if r.label == f"bench-full-{median_round}"]
            boundaries = ledger(s.load_trace(traced.trace_id))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "command": f".venv/bin/python bench/codeflash_overhead.py --rounds {args.rounds} "
        f"--looping-time {args.looping_time:g}"
        + (
            f" --variants {','.join(args.variants)} --out {os.path.relpath(args.out, REPO)}"
            if args.variants != list(VARIANTS)
            else ""
        ),
        "variants": args.variants,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "codeflash": version("codeflash"),
        "runs": runs,
        "ledger_of_median_full_run": boundaries,
    }


def render(data: dict[str, Any]) -> str:
    runs = [r for r in data["runs"] if r["ok"]]
    variants = data.get("variants") or list(VARIANTS)
    wall = {v: [r["wall_s"] for r in runs if r["variant"] == v] for v in variants}
    cpu = {v: [r["cpu_s"] for r in runs if r["variant"] == v] for v in variants}
    by_round: dict[int, dict[str, float]] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["variant"]] = r["wall_s"]
    lines = [
        "# `codeflash optimize foo.py` with and without otel-run",
        "",
        f"Command: `{data['command']}` — {data['date']}, {data['machine']}, codeflash {data['codeflash']}, "
        "replay LLM latency 0. Raw runs: the `.json` of the same name beside this page "
        "(`--report-only` re-renders the page from it).",
        "",
        "| variant | runs ok | wall median | min | max | vs bare | 95% CI | paired (median of rounds) "
        "| CPU median | CPU vs bare |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in variants:
        total = sum(1 for r in data["runs"] if r["variant"] == variant)
        values = wall[variant]
        if not values or not wall["bare"]:
            lines.append(f"| {variant} | {len(values)}/{total} | | | | | | | | |")
            continue
        median = statistics.median(values)
        vs, ci, paired, cpu_vs = "", "", "", ""
        if variant != "bare":
            vs = f"{median / statistics.median(wall['bare']) - 1:+.1%}"
            low, high = _bootstrap_ratio(values, wall["bare"])
            ci = f"{low - 1:+.1%} … {high - 1:+.1%}"
            ratios = [r[variant] / r["bare"] - 1 for r in by_round.values() if variant in r and "bare" in r]
            paired = f"{statistics.median(ratios):+.1%}" if ratios else ""
            cpu_vs = f"{statistics.median(cpu[variant]) / statistics.median(cpu['bare']) - 1:+.1%}"
        lines.append(
            f"| {variant} | {len(values)}/{total} | {median:.2f} s | {min(values):.2f} s | {max(values):.2f} s "
            f"| {vs} | {ci} | {paired} | {statistics.median(cpu[variant]):.2f} s | {cpu_vs} |"
        )
    lines += [
        "",
        "`bare`: nothing traced. `cli`: `otel-run codeflash optimize foo.py`, services untraced. "
        "`full`: the whole vertical traced (backend and replay LLM too), as `otel-demo` runs it. "
        "`cpu`, `memory`, `cpu+memory`, `imports`: as `cli`, with `otel-run --profile` of those kinds. "
        "95% CI: bootstrap (10 000 resamples) of the ratio of medians. "
        "CPU: user + system time of the command's process tree (codeflash, its pytest, coverage, git "
        "and jedi subprocesses, and otel-run itself; not the services), from `getrusage(RUSAGE_CHILDREN)`. "
        "codeflash times each candidate for a fixed looping time, so part of any slowdown turns into fewer "
        "benchmark loops rather than more wall time.",
    ]
    if data.get("ledger_of_median_full_run"):
        lines += ["", "## Where the traced run's time went (the median `full` run's ledger)", ""]
        lines += _ledger_tables(data["ledger_of_median_full_run"])
    return "\n".join(lines) + "\n"


def _bootstrap_ratio(values: list[float], base: list[float], resamples: int = 10_000) -> tuple[float, float]:
    rng = random.Random(0)
    ratios = sorted(
        statistics.median(rng.choices(values, k=len(values))) / statistics.median(rng.choices(base, k=len(base)))
        for _ in range(resamples)
    )
    return ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1]


def _ledger_tables(ledger: dict[str, Any]) -> list[str]:
    trips = [r for r in ledger["round_trips"] if r["caller"] == "codeflash"]
    out = [
        "| codeflash → | calls | median | up | down | serialize | deserialize | new conn. | connect total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in trips:
        out.append(
            f"| `{r['endpoint']}` ({r['server']}) | {r['calls']} | {r['median_ms']:.1f} ms | {r['bytes_up']} B "
            f"| {r['bytes_down']} B | {r['serialize_ms']:.2f} ms | {r['deserialize_ms']:.2f} ms "
            f"| {r['new_connections']}/{r['calls']} | {r['connect_ms']:.2f} ms |"
        )
    out += ["", "| processes | count | wall | start-up median | start-up total |", "|---|---:|---:|---:|---:|"]
    for r in ledger["subprocesses"]:
        median = f"{r['median_startup_ms']:.1f} ms" if r["median_startup_ms"] is not None else ""
        total = f"{r['total_startup_ms']:.0f} ms" if r["python"] else ""
        out.append(f"| {r['service']} | {r['count']} | {r['wall_ms'] / 1000:.2f} s | {median} | {total} |")
    return out


if __name__ == "__main__":
    sys.exit(main())
