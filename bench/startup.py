"""Start-up cost of tracing: bare vs otel-run vs opentelemetry-instrument.

    .venv/bin/python bench/startup.py [--runs 40] [--out results/startup.md]

Runs hyperfine (Debian package ``hyperfine``) side by side. The machine's speed
drifts over minutes and hyperfine runs all runs of one command before the next,
so each workload is measured in rounds (every round runs every variant) and the
rounds' times are pooled:

* ``python -c pass`` and ``codeflash --version`` (codeflash pinned from PyPI);
* bare; under ``otel-run`` (embedded store, the default); under ``otel-run``
  also exporting over OTLP; under ``opentelemetry-instrument`` configured with
  the OTLP exporter as a user would (``opentelemetry-distro`` defaults).

The OTLP endpoint is a real collector, rotel, listening on loopback and
discarding what it receives (``--exporter blackhole``), so exporters do not
measure connection errors. Our package is byte-compiled first (an editable
install under ``PYTHONDONTWRITEBYTECODE`` would otherwise recompile it in every
process, which no real install does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per variant over all rounds (default 40)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds (default 4)")
    parser.add_argument("--warmup", type=int, default=5)
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
    with tempfile.TemporaryDirectory() as tmp, _collector() as (grpc, http):
        store = os.path.join(tmp, "store")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE"))}
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        env_files = {
            "bare": {},
            "otel-run": {"OTEL_RUN_STORE": store},
            "otel-run+otlp": {"OTEL_RUN_STORE": store, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http}"},
            "opentelemetry-instrument": {
                "OTEL_SERVICE_NAME": "bench",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc}",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            },
        }
        prefixes = {
            "bare": [],
            "otel-run": [otel_run],
            "otel-run+otlp": [otel_run],
            "opentelemetry-instrument": [instrument],
        }
        workloads = {"python -c pass": [python, "-c", "pass"], "codeflash --version": [codeflash, "--version"]}
        results: dict[str, dict[str, dict[str, float]]] = {}
        for workload, cmd in workloads.items():
            commands, names = [], []
            for variant, prefix in prefixes.items():
                env = " ".join(f"{k}={v}" for k, v in env_files[variant].items())
                commands.append(f"env {env} {' '.join(prefix + cmd)}" if env else " ".join(["env", *prefix, *cmd]))
                names.append(variant)
            pooled: dict[str, dict[str, list[float]]] = {n: {"times": [], "user": [], "system": []} for n in names}
            per_round = max(2, -(-args.runs // args.rounds))
            for round_no in range(args.rounds):
                out = os.path.join(tmp, "h.json")
                hyperfine = ["hyperfine", "-N", "--warmup", str(args.warmup), "--runs", str(per_round)]
                hyperfine += ["--export-json", out]
                for name, command in zip(names, commands, strict=True):
                    hyperfine += ["-n", name, command]
                print(f"== {workload}, round {round_no + 1}/{args.rounds}", file=sys.stderr)
                subprocess.run(hyperfine, env=base_env, check=True, stdout=sys.stderr)
                with open(out) as f:
                    for r in json.load(f)["results"]:
                        pooled[r["command"]]["times"] += r["times"]
                        pooled[r["command"]]["user"] += [r["user"]] * len(r["times"])
                        pooled[r["command"]]["system"] += [r["system"]] * len(r["times"])
            results[workload] = {name: _stats(p) for name, p in pooled.items()}
    report = _report(results, args) + _importtime(python, otel_run)
    Path(args.out).write_text(report)
    print(report)
    return 0


def _importtime(python: str, otel_run: str, runs: int = 15) -> str:
    """Where otel-run's own start-up goes: ``-X importtime`` of the otel-run
    process and of a traced child's bootstrap (median self time per module)."""
    import statistics

    def profile(argv: list[str], env: dict[str, str]) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for _ in range(runs):
            err = subprocess.run(argv, env=env, capture_output=True, text=True, check=False).stderr
            for line in err.splitlines():
                parts = line.split("|")
                if len(parts) == 3 and parts[0].split(":")[-1].strip().isdigit():
                    name = parts[2].strip()
                    if name.startswith(("otel_run", "sitecustomize", "__future__", "_json", "resource")):
                        found.setdefault(name, []).append(int(parts[0].split(":")[-1]))
        return found

    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE", "PYTHONDONTWRITE"))}
        env["OTEL_RUN_STORE"] = tmp
        own = profile([python, "-X", "importtime", otel_run, "-q", "true"], env)
        own.pop("sitecustomize", None)  # the failed look-up every Python makes, not ours
        child = profile([otel_run, "-q", python, "-X", "importtime", "-c", "pass"], env)
    lines = [
        "",
        "## Where otel-run's own time goes",
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


def _stats(pooled: dict[str, list[float]]) -> dict[str, float]:
    import statistics

    times = [t * 1e3 for t in pooled["times"]]
    return {
        "mean": statistics.fmean(times),
        "stddev": statistics.stdev(times),
        "median": statistics.median(times),
        "user": statistics.fmean(pooled["user"]) * 1e3,
        "system": statistics.fmean(pooled["system"]) * 1e3,
        "runs": len(times),
    }


def _report(results: dict[str, dict[str, dict[str, float]]], args: argparse.Namespace) -> str:
    from importlib.metadata import version

    lines = [
        "# Start-up: bare vs otel-run vs opentelemetry-instrument",
        "",
        "Made by `make bench` (`.venv/bin/python bench/startup.py"
        + (f" --runs {args.runs}" if args.runs != 40 else "")
        + (f" --rounds {args.rounds}" if args.rounds != 4 else "")
        + f"`): hyperfine `-N --warmup {args.warmup}`, {args.rounds} rounds of every variant, "
        f"{args.runs} runs per variant pooled. Every command is started through `env` (same cost for all). "
        "The OTLP endpoint is rotel on loopback, discarding what it receives.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}. codeflash {version('codeflash')}, opentelemetry-sdk "
        f"{version('opentelemetry-sdk')}, opentelemetry-instrumentation {version('opentelemetry-instrumentation')}.",
        "",
        "| workload | variant | median ms | mean ± σ ms | user ms | sys ms | × bare (median) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for workload, variants in results.items():
        bare = variants["bare"]["median"]
        for name, r in variants.items():
            lines.append(
                f"| `{workload}` | {name} | {r['median']:.1f} | {r['mean']:.1f} ± {r['stddev']:.1f} | "
                f"{r['user']:.1f} | {r['system']:.1f} | {r['median'] / bare:.2f}× |"
            )
    lines.append("")
    return "\n".join(lines)


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    sys.exit(main())
