"""Start-up cost of tracing: bare vs otel-run (with and without export) vs opentelemetry-instrument.

    .venv/bin/python bench/startup.py [--runs 100] [--rounds 10] [--out results/startup.md]

Runs hyperfine (Debian package ``hyperfine``). The machine's speed drifts over
minutes, so each workload is measured in rounds: every round runs every variant
(in a shuffled order, one hyperfine per variant) and the rounds' times are
pooled; the export rows are also compared with plain otel-run round by round.

* ``python -c pass`` and ``codeflash --version`` (codeflash pinned from PyPI);
* bare; under ``otel-run`` (embedded store, the default); under ``otel-run``
  exporting to a **live receiver** (rotel, a real OTLP collector, on loopback,
  discarding what it receives) and to a **dead endpoint** (a loopback socket
  that accepts connections and never answers: the worst case, the exporter
  waits for its whole deadline); under ``opentelemetry-instrument`` configured
  with the OTLP exporter as a user would (``opentelemetry-distro`` defaults).

otel-run hands the export to a background deliverer and exits. hyperfine starts
the next run at once, so while an export variant is measured the deliverer works
beside it (at ``SCHED_IDLE``): that cost is in the numbers. After each export
variant the script waits until its deliverer has finished (and counts what it
delivered), so no deliverer runs while another variant is measured.

Then where otel-run's remaining time goes: each variant run from this script
with ``posix_spawn`` + ``waitpid``, the timestamps taken around it set against
the ones otel-run stores (the root span starts just before the command is
spawned, the command's process span ends when otel-run reaps it), so the
split before / while / after the command costs no tracer of its own; and
``python -X importtime`` of otel-run and of a traced child.

Our package is byte-compiled first (an editable install under
``PYTHONDONTWRITEBYTECODE`` would otherwise recompile it in every process, which
no real install does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from otel_run.export._outbox import wait_for_deliverers
from otel_run.store._store import Store

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

BARE, RUN, LIVE, DEAD, INSTRUMENT = (
    "bare",
    "otel-run",
    "otel-run + export, live receiver",
    "otel-run + export, dead endpoint",
    "opentelemetry-instrument",
)
EXPORTS = (LIVE, DEAD)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per variant over all rounds (default 100)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs per variant and round (default 3)")
    parser.add_argument(
        "--anchor-runs", type=int, default=3, help="opentelemetry-instrument runs per round (2 s each; default 3)"
    )
    parser.add_argument(
        "--phases", type=int, default=60, help="iterations of the before/while/after split (default 60)"
    )
    parser.add_argument(
        "--sustained", type=int, default=150, help="runs of one long back-to-back series per variant (default 150)"
    )
    parser.add_argument("--out", default=str(REPO / "results" / "startup.md"))
    args = parser.parse_args(argv)
    if shutil.which("hyperfine") is None:
        print("bench/startup.py: hyperfine is not installed (apt-get install hyperfine)", file=sys.stderr)
        return 2
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "instrumentation")], check=True, stdout=subprocess.DEVNULL
    )
    python, codeflash = str(BIN / "python"), str(BIN / "codeflash")
    otel_run, instrument = str(BIN / "otel-run"), str(BIN / "opentelemetry-instrument")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE"))}
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)
    rng = random.Random(20261202)
    with tempfile.TemporaryDirectory() as tmp, _collector() as (grpc, http), _silent_port() as dead:
        live_url, dead_url = f"http://127.0.0.1:{http}", f"http://127.0.0.1:{dead}"
        workloads = {"python -c pass": [python, "-c", "pass"], "codeflash --version": [codeflash, "--version"]}
        results: dict[str, dict[str, dict[str, float]]] = {}
        deltas: dict[str, dict[str, tuple[float, float, float]]] = {}
        deliveries: dict[str, dict[str, dict[str, Any]]] = {}
        for workload, cmd in workloads.items():
            slug = workload.split()[0]
            stores = {v: os.path.join(tmp, f"{slug}-{i}") for i, v in enumerate((RUN, LIVE, DEAD))}
            envs = {
                BARE: {},
                RUN: {"OTEL_RUN_STORE": stores[RUN]},
                LIVE: {"OTEL_RUN_STORE": stores[LIVE], "OTEL_EXPORTER_OTLP_ENDPOINT": live_url},
                DEAD: {"OTEL_RUN_STORE": stores[DEAD], "OTEL_EXPORTER_OTLP_ENDPOINT": dead_url},
                INSTRUMENT: {
                    "OTEL_SERVICE_NAME": "bench",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc}",
                    "OTEL_EXPORTER_OTLP_INSECURE": "true",
                },
            }
            prefixes = {BARE: [], RUN: [otel_run], LIVE: [otel_run], DEAD: [otel_run], INSTRUMENT: [instrument]}
            pooled: dict[str, dict[str, list[float]]] = {n: {"times": [], "user": [], "system": []} for n in envs}
            medians: dict[str, list[float]] = {n: [] for n in envs}
            drains: dict[str, list[float]] = {n: [] for n in EXPORTS}
            per_round = max(2, -(-args.runs // args.rounds))
            for round_no in range(args.rounds):
                order = list(envs)
                rng.shuffle(order)
                print(f"== {workload}, round {round_no + 1}/{args.rounds}: {', '.join(order)}", file=sys.stderr)
                for name in order:
                    command = _command(envs[name], prefixes[name] + cmd)
                    anchor = name == INSTRUMENT
                    r = _hyperfine(
                        name,
                        command,
                        runs=args.anchor_runs if anchor else per_round,
                        warmup=1 if anchor else args.warmup,
                        env=base_env,
                        out=os.path.join(tmp, "h.json"),
                    )
                    pooled[name]["times"] += r["times"]
                    pooled[name]["user"] += [r["user"]] * len(r["times"])
                    pooled[name]["system"] += [r["system"]] * len(r["times"])
                    medians[name].append(statistics.median(r["times"]) * 1e3)
                    if name in EXPORTS:
                        drains[name].append(_drain(stores[name]))
            results[workload] = {name: _stats(p) for name, p in pooled.items()}
            deltas[workload] = {name: _paired_delta(medians[name], medians[RUN], rng) for name in (RUN, LIVE, DEAD)}
            deliveries[workload] = {name: _deliveries(stores[name], drains[name]) for name in EXPORTS}
        sustained = _sustained(python, otel_run, live_url, dead_url, base_env, tmp, args.sustained, rng)
        phases = _phases(python, otel_run, live_url, dead_url, base_env, tmp, args.phases, rng)
    report = (
        _report(results, deltas, deliveries, args)
        + _sustained_report(sustained, args.sustained)
        + _phases_report(phases, args.phases)
        + _importtime(python, otel_run)
    )
    Path(args.out).write_text(report)
    print(report)
    return 0


def _command(env: dict[str, str], argv: list[str]) -> str:
    """Every command is started through ``env`` (same cost for all)."""
    return " ".join(["env", *(f"{k}={v}" for k, v in env.items()), *argv])


def _hyperfine(name: str, command: str, *, runs: int, warmup: int, env: dict[str, str], out: str) -> dict[str, Any]:
    argv = ["hyperfine", "-N", "--warmup", str(warmup), "--runs", str(runs), "--export-json", out, "-n", name, command]
    subprocess.run(argv, env=env, check=True, stdout=sys.stderr)
    with open(out) as f:
        result: dict[str, Any] = json.load(f)["results"][0]
    return result


def _drain(store: str, timeout: float = 120.0) -> float:
    """Wait until the store's deliverers have finished; returns how long that took."""
    started = time.monotonic()
    if not wait_for_deliverers(store, timeout):
        print(f"bench/startup.py: a deliverer of {store} is still at work after {timeout:.0f} s", file=sys.stderr)
    return time.monotonic() - started


def _deliveries(store: str, drains: list[float]) -> dict[str, Any]:
    """What the deliverers of one export variant did, from the store and its delivery record."""
    runs = Store(store).runs()
    try:
        with open(os.path.join(store, "export.jsonl")) as f:
            record = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        record = []
    return {
        "runs": len(runs),
        "deliverers": len({line["pid"] for line in record}),
        "ok": sum(1 for line in record if line["ok"]),
        "failed": sum(1 for line in record if not line["ok"] and not line.get("error", "").startswith("not tried")),
        "not_tried": sum(1 for line in record if line.get("error", "").startswith("not tried")),
        "unpushed": sum(1 for r in runs if not Store(store).was_pushed(r)),
        "drain_median_s": statistics.median(drains) if drains else 0.0,
        "drain_max_s": max(drains) if drains else 0.0,
    }


def _paired_delta(values: list[float], baseline: list[float], rng: random.Random) -> tuple[float, float, float]:
    """Median over rounds of (variant - baseline) round medians, with a 95%
    bootstrap interval over rounds (the rounds are the independent samples:
    within a round the two ran minutes apart at most)."""
    diffs = [a - b for a, b in zip(values, baseline, strict=True)]
    boots = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(4000))
    return statistics.median(diffs), boots[int(0.025 * len(boots))], boots[int(0.975 * len(boots)) - 1]


# --------------------------------------------------------------------------- long series


def _sustained(
    python: str,
    otel_run: str,
    live: str,
    dead: str,
    base_env: dict[str, str],
    tmp: str,
    runs: int,
    rng: random.Random,
    rounds: int = 2,
) -> dict[str, Any]:
    """One long hyperfine series per variant and round: longer than the
    deliverer holds runs back (``HOLD_MAX_S``), so it sends while runs go on."""
    cmd = [python, "-c", "pass"]
    stores = {name: os.path.join(tmp, f"sustained-{i}") for i, name in enumerate((RUN, LIVE, DEAD))}
    envs = {
        RUN: {"OTEL_RUN_STORE": stores[RUN]},
        LIVE: {"OTEL_RUN_STORE": stores[LIVE], "OTEL_EXPORTER_OTLP_ENDPOINT": live},
        DEAD: {"OTEL_RUN_STORE": stores[DEAD], "OTEL_EXPORTER_OTLP_ENDPOINT": dead},
    }
    times: dict[str, list[float]] = {name: [] for name in envs}
    drains: dict[str, list[float]] = {name: [] for name in EXPORTS}
    for round_no in range(rounds):
        order = list(envs)
        rng.shuffle(order)
        print(f"== sustained, round {round_no + 1}/{rounds}: {', '.join(order)}", file=sys.stderr)
        for name in order:
            r = _hyperfine(
                name, _command(envs[name], [otel_run, *cmd]), runs=runs, warmup=3, env=base_env, out=f"{tmp}/s.json"
            )
            times[name] += r["times"]
            if name in EXPORTS:
                drains[name].append(_drain(stores[name]))
    out: dict[str, Any] = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    out["deliveries"] = {name: _deliveries(stores[name], drains[name]) for name in EXPORTS}
    out["rounds"] = rounds
    return out


def _sustained_report(sustained: dict[str, Any], runs: int) -> str:
    base = sustained[RUN]
    lines = [
        "",
        "## A long series",
        "",
        f"`python -c pass`, {sustained['rounds']} rounds of {runs} back-to-back runs per variant (hyperfine "
        "`-N`, shuffled), medians in ms: long enough that the deliverer sends while the runs go on (it holds "
        "runs back at most 5 s, see the design note in results/README.md), where the table above mostly "
        "shows it sending in the pause after each round's runs.",
        "",
        "| variant | median ms | Δ otel-run ms | deliverers started | delivered | failed | not tried |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {RUN} | {base:.1f} | | | | | |",
    ]
    for name in EXPORTS:
        d = sustained["deliveries"][name]
        lines.append(
            f"| {name} | {sustained[name]:.1f} | {sustained[name] - base:+.1f} | {d['deliverers']} | {d['ok']} | "
            f"{d['failed']} | {d['not_tried']} |"
        )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the before/while/after split


def _phases(
    python: str, otel_run: str, live: str, dead: str, base_env: dict[str, str], tmp: str, runs: int, rng: random.Random
) -> dict[str, Any]:
    """Each variant started here with posix_spawn and reaped with waitpid, one
    run of each per iteration in a shuffled order; otel-run's stored timestamps
    place the command's spawn and reap inside."""
    cmd = [python, "-c", "pass"]
    stores = {name: os.path.join(tmp, f"phases-{i}") for i, name in enumerate((RUN, LIVE, DEAD))}
    variants = {
        BARE: (cmd, {}),
        RUN: ([otel_run, "-q", *cmd], {"OTEL_RUN_STORE": stores[RUN]}),
        LIVE: ([otel_run, "-q", *cmd], {"OTEL_RUN_STORE": stores[LIVE], "OTEL_EXPORTER_OTLP_ENDPOINT": live}),
        DEAD: ([otel_run, "-q", *cmd], {"OTEL_RUN_STORE": stores[DEAD], "OTEL_EXPORTER_OTLP_ENDPOINT": dead}),
    }
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    order = list(variants)
    for _ in range(3 + runs):  # the first 3 are warm-ups
        rng.shuffle(order)
        for name in order:
            argv, extra = variants[name]
            # the live deliverer is let finish before every run: none works beside a run, and every live run
            # starts its own (the worst case for otel-run's own path); the dead endpoint's deliverer stays, waiting
            # on the socket, as it would while a collector is down
            wait_for_deliverers(stores[LIVE], 120)
            env = {**base_env, **extra}
            t0 = time.time_ns()
            pid = os.posix_spawn(argv[0], argv, env)
            os.waitpid(pid, 0)
            t1 = time.time_ns()
            row = {"total": (t1 - t0) / 1e6}
            if name != BARE:
                store = Store(extra["OTEL_RUN_STORE"])
                run = store.runs()[-1]
                trace = store.load_trace(run.trace_id)
                child = next(s for s in trace.spans if s.is_process and s.parent_id == run.root_span_id)
                ready = next((e.time_ns for e in child.events if e.name == "python.started"), child.start_ns)
                row["before"] = (child.start_ns - t0) / 1e6  # the process span starts at the spawn
                row["child_startup"] = (ready - child.start_ns) / 1e6
                row["while"] = (child.end_ns - child.start_ns) / 1e6  # ... and ends at the reap
                row["after"] = (t1 - child.end_ns) / 1e6
            rows[name].append(row)
    for store in stores.values():
        wait_for_deliverers(store, 120)
    out: dict[str, Any] = {
        name: {key: statistics.median(r[key] for r in rs[3:]) for key in rs[-1]} for name, rs in rows.items()
    }
    for name in (LIVE, DEAD):
        totals = [r["total"] for r in rows[name][3:]]
        base = [r["total"] for r in rows[RUN][3:]]
        out[name]["delta"] = _paired_delta(totals, base, rng)
    return out


def _phases_report(phases: dict[str, Any], runs: int) -> str:
    bare = phases[BARE]
    lines = [
        "",
        "## Where otel-run's time goes: before, while, after the command",
        "",
        f"`python -c pass`, {runs} iterations, each running every variant once in a shuffled order, started by "
        "the script itself (`posix_spawn` + `waitpid`, timestamps around them); medians in ms. *before*: from "
        "the spawn of otel-run to the moment it spawns the command (its interpreter, its imports, the "
        "environment for the child); *while*: the command's spawn to its reaping (for bare: the whole run), *of "
        "which start-up* up to the traced interpreter's `python.started`; *after*: reaped to otel-run gone (the "
        "reap record, the root span, reading the trace back for the counts, the index line, the hand-off, the "
        "process exit). *Δ otel-run*: median of the per-iteration differences of the totals, 95% bootstrap "
        "interval. These are single commands, as typed at a prompt: the live receiver's deliverer was let finish "
        "before every run, so none works beside a run and every live run starts its own (the worst case for "
        "otel-run's own path); the dead endpoint's deliverer stays, waiting on the socket, as it would while a "
        "collector is down.",
        "",
        "| variant | total | before | while | of which start-up | after | Δ otel-run (95% CI) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {BARE} | {bare['total']:.1f} | | {bare['total']:.1f} | | | |",
    ]
    for name in (RUN, LIVE, DEAD):
        p = phases[name]
        delta = f"{p['delta'][0]:+.1f} ({p['delta'][1]:+.1f} … {p['delta'][2]:+.1f})" if "delta" in p else ""
        lines.append(
            f"| {name} | {p['total']:.1f} | {p['before']:.1f} | {p['while']:.1f} | {p['child_startup']:.1f} | "
            f"{p['after']:.1f} | {delta} |"
        )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- -X importtime


def _importtime(python: str, otel_run: str, runs: int = 15) -> str:
    """Where otel-run's own start-up goes: ``-X importtime`` of the otel-run
    process and of a traced child's bootstrap (median self time per module)."""

    def profile(argv: list[str], env: dict[str, str]) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for _ in range(runs):
            err = subprocess.run(argv, env=env, capture_output=True, text=True, check=False).stderr
            for line in err.splitlines():
                parts = line.split("|")
                if len(parts) == 3 and parts[0].split(":")[-1].strip().isdigit():
                    name = parts[2].strip()
                    if name.startswith(("otel_run", "sitecustomize", "__future__", "_json", "resource", "fcntl")):
                        found.setdefault(name, []).append(int(parts[0].split(":")[-1]))
        return found

    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE", "PYTHONDONTWRITE"))}
        env["OTEL_RUN_STORE"] = tmp
        # the Python half: the otel-run launcher is a shell script (see instrumentation/scripts/otel-run)
        own = profile([python, "-X", "importtime", otel_run + ".py", "-q", "true"], env)
        own.pop("sitecustomize", None)  # the failed look-up every Python makes, not ours
        child = profile([otel_run, "-q", python, "-X", "importtime", "-c", "pass"], env)
    lines = [
        "",
        "## Where otel-run's own start-up goes",
        "",
        f"`python -X importtime`, median self time over {runs} runs (importtime's own overhead inflates "
        "these). *otel-run process*: modules it imports (the ones before `otel_run.run._git` are loaded before "
        "the command is spawned, the rest while it runs). *Traced child*: what every traced Python process "
        "loads at start-up (`sitecustomize`'s self time includes the bootstrap's work: the start record, "
        "the hooks).",
        "",
        "| process | module | self µs |",
        "|---|---|---:|",
    ]
    for label, found in (("otel-run", own), ("traced child", child)):
        for name, values in found.items():
            lines.append(f"| {label} | `{name}` | {statistics.median(values):.0f} |")
    for label, found in (("otel-run", own), ("traced child", child)):
        total = sum(statistics.median(v) for v in found.values())
        lines.append(f"| {label} | **total** | **{total:.0f}** |")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- report


def _stats(pooled: dict[str, list[float]]) -> dict[str, float]:
    times = [t * 1e3 for t in pooled["times"]]
    return {
        "mean": statistics.fmean(times),
        "stddev": statistics.stdev(times),
        "median": statistics.median(times),
        "user": statistics.fmean(pooled["user"]) * 1e3,
        "system": statistics.fmean(pooled["system"]) * 1e3,
        "runs": len(times),
    }


def _report(
    results: dict[str, dict[str, dict[str, float]]],
    deltas: dict[str, dict[str, tuple[float, float, float]]],
    deliveries: dict[str, dict[str, dict[str, Any]]],
    args: argparse.Namespace,
) -> str:
    from importlib.metadata import version

    flags = "".join(
        f" --{name.replace('_', '-')} {getattr(args, name)}"
        for name, default in (
            ("runs", 100),
            ("rounds", 10),
            ("warmup", 3),
            ("anchor_runs", 3),
            ("phases", 60),
            ("sustained", 150),
        )
        if getattr(args, name) != default
    )
    lines = [
        "# Start-up: bare vs otel-run (with and without export) vs opentelemetry-instrument",
        "",
        f"Made by `make bench` (`.venv/bin/python bench/startup.py{flags}`): hyperfine `-N`, {args.rounds} rounds; "
        f"every round runs every variant once in a shuffled order ({-(-args.runs // args.rounds)} runs after "
        f"{args.warmup} warm-ups; `opentelemetry-instrument` {args.anchor_runs} after 1), times pooled. Every "
        "command is started through `env` (same cost for all). The live receiver is rotel on loopback, "
        "discarding what it receives; the dead endpoint is a loopback socket that accepts connections and "
        "never answers; both with the default export settings (`http/protobuf`, 5 s deadline). "
        "*Δ otel-run*: the median over rounds of (this variant's round median − otel-run's), with a 95% "
        "bootstrap interval over rounds.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. codeflash {version('codeflash')}, opentelemetry-sdk "
        f"{version('opentelemetry-sdk')}, opentelemetry-instrumentation {version('opentelemetry-instrumentation')}.",
        "",
        "| workload | variant | median ms | mean ± σ ms | user ms | sys ms | × bare | Δ otel-run ms (95% CI) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for workload, variants in results.items():
        bare = variants[BARE]["median"]
        for name, r in variants.items():
            delta = ""
            if name in EXPORTS:
                d, lo, hi = deltas[workload][name]
                delta = f"{d:+.1f} ({lo:+.1f} … {hi:+.1f})"
            lines.append(
                f"| `{workload}` | {name} | {r['median']:.1f} | {r['mean']:.1f} ± {r['stddev']:.1f} | "
                f"{r['user']:.1f} | {r['system']:.1f} | {r['median'] / bare:.2f}× | {delta} |"
            )
    lines += [
        "",
        "What the deliverers of the export rows did (from each store's `export.jsonl`, once every round's "
        "deliverer had finished; *wait*: how long the script waited for that after a variant's runs, median / max):",
        "",
        "| workload | variant | runs | deliverers started | delivered | failed | not tried | left unpushed | wait s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload, per in deliveries.items():
        for name, d in per.items():
            lines.append(
                f"| `{workload}` | {name} | {d['runs']} | {d['deliverers']} | {d['ok']} | {d['failed']} | "
                f"{d['not_tried']} | {d['unpushed']} | {d['drain_median_s']:.1f} / {d['drain_max_s']:.1f} |"
            )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- endpoints


class _collector:
    """rotel on loopback, discarding everything (a real OTLP peer)."""

    def __enter__(self) -> tuple[int, int]:
        import rotel

        self.grpc, self.http = _free_port(), _free_port()
        agent = Path(rotel.__file__).parent / "rotel-agent"
        self.proc = subprocess.Popen(
            [
                str(agent),
                "start",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{self.grpc}",
                "--otlp-http-endpoint",
                f"127.0.0.1:{self.http}",
                "--exporter",
                "blackhole",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not (_listening(self.grpc) and _listening(self.http)):
            if time.monotonic() > deadline:
                raise SystemExit("rotel did not start")
            time.sleep(0.05)
        return self.grpc, self.http

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait()


@contextmanager
def _silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    sys.exit(main())
