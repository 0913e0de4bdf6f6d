"""``otel-run [OPTIONS] [--] COMMAND [ARGS...]``: run a command as one trace.

otel-run is on the critical path of what it measures, so this module keeps its
start-up cheap: options are parsed by hand (``argparse`` imports ``re`` and
``gettext``, about 10 ms here), the command is spawned before anything that is
not needed to spawn it, and the rest of otel-run's work (writing the index,
reading the git commit, importing ``json``) runs while the command runs.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # not ``signal``: it imports ``enum``
import os
import sys
from time import time_ns

from otel_run import __version__, _env, _wire
from otel_run._errors import OtelRunError, UsageError
from otel_run.bootstrap import _children
from otel_run.run._supervise import Child, take_caller_state
from otel_run.store._layout import create_store, store_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from otel_run.export._outbox import Spare
    from otel_run.run._container import ContainerRun
    from otel_run.run._record import RunRecord
    from otel_run.store._model import Trace

USAGE = """\
usage: otel-run [OPTIONS] [--] COMMAND [ARGS...]

Run COMMAND as one OpenTelemetry trace across its whole process tree: every
Python process it starts, at any depth, is traced without changing its code;
other processes get a span from their parent's view. The run is stored locally
(otel-trace list/show/export/push) and, when an OTLP endpoint is configured,
also sent to it. Exit status, stdio and signals pass through unchanged.

options:
  -l, --label NAME         label the run (otel-trace list --label NAME)
  -s, --service-name NAME  service.name of the root span (default: otel-run)
      --store DIR          store directory (default: $OTEL_RUN_STORE,
                           else $XDG_DATA_HOME/otel-run or ~/.local/share/otel-run)
      --export             also send the run over OTLP, from a background
                           deliverer otel-run does not wait for (the default
                           when OTEL_EXPORTER_OTLP_ENDPOINT is set)
      --no-export          do not send the run
      --endpoint URL       OTLP endpoint to send the run to (implies --export)
  -q, --quiet              print no summary on stderr
      --runs N             run the command N times, each run its own trace with
                           the same label; a hyperfine-like summary at the end
                           (stdin is /dev/null, output is discarded)
      --warmup N           first run it N more times, stored as warm-ups (not
                           compared by span-diff)
      --show-output        with --runs: pass the command's stdout/stderr through
      --no-container-mount with `docker|podman run`: do not bind-mount otel-run's
                           bootstrap into the container (it still gets the
                           trace context)
      --profile KINDS      profile every Python process of the trace, each
                           sample attributed to its span: cpu (py-spy),
                           memory (memray), imports (an `import MODULE` span
                           per slow import); comma-separated (otel-trace profile)
      --profile-rate HZ    py-spy samples per second (default 100)
      --import-threshold MS  imports faster than this (cumulative) are summed
                           into their parent, not made spans (default 1)
  -V, --version            print the version and exit
  -h, --help               show this help and exit
"""


class Options:
    __slots__ = (
        "command",
        "container_mount",
        "endpoint",
        "export",
        "help",
        "import_threshold",
        "label",
        "profile",
        "profile_rate",
        "quiet",
        "runs",
        "service_name",
        "show_output",
        "store",
        "version",
        "warmup",
    )

    def __init__(self) -> None:
        self.command: list[str] = []
        self.label: str | None = None
        self.service_name = "otel-run"
        self.store: str | None = None
        self.export: bool | None = None
        self.endpoint: str | None = None
        self.quiet = False
        self.help = False
        self.version = False
        self.runs: int | None = None
        self.warmup = 0
        self.show_output = False
        self.container_mount: bool | None = None
        self.profile: list[str] | None = None
        self.profile_rate: int | None = None
        self.import_threshold: float | None = None


_VALUED = {
    "-l": "label",
    "--label": "label",
    "-s": "service_name",
    "--service-name": "service_name",
    "--store": "store",
    "--endpoint": "endpoint",
    "--runs": "runs",
    "--warmup": "warmup",
    "--profile": "profile",
    "--profile-rate": "profile_rate",
    "--import-threshold": "import_threshold",
}
_COUNTS = {"runs": 1, "warmup": 0, "profile_rate": 1}  # options taking a whole number, and their least value
_FLAGS = {
    "-q": ("quiet", True),
    "--quiet": ("quiet", True),
    "-h": ("help", True),
    "--help": ("help", True),
    "-V": ("version", True),
    "--version": ("version", True),
    "--export": ("export", True),
    "--no-export": ("export", False),
    "--show-output": ("show_output", True),
    "--no-container-mount": ("container_mount", False),
}


def parse_args(argv: Sequence[str]) -> Options:
    """Options up to the first non-option (or ``--``); the rest is the command."""
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=")
        if name in _VALUED:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"option {name} needs a value")
                i += 1
                value = argv[i]
            if not value:
                raise UsageError(f"option {name} needs a non-empty value")
            attr = _VALUED[name]
            if attr in _COUNTS:
                if not value.isdigit() or int(value) < _COUNTS[attr]:
                    raise UsageError(f"option {name} needs a whole number of at least {_COUNTS[attr]}, got {value!r}")
                setattr(opts, attr, int(value))
            elif attr == "profile":
                opts.profile = profile_kinds(value, name)
            elif attr == "import_threshold":
                opts.import_threshold = _milliseconds(value, name)
            else:
                setattr(opts, attr, value)
        elif arg in _FLAGS:
            attr, flag = _FLAGS[arg]
            setattr(opts, attr, flag)
        else:
            raise UsageError(f"unknown option {arg!r} (try: otel-run --help)")
        i += 1
    opts.command = list(argv[i:])
    if opts.endpoint and opts.export is None:
        opts.export = True
    if opts.profile_rate is not None and opts.profile_rate > MAX_PROFILE_RATE:
        raise UsageError(f"option --profile-rate needs at most {MAX_PROFILE_RATE} Hz, got {opts.profile_rate}")
    if not opts.command and not (opts.help or opts.version):
        raise UsageError("no command given (usage: otel-run [OPTIONS] [--] COMMAND [ARGS...])")
    return opts


PROFILE_KINDS = ("cpu", "memory", "imports")
MAX_PROFILE_RATE = 10_000


def profile_kinds(value: str, what: str) -> list[str]:
    """The kinds of ``--profile``/``OTEL_RUN_PROFILE`` (``what`` names which), validated."""
    kinds = [k.strip().lower() for k in value.split(",") if k.strip()]
    bad = [k for k in kinds if k not in PROFILE_KINDS]
    if bad or not kinds:
        problem = f"unknown profile kind {bad[0]!r}" if bad else "no profile kind given"
        raise UsageError(f"{what}: {problem} (valid: {', '.join(PROFILE_KINDS)})")
    return [k for k in PROFILE_KINDS if k in kinds]


def _milliseconds(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not (0 <= number < 1e9):
        raise UsageError(f"option {what} needs a number of milliseconds (0 or more), got {value!r}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``otel-run``; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    take_caller_state(os.environ)
    try:
        opts = parse_args(args)
    except OtelRunError as exc:
        _say(f"otel-run: error: {exc}")
        return exc.exit_code
    if opts.help:
        sys.stdout.write(USAGE)
        return 0
    if opts.version:
        sys.stdout.write(f"otel-run {__version__}\n")
        return 0
    try:
        if opts.profile is None and os.environ.get(_env.OTEL_RUN_PROFILE, "").strip():
            opts.profile = profile_kinds(os.environ[_env.OTEL_RUN_PROFILE], _env.OTEL_RUN_PROFILE)
    except OtelRunError as exc:
        _say(f"otel-run: error: {exc}")
        return exc.exit_code
    if opts.runs is not None or opts.warmup:
        from otel_run.run._repeat import repeat

        return repeat(opts, os.environ)
    return run(opts, os.environ)


def launch() -> None:
    """Run :func:`main` and exit without interpreter finalisation (~2 ms here):
    otel-run writes everything with ``os.write``; only stdio needs a flush.

    A command killed by signal N makes otel-run die of N too, after recording
    it: the caller sees what it would see without otel-run (a shell loop stops
    on Ctrl-C only when its child *died* of SIGINT; a caller's ``waitpid`` sees
    a signal, not 128+N)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if _died_of and code == 128 + _died_of[-1]:
        _die_of(_died_of[-1])
    os._exit(code)


_died_of: list[int] = []
"""The signal the last command otel-run ran died of (for :func:`launch`)."""


def _die_of(signum: int) -> None:
    """Die of ``signum`` as the command did, without leaving a core file of our own."""
    try:
        if signum in _CORE_DUMPING:
            import resource  # a C module: no enum, no start-up cost until here

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if signum not in (_signal.SIGKILL, _signal.SIGSTOP):  # these two cannot be caught, ignored or blocked
            _signal.signal(signum, _signal.SIG_DFL)
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
    except (OSError, ValueError):
        pass  # then the exit status says it: 128+N


def run(
    opts: Options,
    environ: Mapping[str, str],
    *,
    child: Child | None = None,
    file_actions: list[Any] | None = None,
    series: dict[str, Any] | None = None,
) -> int:
    """Run the command; the return value is its exit status (128+N on signal N).

    Only what spawning needs happens before the spawn; otel-run's own
    bookkeeping overlaps the command (see :class:`_Finisher`). ``otel-run
    --runs`` passes ``child`` (to read its times after), ``file_actions`` (its
    stdio) and ``series`` (what the index records of the series).
    """
    store = store_root(environ, opts.store)
    context = _wire.parse_traceparent(environ.get(_env.TRACEPARENT))
    trace_id = context[0] if context else _wire.new_trace_id()
    root_id, child_id = _wire.new_span_id(), _wire.new_span_id()
    env = dict(environ)
    tracing = True
    spawn_ns = time_ns()
    try:
        create_store(store)  # 0700 whatever the umask
        _children.prepare_environment(env, trace_id, child_id, root_id, os.getpid(), "c", spawn_ns, store)
        env[_env.OTEL_RUN_PYLIB] = _pylib()
        if opts.profile:
            _profile_environment(opts, env)
    except OSError as exc:
        _say(f"otel-run: warning: cannot use the store {store}: {exc.strerror}; running untraced")
        tracing = False
        env = dict(environ)

    command = opts.command
    container = None
    if tracing and os.path.basename(command[0]) in ("docker", "podman"):
        container, command = _container_command(opts, environ, env, trace_id, store)
    child = child if child is not None else Child()
    try:
        child.spawn(command, env, spawn_ns, file_actions)
        error: OSError | None = None
    except OSError as exc:
        error = exc
    finisher = None
    if tracing:
        finisher = _Finisher(opts, environ, store, trace_id, context[1] if context else None, root_id, child_id)
        if series is not None:
            finisher.series, finisher.start_ns = series, spawn_ns
        finisher.container = container
    if error is not None:
        _wire.learn_secrets(environ)
        code, message = _spawn_error(opts.command[0], error)
        _say(f"otel-run: {message}")
        if finisher is not None:
            finisher.failed(code, message)
        return code
    if finisher is not None:
        _wire.learn_secrets(environ)
        if container is not None:
            _safely(lambda: container.listen(env, spawn_ns))
        finisher.while_running(child)
    child.wait()
    if finisher is not None:
        finisher.after(child)
    if child.signal is not None:
        _died_of.append(child.signal)
    return child.exit_code


class _Finisher:
    """otel-run's own work: some while the command runs, the rest after it.
    Nothing here may change the command's exit status or output."""

    def __init__(
        self,
        opts: Options,
        environ: Mapping[str, str],
        store: str,
        trace_id: str,
        parent_id: str | None,
        root_id: str,
        child_id: str,
    ) -> None:
        self.opts = opts
        self.environ = environ
        self.record: RunRecord | None = None
        self._ids = (store, trace_id, parent_id, root_id, child_id)
        self.series: dict[str, Any] | None = None
        self.start_ns: int | None = None
        self.container: ContainerRun | None = None
        self.spare: Spare | None = None
        """The deliverer-to-be started while the command runs (when exporting one run)."""
        self.notice: str | None = None
        """Earlier runs the deliverer could not send (said even with ``-q``)."""

    def _record(self) -> RunRecord:
        if self.record is None:
            from otel_run.run._ci import ci_attributes
            from otel_run.run._record import RunRecord

            store, trace_id, parent_id, root_id, child_id = self._ids
            self.record = RunRecord(
                store,
                self.opts.command,
                trace_id=trace_id,
                parent_id=parent_id,
                root_id=root_id,
                child_id=child_id,
                service_name=self.opts.service_name,
                label=self.opts.label,
                start_ns=self.start_ns,
                series=self.series,
                extra_attributes=ci_attributes(self.environ),
            )
        return self.record

    def while_running(self, child: Child) -> None:
        def work() -> None:
            from otel_run.run._git import head_commit
            from otel_run.store import _store  # noqa: F401 - loaded now, used after the command

            record = self._record()
            record.write_root_start()
            record.write_child_start(child)  # if otel-run dies, the command is still in the trace
            record.append_index(record.index_start())
            record.git_commit = head_commit(record.cwd)
            if _wants_export(self.opts, self.environ):
                import fcntl  # noqa: F401 - the hand-off's, loaded now rather than after the command

                from otel_run.export import _outbox

                if self.series is None and _has_target(self.opts.endpoint, self.environ):
                    # started now, so that after the command otel-run only writes "go" to a pipe
                    self.spare = _outbox.start_spare(record.store, self.environ, self.opts.endpoint, _pylib())
                if _has_target(self.opts.endpoint, self.environ):
                    from otel_run.export._notice import undelivered

                    self.notice = undelivered(record.store)

        _safely(work)

    def failed(self, code: int, message: str) -> None:
        def work() -> None:
            record = self._record()
            record.write_root_end(time_ns(), code, message)
            record.append_index(record.index_start())
            record.append_index(record.index_end(time_ns(), code, 1, 0))

        _safely(work)

    def after(self, child: Child) -> None:
        try:
            self._after(child)
        except BaseException as exc:
            _say(f"otel-run: warning: recording the run failed: {exc!r}")

    def _after(self, child: Child) -> None:
        from otel_run.store._store import Store

        record = self._record()
        exit_code = child.exit_code
        error = (
            f"killed by {child.signal_name}" if child.signal_name else (f"exit code {exit_code}" if exit_code else None)
        )
        record.write_child_reap(child)
        if self.container is not None:
            _write_container(record, self.container, child)
        end_ns = time_ns()
        record.write_root_end(end_ns, exit_code, error)
        store = Store(record.store)
        trace = store.load_trace(record.trace_id)
        if self.opts.profile and ("cpu" in self.opts.profile or "memory" in self.opts.profile):
            from otel_run.analyse._attribute import convert

            for problem in convert(store.root, trace):
                _say(f"otel-run: profile: {problem}")
            _write_summaries(store.root, trace)
        spans = len(trace.spans)
        processes = len(trace.processes)
        record.append_index(record.index_end(end_ns, exit_code, spans, processes))
        pushed = None
        if self.series is None and _wants_export(self.opts, self.environ):  # a series hands off once, at its end
            pushed = _hand_off(store.root, [record.run_id], spans, self.opts.endpoint, self.environ, self.spare)
        if not self.opts.quiet:
            wall = (end_ns - record.start_ns) / 1e9
            _say(
                f"otel-run: trace {record.trace_id} · {wall:.3f} s · exit {exit_code} · "
                f"{processes} process{'es' if processes != 1 else ''} · {spans} span{'s' if spans != 1 else ''}\n"
                + (f"otel-run: {boundaries}\n" if (boundaries := _boundaries(trace)) else "")
                + f"otel-run: stored in {store.trace_path(record.trace_id)} (otel-trace show {record.run_id[:8]})"
                + (f"\notel-run: {pushed}" if pushed else "")
            )
        if self.notice:
            _say(f"otel-run: {self.notice}")


def _write_summaries(root: str, trace: Trace) -> None:
    """Each profiled span's summary, appended to the trace as fragments (a failure is said, never raised)."""
    from otel_run._wire import SpanWriter
    from otel_run.analyse._attribute import summary_records

    try:
        writer = SpanWriter(root)
        for line in summary_records(root, trace):
            writer.write(trace.trace_id, line)
    except (OSError, ValueError) as exc:
        _say(f"otel-run: profile: the spans' profile summaries were not written: {exc}")


def _container_command(
    opts: Options, environ: Mapping[str, str], env: dict[str, str], trace_id: str, store: str
) -> tuple[ContainerRun | None, list[str]]:
    """For ``docker|podman run``: the command with the trace context (and the
    bootstrap mounts) added; the command unchanged otherwise or on any error."""
    try:
        from otel_run.run import _container

        container = _container.detect(opts.command)
        if container is None:
            return None, opts.command
        from otel_run.instrument._containers import mount_enabled

        mount = mount_enabled(environ, opts.container_mount)
        return container, container.command(env, trace_id, store, mount)
    except Exception as exc:
        _say(f"otel-run: warning: not tracing into the container: {exc!r}")
        return None, opts.command


def _write_container(record: RunRecord, container: ContainerRun, child: Child) -> None:
    """The container span and its start-up stages, under the CLI's process span."""
    try:
        from otel_run.store._store import load_trace_file

        trace = load_trace_file(record.writer_path(record.trace_id), record.trace_id)
        ready = [
            e.time_ns
            for s in trace.spans
            if s.parent_id == container.span_id and s.is_process
            for e in s.events
            if e.name == "python.started"
        ]
        spans = container.spans(record.child_id, child.spawn_ns, child.end_ns, min(ready) if ready else None)
        if spans:
            record.write_spans(spans)
    except Exception as exc:
        _wire.debug(f"container spans not written: {exc!r}")


def _boundaries(trace: object) -> str:
    """The boundary ledger's headline, for traces that crossed boundaries."""
    from otel_run.analyse._ledger import headline

    return headline(trace)  # type: ignore[arg-type]


def _wants_export(opts: Options, environ: Mapping[str, str]) -> bool:
    if opts.export is not None:
        return opts.export
    return bool(environ.get(_env.OTEL_EXPORTER_OTLP_ENDPOINT) or environ.get(_env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT))


def _has_target(endpoint: str | None, environ: Mapping[str, str]) -> bool:
    return bool(
        endpoint
        or environ.get(_env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        or environ.get(_env.OTEL_EXPORTER_OTLP_ENDPOINT)
    )


def _hand_off(
    root: str,
    run_ids: list[str],
    spans: int,
    endpoint: str | None,
    environ: Mapping[str, str],
    spare: Spare | None = None,
) -> str:
    """Leave the runs to the background deliverer (never waits for a collector);
    returns the summary's line about it."""
    from otel_run.store._layout import EXPORT_RECORD

    what = f"{len(run_ids)} runs" if len(run_ids) != 1 else f"run {run_ids[0][:8]}"
    later = "otel-trace push " + (run_ids[0][:8] if len(run_ids) == 1 else "--unpushed")
    if not _has_target(endpoint, environ):
        return f"not sent (no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT or pass --endpoint); kept locally: {later}"
    try:
        from otel_run.export._outbox import hand_off

        hand_off(root, run_ids, environ, endpoint, _pylib(), spare)
    except OSError as exc:
        return f"not sent (cannot start the deliverer: {exc}); kept locally: {later}"
    record = os.path.join(root, EXPORT_RECORD)
    return f"{spans} span{'s' if spans != 1 else ''} of {what} handed to the OTLP deliverer (record: {record})"


# signals whose default action dumps core: otel-run re-raises them with RLIMIT_CORE 0
_CORE_DUMPING = frozenset(
    getattr(_signal, name)
    for name in (
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGSEGV",
        "SIGSYS",
        "SIGXCPU",
        "SIGXFSZ",
    )
    if hasattr(_signal, name)
)


def _profile_environment(opts: Options, env: dict[str, str]) -> None:
    """What the bootstrap of every process needs to profile itself."""
    env[_env.OTEL_RUN_PROFILE] = ",".join(opts.profile or ())
    if opts.profile_rate is not None:
        env[_env.OTEL_RUN_PROFILE_RATE] = str(opts.profile_rate)
    if opts.import_threshold is not None:
        env[_env.OTEL_RUN_IMPORT_THRESHOLD] = repr(opts.import_threshold)
    if "cpu" in (opts.profile or ()):
        pyspy = env.get(_env.OTEL_RUN_PYSPY) or _pyspy()  # the caller's choice of py-spy first
        if pyspy:
            env[_env.OTEL_RUN_PYSPY] = pyspy


def _pyspy() -> str | None:
    """The py-spy executable installed beside otel-run (the wheel's binary), else on PATH."""
    here = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0] or sys.executable)), "py-spy")
    for candidate in (here, os.path.join(os.path.dirname(sys.executable), "py-spy")):
        if os.access(candidate, os.X_OK):
            return candidate
    from shutil import which

    return which("py-spy")


def _spawn_error(command: str, exc: OSError) -> tuple[int, str]:
    if isinstance(exc, FileNotFoundError):
        return 127, f"{command}: command not found"
    if isinstance(exc, PermissionError):
        return 126, f"{command}: permission denied"
    return 126, f"{command}: cannot run: {exc.strerror or exc}"


def _pylib() -> str:
    """The directory holding the OpenTelemetry packages otel-run runs with."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(_wire.__file__)))  # where otel_run/ is installed
    if os.path.isdir(os.path.join(here, "opentelemetry", "sdk")):
        return here
    for path in sys.path:
        if path and os.path.isdir(os.path.join(path, "opentelemetry", "sdk")):
            return os.path.abspath(path)
    return here


def _safely(fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except Exception as exc:
        _say(f"otel-run: warning: {exc!r}")


def _say(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
