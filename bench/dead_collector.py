"""What a dead collector costs the traced command: otel-run with no endpoint
against otel-run exporting to each kind of dead endpoint, and to a live one.

    .venv/bin/python bench/dead_collector.py [--runs 30] [--rounds 5] [--out results/reliability.md]

Endpoints (all on loopback, all real sockets):

* **refused** — a bound port that does not listen: every connection is refused at once;
* **black hole** — a listening socket nobody accepts on: the kernel completes the
  handshake, the request is never answered (the exporter waits for its deadline);
* **503** — an HTTP server answering every request ``503 Service Unavailable``
  with ``Retry-After: 1`` (the OTLP exporter retries with back-off);
* **live** — ``otel-trace serve``, storing what it receives.

Each is measured for one run (``otel-run -q true``) and for a series
(``otel-run -q --runs 3 true``), with hyperfine in rounds (every round runs
every variant in a shuffled order; the rounds' times are pooled). After each
variant the script waits until its deliverer has finished, so no deliverer works
while another variant is measured. Reported: the median wall time and its
difference from no endpoint, and what the delivery record says happened.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from otel_run.export._outbox import wait_for_deliverers
from startup import _free_port, _listening  # bench/startup.py, next to this script

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NONE, REFUSED, BLACK_HOLE, UNAVAILABLE, LIVE = "no endpoint", "refused", "black hole", "503", "live"
VARIANTS = (NONE, REFUSED, BLACK_HOLE, UNAVAILABLE, LIVE)
COMMANDS = {"one run": ["-q", "true"], "--runs 3": ["-q", "--runs", "3", "true"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per variant over all rounds (default 30)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "results" / "reliability.md"))
    parser.add_argument("--section", default="dead-collector", help="the section of --out this writes")
    args = parser.parse_args(argv)
    rng = random.Random(1)
    otel_run = str(BIN / "otel-run")
    per_round = max(2, -(-args.runs // args.rounds))
    times: dict[tuple[str, str], list[float]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp, _endpoints(tmp) as urls:
        stores = {v: os.path.join(tmp, v.replace(" ", "-")) for v in VARIANTS}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEPARENT"))}
        for round_no in range(args.rounds):
            order = [(c, v) for c in COMMANDS for v in VARIANTS]
            rng.shuffle(order)
            print(f"== round {round_no + 1}/{args.rounds}", file=sys.stderr)
            for command, variant in order:
                variant_env = {"OTEL_RUN_STORE": stores[variant]}
                if urls.get(variant):
                    variant_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = urls[variant]
                line = " ".join(["env", *(f"{k}={v}" for k, v in variant_env.items()), otel_run, *COMMANDS[command]])
                out = os.path.join(tmp, "hyperfine.json")
                subprocess.run(
                    ["hyperfine", "-N", "--warmup", "2", "--runs", str(per_round), "--export-json", out, line],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                with open(out) as f:
                    times.setdefault((command, variant), []).extend(json.load(f)["results"][0]["times"])
                if not wait_for_deliverers(stores[variant], 300):
                    print(f"a deliverer of {variant} is still at work after 300 s", file=sys.stderr)
        for variant in VARIANTS:
            records[variant] = _record(stores[variant])
    report = _report(times, records, args)
    _write_section(Path(args.out), args.section, report)
    print(report)
    return 0


def _record(store: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(store, "export.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _report(
    times: dict[tuple[str, str], list[float]], records: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> str:
    lines = [
        f"<!-- section {args.section}: written by bench/dead_collector.py -->",
        "## A dead collector costs the command nothing",
        "",
        f"`.venv/bin/python bench/dead_collector.py --runs {args.runs} --rounds {args.rounds}` "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, shared): hyperfine `-N`, {args.rounds} shuffled "
        "rounds of every variant, the deliverers drained between variants. Median wall time of the command "
        "as its caller sees it (otel-run's exit), and the difference from the same command with no endpoint.",
        "",
        "| endpoint | `otel-run -q true` | Δ vs no endpoint | `otel-run -q --runs 3 true` | Δ vs no endpoint |",
        "|---|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        cells = []
        for command in COMMANDS:
            median = statistics.median(times[(command, variant)]) * 1000
            base = statistics.median(times[(command, NONE)]) * 1000
            cells += [f"{median:.1f} ms", "—" if variant == NONE else f"{median - base:+.1f} ms"]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "What the delivery record (`export.jsonl`) says the deliverers did, per endpoint:",
        "",
        "| endpoint | runs tried | delivered | not delivered | deliverers | a typical error |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for variant in VARIANTS[1:]:
        record = records[variant]
        failed = [r for r in record if not r.get("ok")]
        error = next((r["error"] for r in failed if not r["error"].startswith("not tried")), "")
        lines.append(
            f"| {variant} | {len(record)} | {len(record) - len(failed)} | {len(failed)} | "
            f"{len({r.get('pid') for r in record})} | {error[:90].replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def _write_section(path: Path, section: str, text: str) -> None:
    """Replace this section of ``path`` (up to the next section marker), or append it."""
    marker = f"<!-- section {section}:"
    old = path.read_text() if path.exists() else "# Reliability\n"
    if marker in old:
        head, rest = old.split(marker, 1)
        _, sep, after = rest.partition("<!-- section ")
        new = head + text + ("\n" + sep + after if sep else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


@contextmanager
def _endpoints(tmp: str) -> Iterator[dict[str, str]]:
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound, never listening
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(4096)  # never accepted
    unavailable = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=unavailable.serve_forever, daemon=True).start()
    live_port = _free_port()
    live = subprocess.Popen(
        [str(BIN / "otel-trace"), "--store", os.path.join(tmp, "received"), "serve", "--port", str(live_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _listening(live_port):
        if time.monotonic() > deadline or live.poll() is not None:
            raise SystemExit("otel-trace serve did not start")
        time.sleep(0.05)
    try:
        yield {
            REFUSED: f"http://127.0.0.1:{refused.getsockname()[1]}",
            BLACK_HOLE: f"http://127.0.0.1:{hole.getsockname()[1]}",
            UNAVAILABLE: f"http://127.0.0.1:{unavailable.server_address[1]}",
            LIVE: f"http://127.0.0.1:{live_port}",
        }
    finally:
        live.terminate()
        live.wait()
        unavailable.shutdown()
        hole.close()
        refused.close()


class _Unavailable(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(503)
        self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())
