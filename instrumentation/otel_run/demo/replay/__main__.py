"""``python -m otel_run.demo.replay [--port 8100] [--cassettes DIR] [--latency-scale 1]
[--record --upstream URL]``: the replay LLM server in the foreground."""

from __future__ import annotations

import argparse
import os
import sys

from otel_run import _env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otel_run.demo.replay", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--cassettes", help="cassette directory")
    parser.add_argument("--latency-scale", type=float, help="multiply recorded latencies (0: answer at once)")
    parser.add_argument("--upstream", help="record mode: forward unknown prompts to this OpenAI-compatible URL")
    args = parser.parse_args(argv)
    if args.cassettes:
        os.environ[_env.OTEL_RUN_REPLAY_CASSETTES] = os.path.abspath(args.cassettes)
    if args.latency_scale is not None:
        os.environ[_env.OTEL_RUN_REPLAY_LATENCY_SCALE] = str(args.latency_scale)
    if args.upstream:
        os.environ[_env.OTEL_RUN_REPLAY_UPSTREAM] = args.upstream
    from otel_run.demo._serve import serve

    serve("otel_run.demo.replay.wsgi:application", [f"{args.host}:{args.port}"], name="otel-run-replay")
    return 0


if __name__ == "__main__":
    sys.exit(main())
