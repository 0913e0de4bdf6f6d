"""``otel-run --runs N [--warmup W] --label NAME -- COMMAND``: a series of runs.

The command runs W + N times, one after another, each run its own trace in the
store with the label, the git commit and the series id (warm-ups are stored
too, marked ``warmup``, and left out by span-diff). Like hyperfine: stdin is
``/dev/null`` and output is discarded (``--show-output`` passes it through);
a failing run's last lines of stderr are shown, the run is reported and left
out of the statistics, and the series exits with the first failure's status.
Ctrl-C stops the series after the current run. When the runs are exported,
one background deliverer is started after the last run for the whole series,
so no delivery competes with a measured run.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from otel_run import _wire
from otel_run._redact import redact_text
from otel_run.run._cli import Options, _hand_off, _say, _wants_export, run
from otel_run.run._supervise import Child

_BAR = 24


class _Result:
    __slots__ = ("code", "index", "stderr_tail", "sys_s", "user_s", "wall_s", "warmup")

    def __init__(self, index: int, warmup: bool, code: int, child: Child, stderr_tail: str) -> None:
        self.index = index
        self.warmup = warmup
        self.code = code
        self.wall_s = (child.end_ns - child.spawn_ns) / 1e9 if child.end_ns else 0.0
        usage = child.rusage
        self.user_s = usage.ru_utime if usage is not None else 0.0
        self.sys_s = usage.ru_stime if usage is not None else 0.0
        self.stderr_tail = stderr_tail


def repeat(opts: Options, environ: Mapping[str, str]) -> int:
    """Run the series; returns 0, or the exit status of the first failed run."""
    runs = opts.runs or 1
    total = opts.warmup + runs
    series = _wire.new_span_id()
    _wire.learn_secrets(environ)  # a label may quote a credential of the environment
    label = redact_text(opts.label) if opts.label else f"series-{series[:8]}"
    single = Options()
    for name in Options.__slots__:
        setattr(single, name, getattr(opts, name))
    single.label, single.quiet = label, True
    tty = _isatty()
    results: list[_Result] = []
    _say(
        f"otel-run: {runs} run{'s' if runs != 1 else ''}"
        + (f" + {opts.warmup} warm-up{'s' if opts.warmup != 1 else ''}" if opts.warmup else "")
        + f" of {_wire.command_name(opts.command)} · label {label}"
    )
    for i in range(total):
        warmup = i < opts.warmup
        _progress(i, total, opts.warmup, results, tty)
        child = Child()
        with _stdio(opts.show_output) as (actions, err_path):
            code = run(
                single,
                environ,
                child=child,
                file_actions=actions,
                series={"series": series, "repeat": i, "warmup": warmup},
            )
            tail = _tail(err_path) if code != 0 and err_path else ""
        result = _Result(i, warmup, code, child, tail)
        results.append(result)
        if not tty or code != 0:
            _progress_line(result, opts.warmup, runs, tty)
        if code in (130, 143) or (code and child.end_ns == 0):  # interrupted, or could not start at all
            break
    if tty:
        sys.stderr.write("\r\033[K")
    _summary(results, label, runs)
    if _wants_export(opts, environ):
        _export(opts, environ, series)
    failed = [r for r in results if r.code != 0]
    return failed[0].code if failed else 0


# ------------------------------------------------------------------ private


def _export(opts: Options, environ: Mapping[str, str], series: str) -> None:
    """Hand every stored run of the series to one deliverer."""
    from otel_run.store._layout import store_root
    from otel_run.store._store import Store

    try:
        store = Store(store_root(environ, opts.store))
        done = [r for r in store.runs() if r.series == series and r.finished]
    except Exception as exc:
        _say(f"otel-run: warning: the series was not handed to the deliverer: {exc}")
        return
    if done:
        _say(
            "otel-run: "
            + _hand_off(store.root, [r.run_id for r in done], sum(r.spans or 0 for r in done), opts.endpoint, environ)
        )


class _stdio:
    """posix_spawn file actions: stdin from /dev/null, stdout discarded,
    stderr kept in a temporary file (for a failure's last lines)."""

    def __init__(self, show_output: bool) -> None:
        self.show_output = show_output
        self.path: str | None = None

    def __enter__(self) -> tuple[list[Any], str | None]:
        actions: list[Any] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
        if self.show_output:
            return actions, None
        fd, self.path = tempfile.mkstemp(prefix="otel-run-stderr-")
        os.close(fd)
        actions.append((os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0))
        actions.append((os.POSIX_SPAWN_OPEN, 2, self.path, os.O_WRONLY | os.O_TRUNC, 0o600))
        return actions, self.path

    def __exit__(self, *exc: object) -> None:
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _progress(i: int, total: int, warmups: int, results: list[_Result], tty: bool) -> None:
    if not tty:
        return
    done = int(_BAR * i / total)
    timed = [r.wall_s for r in results if not r.warmup and r.code == 0]
    eta = ""
    if results:
        mean = sum(r.wall_s for r in results) / len(results)
        eta = f" ETA {_fmt(mean * (total - i))}"
    what = "warm-up" if i < warmups else "run"
    current = f" · last {_fmt(timed[-1])}" if timed else ""
    sys.stderr.write(f"\r\033[K  {what} {i + 1}/{total} [{'█' * done}{'░' * (_BAR - done)}]{current}{eta}")
    sys.stderr.flush()


def _progress_line(result: _Result, warmups: int, runs: int, tty: bool) -> None:
    if tty:
        sys.stderr.write("\r\033[K")
    what = f"warm-up {result.index + 1}/{warmups}" if result.warmup else f"run {result.index - warmups + 1}/{runs}"
    status = "ok" if result.code == 0 else f"FAILED (exit {result.code})"
    _say(f"  {what}: {_fmt(result.wall_s)} {status}")
    if result.stderr_tail:
        for line in result.stderr_tail.splitlines():
            _say(f"    | {line}")


def _summary(results: list[_Result], label: str, runs: int) -> None:
    timed = [r for r in results if not r.warmup]
    ok = [r for r in timed if r.code == 0]
    failed = [r for r in timed if r.code != 0]
    if ok:
        walls = sorted(r.wall_s for r in ok)
        n = len(walls)
        mean = sum(walls) / n
        sd = (sum((w - mean) ** 2 for w in walls) / (n - 1)) ** 0.5 if n > 1 else 0.0
        med = walls[n // 2] if n % 2 else (walls[n // 2 - 1] + walls[n // 2]) / 2
        user = sum(r.user_s for r in ok) / n
        system = sum(r.sys_s for r in ok) / n
        _say(f"  Time (mean ± σ):   {_fmt(mean):>10} ± {_fmt(sd):>9}    [User: {_fmt(user)}, System: {_fmt(system)}]")
        _say(f"  Time (median):     {_fmt(med):>10}")
        _say(f"  Range (min … max): {_fmt(walls[0]):>10} … {_fmt(walls[-1])}    {n} run{'s' if n != 1 else ''}")
    if failed:
        codes = ", ".join(f"run {r.index - (len(results) - len(timed)) + 1}: exit {r.code}" for r in failed[:5])
        runs_word = "runs" if len(timed) != 1 else "run"
        _say(f"  Failed: {len(failed)} of {len(timed)} {runs_word} ({codes}); left out of the times")
    if len(timed) < runs:
        _say(f"  Stopped after {len(timed)} of {runs} runs")
    _say(f"otel-run: label {label} · compare: span-diff {label} OTHER_LABEL · list: otel-trace list --label {label}")


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    return f"{seconds * 1000:.1f} ms"


def _isatty() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return False
