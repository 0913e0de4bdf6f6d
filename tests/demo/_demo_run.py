"""The demo for tests/demo/test_e2e.py, as a process of its own so that it can
run in a private network namespace: codeflash's local mode looks for the
backend on the fixed ports 8000 and 3001, which another test suite or demo on
the same machine may hold at the same moment.

    python -m tests.demo._demo_run RESULT.json [--loopback-up]

Runs ``otel-demo`` (its ``main``, in this process) with the environment it was
given — the test gives it a HOME of its own and no OTEL_RUN_STORE, as a new
user has — and writes otel-demo's exit status and the backend's contract drift
to RESULT.json. ``--loopback-up`` first brings up ``lo`` (down in a new network
namespace).
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import sys
import urllib.request
from pathlib import Path
from typing import Any

from otel_run.demo import _cli

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


def main(argv: list[str]) -> int:
    """``otel-demo`` as a user runs it, with whatever ``HOME`` and store the
    environment names; the backend's contract drift is read while it runs."""
    result = Path(argv[0])
    if "--loopback-up" in argv:
        loopback_up()
    drift: list[dict[str, Any]] = []
    real_optimize = _cli.optimize

    def optimize_then_read_the_contract(*args: Any, **kwargs: Any) -> tuple[int, str | None]:
        outcome = real_optimize(*args, **kwargs)
        with urllib.request.urlopen(f"http://127.0.0.1:{_cli.AI_PORT}/internal/contract", timeout=60) as response:
            drift.extend(json.load(response)["drift"])  # while the backend still runs
        return outcome

    _cli.optimize = optimize_then_read_the_contract  # type: ignore[assignment]
    status = _cli.main(["--latency-scale", "0", "--looping-time", "1"])
    sys.stdout.flush()
    result.write_text(json.dumps({"status": status, "drift": drift}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
