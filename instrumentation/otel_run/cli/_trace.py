"""``otel-trace``: look at, export and send the runs in the store.

    otel-trace list [--label NAME] [-n N] [--format text|json]
    otel-trace show [RUN] [--format text|json] [--all] [--top N]
    otel-trace export [RUN] --format otlp|chrome [-o FILE]
    otel-trace push [RUN] [--endpoint URL]
    otel-trace push --label NAME | --since DATE [--until DATE] [--unpushed] [--endpoint URL]
    otel-trace push --unpushed [--endpoint URL]
    otel-trace serve [--host ADDR] [--port N] [--token TOKEN | --no-token] [--timeout S]

RUN is a run id, a trace id, or a prefix of either; it defaults to the last run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from otel_run import __version__
from otel_run._errors import OtelRunError, UsageError
from otel_run.store._model import Trace
from otel_run.store._store import Run, Store, StoreError


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="otel-trace", description="Look at, export and send the runs otel-run stored.")
    parser.add_argument(
        "--store", metavar="DIR", help="store directory (default: $OTEL_RUN_STORE or ~/.local/share/otel-run)"
    )
    parser.add_argument("-V", "--version", action="version", version=f"otel-trace {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="recent runs")
    p.add_argument("--label", help="only runs with this label")
    p.add_argument("-n", "--limit", type=int, default=20, help="how many runs (default 20; 0 for all)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("show", help="waterfall, processes, critical path, top self time")
    p.add_argument("run", nargs="?", metavar="RUN")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--all", action="store_true", help="show every span, not the first 60")
    p.add_argument("--top", type=int, default=10, metavar="N", help="spans in the self-time ranking")

    p = sub.add_parser("profile", help="a run's CPU or memory profile: top functions, folded stacks, flame graph")
    p.add_argument("run", nargs="?", metavar="RUN")
    p.add_argument("--span", metavar="NAME|ID", help="only this span (every span of that name) and what ran below it")
    p.add_argument("--process", type=int, metavar="PID", help="only this process")
    p.add_argument("--kind", choices=("cpu", "memory"), default="cpu")
    p.add_argument("--format", choices=("text", "collapsed", "speedscope", "html"), default="text")
    p.add_argument("--idle", action="store_true", help="keep samples of threads py-spy deems idle")
    p.add_argument("-n", "--top", type=int, default=20, metavar="N", help="functions in the text table")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    p = sub.add_parser("export", help="write a run as OTLP JSON or Chrome trace JSON")
    p.add_argument("run", nargs="?", metavar="RUN")
    p.add_argument("--format", choices=("otlp", "chrome"), default="otlp")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")

    p = sub.add_parser("push", help="send runs to the OTLP endpoint (one, or a backlog by label/date)")
    p.add_argument("run", nargs="?", metavar="RUN")
    p.add_argument("--endpoint", metavar="URL", help="OTLP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    p.add_argument("--label", help="send every finished run with this label")
    p.add_argument("--since", metavar="DATE", help="send runs started at or after DATE (YYYY-MM-DD[THH:MM[:SS]], UTC)")
    p.add_argument("--until", metavar="DATE", help="... and before DATE")
    p.add_argument(
        "--unpushed",
        action="store_true",
        help="skip runs already sent (alone: every run not sent yet); first waits for a background deliverer at work",
    )

    p = sub.add_parser("serve", help="receive OTLP/HTTP traces from other machines into the store")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=4318, help="port (default 4318, OTLP/HTTP's)")
    p.add_argument(
        "--token",
        help="require 'Authorization: Bearer TOKEN' (default: $OTEL_RUN_SERVE_TOKEN; when unset, "
        "required anyway beyond loopback unless --no-token)",
    )
    p.add_argument(
        "--no-token", action="store_true", help="accept spans without a token even on an address beyond loopback"
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="close a connection idle or sending its headers for S seconds, or whose body stalls (default 30)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no line per request on stderr")
    return parser


class _Store(Store):
    """The store, saying on stderr (once each, one line each) what was wrong in
    what it read: index lines, and the traces commands load."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self._said: set[str] = set()

    def runs(self) -> list[Run]:
        runs = super().runs()
        self.say_warnings(self.warnings)
        return runs

    def load_trace(self, trace_id: str) -> Trace:
        """The trace, its warnings said; raises StoreError when the trace's
        file held data but no span could be read from it."""
        trace = super().load_trace(trace_id)
        self.say_warnings(trace.warnings)
        if not trace.spans and trace.warnings:
            raise StoreError(f"trace {trace_id}: no span could be read ({trace.warnings[0]})")
        return trace

    def say_warnings(self, warnings: list[str]) -> None:
        for warning in warnings:
            if warning not in self._said:
                self._said.add(warning)
                _err(f"otel-trace: warning: {warning}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``otel-trace``; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        store = _Store(Store.from_environ(os.environ, args.store).root)
        try:
            return int(_COMMANDS[args.command](store, args) or 0)
        finally:
            store.say_warnings(store.warnings)  # what reading skipped and was not said yet
    except OtelRunError as exc:
        _err(f"otel-trace: error: {exc}")
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


def _list(store: Store, args: argparse.Namespace) -> int:
    runs = store.runs()
    if args.label:
        runs = [r for r in runs if r.label == args.label]
    if args.limit > 0:
        runs = runs[-args.limit :]
    if args.format == "json":
        _out(json.dumps([r.to_dict() for r in runs], indent=2))
        return 0
    if not runs:
        _err(f"no runs in {store.root}" + (f" with label {args.label!r}" if args.label else ""))
        return 0

    rows = [("RUN", "STARTED", "WALL", "EXIT", "PROCS", "SPANS", "LABEL", "COMMAND")]
    for run in runs:
        rows.append(
            (
                run.run_id[:8],
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.start_ns / 1e9)),
                f"{run.wall_ms / 1000:.3f}s" if run.wall_ms is not None else "running?",
                ("died" if run.died else "") if run.exit_code is None else str(run.exit_code),
                "" if run.processes is None else str(run.processes),
                "" if run.spans is None else str(run.spans),
                run.label or "-",
                " ".join(run.command),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(7)]
    width = shutil.get_terminal_size((120, 24)).columns
    for row in rows:
        cells = [row[i].rjust(widths[i]) if i in (2, 3, 4, 5) else row[i].ljust(widths[i]) for i in range(7)]
        line = "  ".join(cells) + "  " + row[7]
        _out(line if len(line) <= width else line[: width - 1] + "…")
    return 0


def _show(store: Store, args: argparse.Namespace) -> int:
    run = store.find_run(args.run)
    trace = store.load_trace(run.trace_id)
    if args.format == "json":
        from otel_run.analyse._tree import summary

        data: dict[str, Any] = {"run": run.to_dict(), **summary(trace, run.root_span_id, args.top)}
        _out(json.dumps(data, indent=2))
        return 0
    from rich.console import Console

    from otel_run.render._waterfall import render

    width = shutil.get_terminal_size((160, 24)).columns  # COLUMNS, else the terminal, else 160
    profiles = _profiles(store, trace, quiet=True)  # otel-trace profile says what is damaged
    render(trace, run, Console(width=width), max_rows=10**9 if args.all else 60, top=args.top, profiles=profiles)
    return 0


def _profiles(store: Store, trace: Any, quiet: bool = False) -> list[Any]:
    """The CPU/memory profiles of a run recorded with ``--profile`` (none otherwise, and nothing imported),
    converting what the run's end could not convert yet; problems are said unless ``quiet``."""
    from otel_run.store._profiles import raw_dir

    if not os.path.isdir(raw_dir(store.root, trace.trace_id)):
        return []
    from otel_run.analyse._attribute import convert
    from otel_run.analyse._stacks import load_profiles

    problems = convert(store.root, trace, wait_s=0)
    profiles, warnings = load_profiles(store.root, trace)
    if not quiet:
        for problem in problems:
            _err(f"otel-trace: warning: {problem}")
        store.say_warnings(warnings)  # type: ignore[attr-defined]
    return profiles


def _profile(store: Store, args: argparse.Namespace) -> int:
    from otel_run.analyse._stacks import UNITS, select_spans, stacks
    from otel_run.render import _flame

    run = store.find_run(args.run)
    trace = store.load_trace(run.trace_id)
    profiles = _profiles(store, trace)
    if not profiles:
        raise StoreError(f"run {run.run_id[:8]} has no profile (record one with otel-run --profile cpu)")
    chosen = select_spans(trace, args.span)
    found = stacks(profiles, chosen, args.process, args.kind, args.idle)
    unit = UNITS[args.kind]
    title = f"{args.kind} · run {run.run_id[:8]}" + (f" · span {args.span}" if args.span else "")
    if args.format == "collapsed":
        text = _flame.collapsed(found)
    elif args.format == "speedscope":
        text = json.dumps(_flame.speedscope(found, title, unit))
    elif args.format == "html":
        text = _flame.flame_html(found, title, unit)
    else:
        total = sum(v for _, v in found)
        text = title + "\n" + _flame.top_text(_flame.top_functions(found, args.top), unit, total)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        _out(text.rstrip("\n"))
    return 0


def _export(store: Store, args: argparse.Namespace) -> int:
    run = store.find_run(args.run)
    trace = store.load_trace(run.trace_id)
    if args.format == "chrome":
        from otel_run.export._chrome import to_chrome

        data = to_chrome(trace)
    else:
        from otel_run.export._otlpjson import to_otlp_json

        data = to_otlp_json(trace)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as exc:
            raise OtelRunError(f"{args.output}: cannot write: {exc.strerror}") from exc
        _err(f"wrote {len(trace.spans)} spans of run {run.run_id[:8]} to {args.output}")
    else:
        _out(text)
    return 0


def _push(store: Store, args: argparse.Namespace) -> int:
    from otel_run.export._push import push_run

    if not (args.label or args.since or args.until or args.unpushed):
        _err(push_run(store, args.run, os.environ, endpoint=args.endpoint))
        return 0
    if args.run:
        raise UsageError("give either RUN or --label/--since/--until/--unpushed, not both")
    since, until = _date(args.since, "--since"), _date(args.until, "--until")
    if args.unpushed:
        from otel_run.export._outbox import wait_for_deliverers

        if not wait_for_deliverers(store.root, _DELIVERER_WAIT_S):
            _err(f"otel-trace push: a background deliverer is still at work after {_DELIVERER_WAIT_S:.0f} s; going on")
    runs = [
        r
        for r in store.runs()
        if (r.finished or r.died)
        and (args.label is None or r.label == args.label)
        and (since is None or r.start_ns >= since)
        and (until is None or r.start_ns < until)
        and not (args.unpushed and store.was_pushed(r))
    ]
    if not runs:
        _err("otel-trace push: no runs match")
        return 0
    failed = 0
    for run in runs:
        try:
            _err(f"{run.run_id[:8]}: " + push_run(store, run.run_id, os.environ, endpoint=args.endpoint))
        except OtelRunError as exc:
            failed += 1
            _err(f"{run.run_id[:8]}: not sent ({exc})")
    _err(f"otel-trace push: {len(runs) - failed} of {len(runs)} runs sent")
    return 1 if failed else 0


_DELIVERER_WAIT_S = 60.0
"""How long ``push --unpushed`` waits for a background deliverer to finish."""


def _date(text: str | None, flag: str) -> int | None:
    """A UTC date or date-time as epoch nanoseconds."""
    if text is None:
        return None
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1e9)


def _serve(store: Store, args: argparse.Namespace) -> int:
    from otel_run import _env
    from otel_run.store._receiver import serve

    token = args.token or os.environ.get(_env.OTEL_RUN_SERVE_TOKEN) or None
    if token and args.no_token:
        raise UsageError("--no-token: a token is set (--token or OTEL_RUN_SERVE_TOKEN): not both")
    try:
        server = serve(
            store.root, args.host, args.port, token, quiet=args.quiet, timeout=args.timeout, anyone=args.no_token
        )
    except OSError as exc:
        raise OtelRunError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    host, port = str(server.server_address[0]), int(server.server_address[1])
    host = f"[{host}]" if ":" in host else host
    needs = " (token required)" if token else ""
    _err(f"otel-trace serve: OTLP/HTTP on http://{host}:{port}/v1/traces → {store.root}{needs}")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


def _seconds(text: str) -> float:
    """A positive number of seconds (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


_COMMANDS = {"list": _list, "show": _show, "profile": _profile, "export": _export, "push": _push, "serve": _serve}


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


__all__ = ["Run", "main"]
