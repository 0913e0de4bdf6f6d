"""A small HTTP service for the demo and the tests: a WSGI app wrapped in the
official OpenTelemetry WSGI middleware, served by ``wsgiref`` on loopback.

    python service.py --port-file FILE [--port 0]

It writes the port it listens on to FILE, answers ``GET /work?ms=N`` after
burning N milliseconds of CPU, ``GET /health``, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/health":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    if path == "/work":
        query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
        ms = float(query.get("ms", "5"))
        deadline = time.perf_counter() + ms / 1000
        n = 0
        while time.perf_counter() < deadline:
            n += 1
        body = json.dumps({"iterations": n, "pid": os.getpid()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)
    server: WSGIServer = make_server("127.0.0.1", args.port, OpenTelemetryMiddleware(app), handler_class=_QuietHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_port))
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
