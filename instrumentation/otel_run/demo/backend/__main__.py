"""``python -m otel_run.demo.backend [--ai-port 8000] [--cfapi-port 3001] [--llm-url URL] [--db FILE]``:
the reference backend (stand-in for codeflash-internal) in the foreground,
served by gunicorn on both ports, its database created first."""

from __future__ import annotations

import argparse
import os
import sys

from otel_run import _env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otel_run.demo.backend", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ai-port", type=int, default=8000, help="codeflash's local AI service port (fixed: 8000)")
    parser.add_argument("--cfapi-port", type=int, default=3001, help="codeflash's local CF API port (fixed: 3001)")
    parser.add_argument("--llm-url", help="OpenAI-compatible base URL (default: the replay server on :8100)")
    parser.add_argument("--db", help="SQLite file")
    args = parser.parse_args(argv)
    if args.llm_url:
        os.environ[_env.OTEL_RUN_BACKEND_LLM_URL] = args.llm_url
    if args.db:
        os.environ[_env.OTEL_RUN_BACKEND_DB] = os.path.abspath(args.db)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "otel_run.demo.backend.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    from otel_run.demo._serve import serve

    binds = [f"{args.host}:{args.ai_port}"]
    if args.cfapi_port != args.ai_port:
        binds.append(f"{args.host}:{args.cfapi_port}")
    serve("otel_run.demo.backend.wsgi:application", binds, name="otel-run-backend")
    return 0


if __name__ == "__main__":
    sys.exit(main())
