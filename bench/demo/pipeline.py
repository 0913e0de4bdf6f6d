"""The otel-run demo: a small multi-process pipeline worth one trace.

    otel-run python bench/demo/pipeline.py

1. starts an HTTP service (WSGI + the official OpenTelemetry middleware);
2. runs three workers at once, each through ``sh -c`` (so a non-Python process
   sits between Python processes), each calling the service with a different
   client library (requests, httpx, urllib3): the service's spans continue the
   workers' traces;
3. runs a ``multiprocessing`` pool (spawn start method);
4. stops the service.

Afterwards ``otel-trace show`` shows one tree: otel-run → this script → sh →
worker → HTTP client span → service span, plus the pool workers.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def start_service(port_file: str) -> subprocess.Popen[bytes]:
    service = subprocess.Popen([sys.executable, os.path.join(HERE, "service.py"), "--port-file", port_file])
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file):
        if service.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the demo service did not start")
        time.sleep(0.01)
    return service


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        service = start_service(port_file)
        try:
            with open(port_file) as f:
                port = f.read().strip()
            workers = [
                subprocess.Popen(
                    [
                        "sh",
                        "-c",
                        f"{shlex.quote(sys.executable)} {shlex.quote(os.path.join(HERE, 'worker.py'))} "
                        f"--port {port} --client {client} --calls 3",
                    ]
                )
                for client in ("requests", "httpx", "urllib3")
            ]
            failed = [w.args for w in workers if w.wait() != 0]
            if failed:
                print(f"workers failed: {failed}", file=sys.stderr)
                return 1
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                print("fib:", pool.map(fib, [18, 19, 20, 21]))
        finally:
            service.terminate()
            service.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
