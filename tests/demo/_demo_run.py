"""The demo for tests/demo/test_e2e.py, as a process of its own so that it can
run in a private network namespace: codeflash's local mode looks for the
backend on the fixed ports 8000 and 3001, which another test suite or demo on
the same machine may hold at the same moment.

    python -m tests.demo._demo_run STORE RESULT.json [--loopback-up]

Starts the replay LLM and the reference backend, runs ``otel-run codeflash
optimize foo.py`` on the fixture, and writes codeflash's exit status, the run
id and the backend's contract drift to RESULT.json. ``--loopback-up`` first
brings up ``lo`` (down in a new network namespace).
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import sys
import urllib.request
from pathlib import Path

from otel_run.demo._cli import AI_PORT, _project, optimize, services
from tests.conftest import clean_env

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


def main(argv: list[str]) -> int:
    store, result = argv[0], Path(argv[1])
    if "--loopback-up" in argv:
        loopback_up()
    environ = clean_env(OTEL_RUN_STORE=store)
    project = _project(None)
    with services(project, 8100, 0.0, environ):
        code, run_id = optimize(project, "foo.py", 1.0, environ)
        with urllib.request.urlopen(f"http://127.0.0.1:{AI_PORT}/internal/contract", timeout=60) as response:
            drift = json.load(response)["drift"]
    result.write_text(json.dumps({"code": code, "run_id": run_id, "drift": drift}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
