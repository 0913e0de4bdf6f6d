"""``span-diff BEFORE AFTER``: which spans got faster or slower, whether it is
real or noise, and what changed in structure.

    span-diff BEFORE AFTER [--format text|md|json|html] [-o FILE] [--top N | --all]
              [--metric ATTR]... [--normalize REGEX]... [--alpha A] [--fail-above PCT]
              [--functions] [--paired]

BEFORE and AFTER are each a label in the store (``otel-run --runs 30 --label
NAME -- CMD``), a file or directory of OTLP JSON (``otel-trace export``, a
Collector file exporter, Tempo's API), or comma-separated run/trace ids;
``label:NAME`` and ``runs:ID,…`` say which when a name is ambiguous.

``--functions`` compares the runs' profiles (``otel-run --profile cpu``, and
``memory``) function by function instead: each function's self time per run,
and its bytes allocated per run, with the same statistics
(:mod:`otel_run.analyse._functions`). Only runs in the store have profiles.

``--paired`` takes run i before and run i after as a pair (the rounds of an
interleaved benchmark, in the order they ran) and tests the per-pair
differences with the Wilcoxon signed-rank test: drift between rounds cancels.

Exit status: 0; 1 for bad input (one line on stderr naming it); 2 for bad
usage; 3 when ``--fail-above PCT`` is given and the root or any path got
significantly slower by more than PCT percent.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from otel_run import __version__
from otel_run._errors import OtelRunError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from otel_run.analyse._diff import DiffResult

GATE_FAILED = 3


class _Parser(argparse.ArgumentParser):
    """argparse, with errors on one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="span-diff",
        description="Statistical before/after of two sets of traces, span path by span path.",
        epilog="Exit status: 0 ok, 1 bad input, 2 bad usage, 3 --fail-above exceeded.",
    )
    p.add_argument("before", metavar="BEFORE", help="label, OTLP JSON file or directory, or run ids (a,b,c)")
    p.add_argument("after", metavar="AFTER", help="the same, for after the change")
    p.add_argument("--format", choices=("text", "md", "json", "html"), default="text", help="output (default: text)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--top", type=_positive_int, default=20, metavar="N", help="show the N rows of most impact (20)")
    p.add_argument("--all", action="store_true", help="show every path")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="ATTR",
        help="also compare this numeric span attribute, summed per path and run (repeatable)",
    )
    p.add_argument(
        "--normalize",
        action="append",
        default=[],
        metavar="REGEX",
        help="also replace matches of REGEX in span names before matching (repeatable)",
    )
    p.add_argument(
        "--functions",
        action="store_true",
        help="compare functions' self time (and bytes allocated) from the runs' profiles (otel-run --profile cpu)",
    )
    p.add_argument(
        "--paired",
        action="store_true",
        help="run i before and run i after are a pair (interleaved rounds): Wilcoxon signed-rank on the differences",
    )
    p.add_argument("--alpha", type=_alpha, default=0.05, help="significance level (default 0.05)")
    p.add_argument(
        "--fail-above",
        type=float,
        metavar="PCT",
        help="exit 3 when the root or any path got significantly slower by more than PCT percent",
    )
    p.add_argument(
        "--store", metavar="DIR", help="store directory (default: $OTEL_RUN_STORE or ~/.local/share/otel-run)"
    )
    p.add_argument("--workers", type=_positive_int, help="processes reading traces (default: one per CPU)")
    p.add_argument("-V", "--version", action="version", version=f"span-diff {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``span-diff``; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return run(args, os.environ)
    except OtelRunError as exc:
        _err(f"span-diff: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import gc
    import re

    # Reading builds millions of short-lived containers and no cycles; the cyclic
    # collector's passes over them took up to half the time (and made it erratic).
    gc.disable()

    from otel_run.analyse._diff import diff, significant_slowdowns
    from otel_run.analyse._paths import Normalizer
    from otel_run.analyse._sides import load, resolve
    from otel_run.store._store import Store

    if args.functions and args.metric:
        raise UsageError("--metric compares span attributes: it does not go with --functions")
    for pattern in args.normalize:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--normalize {pattern!r}: not a regular expression ({exc})") from None
    store = Store.from_environ(environ, args.store)
    before_side = resolve("before", args.before, store)
    after_side = resolve("after", args.after, store)
    normalize = Normalizer(args.normalize)
    before = load(before_side, normalize, args.metric, args.workers)
    after = load(after_side, normalize, args.metric, args.workers)
    names = (args.before, args.after)
    if args.functions:
        from otel_run.analyse._functions import diff_functions, load_functions

        result = diff_functions(
            load_functions(before_side, before, store),
            load_functions(after_side, after, store),
            alpha=args.alpha,
            names=names,
            paired=args.paired,
        )
    else:
        result = diff(before, after, alpha=args.alpha, metrics=args.metric, names=names, paired=args.paired)
    result.warnings[:0] = before_side.warnings + after_side.warnings
    top = None if args.all else args.top
    _write(result, args.format, top, args.output)
    if args.fail_above is not None:
        slower = significant_slowdowns(result, args.fail_above)
        if slower:
            from otel_run.render._diff import _path

            worst = max(slower, key=lambda r: r.change_pct or 0.0)
            what = f"span-diff: {len(slower)} {result.subject}(s) significantly slower"
            _err(
                f"{what} by more than {args.fail_above:g}%, e.g. {_path(worst.path)} {worst.change_pct:+.1f}%"
                if worst.change_pct is not None
                else f"{what}, e.g. {_path(worst.path)} (new)"
            )
            return GATE_FAILED
    return 0


def _write(result: DiffResult, fmt: str, top: int | None, output: str | None) -> None:
    from otel_run.render import _diff as render

    if fmt == "text":
        from rich.console import Console

        if output:
            with open(output, "w", encoding="utf-8") as f:
                render.to_console(result, top, Console(file=f, width=160, no_color=True))
        else:
            import shutil

            width = shutil.get_terminal_size((160, 24)).columns
            render.to_console(result, top, Console(width=width))
        return
    if fmt == "json":
        import json

        text = json.dumps(render.to_data(result, top), indent=2) + "\n"
    elif fmt == "md":
        text = render.to_markdown(result, top)
    else:
        text = render.to_html(result, top)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise OtelRunError(f"{output}: cannot write: {exc.strerror}") from exc
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text!r}")
    return value


def _err(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
