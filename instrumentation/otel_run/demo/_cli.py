"""``otel-demo``: the whole codeflash vertical in one trace, offline.

    otel-demo [run] [--looping-time S] [--latency-scale X] [--project DIR] [--keep]
    otel-demo backend [--latency-scale X]            # only the services, in the foreground

``run`` starts the reference backend (stand-in for codeflash-internal, on
localhost:8000 and :3001, where codeflash's local mode looks) and the replay LLM
server, each under its own otel-run so their spans reach the same store; copies
the fixture project to a scratch directory; runs
``otel-run codeflash optimize foo.py`` there; shows the trace; stops the
services. Calls to the internet (codeflash's PyPI version check, Sentry) are sent
to a closed local port, so they fail at once instead of waiting on DNS, and
still show in the trace for what they cost; ``--pypi`` lets the version check
reach pypi.org, as a user's run does.

``--codeflash EXE`` runs another installation of codeflash (a benchmark's
patched venv). ``--rtt MS`` puts a delaying relay (:mod:`._rtt`, a stand-in for
the internet path to app.codeflash.ai) between codeflash and the backend, which
then listens on free ports behind it.

Every process of the demo writes to one store: ``--store``, else
``$OTEL_RUN_STORE``, else the invoking user's default store. It is resolved once,
before codeflash gets its scratch ``HOME``, and passed to every child as an
absolute ``OTEL_RUN_STORE`` (see :func:`with_store`), so the trace outlives the
scratch directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from otel_run import _env
from otel_run._errors import OtelRunError, UsageError
from otel_run.demo import _rtt
from otel_run.run._cli import profile_kinds
from otel_run.store._layout import store_root

BIN = Path(sys.executable).parent
AI_PORT, CFAPI_PORT = 8000, 3001  # fixed by codeflash's local mode
DEMO_KEY = "cf-otel-run-demo-key-not-a-secret"
CLOSED_PORT_PROXY = "http://127.0.0.1:9"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="otel-demo", description="Run codeflash optimize on the fixture, offline, as one trace.")
    parser.add_argument("command", nargs="?", choices=("run", "backend"), default="run")
    parser.add_argument("--project", help="the project to optimize (default: the repository's bench/fixture)")
    parser.add_argument("--script", default="foo.py", help="the script codeflash traces (default: foo.py)")
    parser.add_argument(
        "--looping-time",
        type=float,
        default=2.0,
        help="seconds codeflash spends timing each candidate (CODEFLASH_LOOPING_TIME; default 2)",
    )
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=1.0,
        help="multiply the LLM's recorded latencies (0: answer at once; default 1)",
    )
    parser.add_argument("--llm-port", type=int, default=8100, help="port of the replay LLM server (default 8100)")
    parser.add_argument(
        "--store",
        metavar="DIR",
        help="store directory of every process of the demo (default: $OTEL_RUN_STORE, "
        "else $XDG_DATA_HOME/otel-run or ~/.local/share/otel-run of the user running otel-demo)",
    )
    parser.add_argument(
        "--profile",
        metavar="KINDS",
        help="profile codeflash's processes: cpu, memory, imports, comma-separated (as otel-run --profile)",
    )
    parser.add_argument(
        "--codeflash",
        metavar="EXE",
        help="the codeflash executable to run (default: the one installed next to otel-demo)",
    )
    parser.add_argument(
        "--pypi",
        action="store_true",
        help="let codeflash's PyPI version check reach pypi.org (default: a closed local port)",
    )
    parser.add_argument(
        "--rtt",
        type=_milliseconds,
        default=0.0,
        metavar="MS",
        help="emulate this round-trip time between codeflash and the backend (a delaying relay; default 0: none)",
    )
    parser.add_argument(
        "--rtt-handshakes",
        type=int,
        choices=range(4),
        default=_rtt.DEFAULT_HANDSHAKES,
        metavar="N",
        help="round-trips a new connection pays before its first byte, with --rtt (default 2: TCP + TLS 1.3)",
    )
    parser.add_argument("-l", "--label", default="demo", help="label of the optimize run in the store (default: demo)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy of the project")
    parser.add_argument("-q", "--quiet", action="store_true", help="no trace summary at the end")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        environ = with_store(os.environ, args.store)  # before any child's HOME changes
        project = _project(args.project)
        profile = ",".join(profile_kinds(args.profile, "--profile")) if args.profile else None
        codeflash = _codeflash(args.codeflash)
        link = (args.rtt / 1000, args.rtt_handshakes)
        if args.command == "backend":
            with services(project, args.llm_port, args.latency_scale, environ, rtt=link) as _:
                _say(
                    f"otel-demo: reference backend on :{AI_PORT} (/ai) and :{CFAPI_PORT} (/cfapi), "
                    f"replay LLM on :{args.llm_port}; Ctrl-C stops them"
                )
                _wait_for_signal()
            return 0
        store = environ[_env.OTEL_RUN_STORE]
        relays: list[_rtt.Relay] = []
        with services(project, args.llm_port, args.latency_scale, environ, rtt=link, relays=relays):
            code, run_id = optimize(
                project,
                args.script,
                args.looping_time,
                environ,
                label=args.label,
                keep=args.keep,
                profile=profile,
                codeflash=codeflash,
                pypi=args.pypi,
            )
        if relays and not args.quiet:
            _say(f"otel-demo: {relays[0].summary()}")
        if run_id is None:
            raise OtelRunError(f"the optimize run is not in the store {store}")
        if not args.quiet:
            shown = subprocess.run(
                [str(BIN / "otel-trace"), "--store", store, "show", run_id], env=environ, check=False
            ).returncode
            code = code or shown
        return code
    except OtelRunError as exc:
        _say(f"otel-demo: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


# --------------------------------------------------------------- services


@contextmanager
def services(
    project: Path,
    llm_port: int,
    latency_scale: float,
    environ: Mapping[str, str],
    traced: bool = True,
    rtt: tuple[float, int] = (0.0, _rtt.DEFAULT_HANDSHAKES),
    relays: list[_rtt.Relay] | None = None,
) -> Iterator[Path]:
    """The replay LLM and the reference backend, each under otel-run (or, with
    ``traced=False``, untraced: ``OTEL_SDK_DISABLED=true``), until the block
    ends. Yields the scratch directory holding the backend's database.

    With ``rtt`` = (seconds, handshakes) above zero the backend listens on free
    ports and a :class:`~._rtt.Relay` on codeflash's fixed ports adds the
    round-trip time; the relay is appended to ``relays`` (for its counts)."""
    for port in (AI_PORT, CFAPI_PORT, llm_port):
        if _listening(port):
            raise OtelRunError(f"port {port} is in use (another backend or demo running?)")
    rtt_s, handshakes = rtt
    routes = [_rtt.Route(AI_PORT, _free_port()), _rtt.Route(CFAPI_PORT, _free_port())] if rtt_s > 0 else []
    ai_port, cfapi_port = (routes[0].target_port, routes[1].target_port) if routes else (AI_PORT, CFAPI_PORT)
    work = Path(tempfile.mkdtemp(prefix="otel-demo-services-"))
    env = with_store(environ)
    env[_env.OTEL_RUN_BACKEND_DB] = str(work / "backend.sqlite3")
    if not traced:
        env[_env.OTEL_SDK_DISABLED] = "true"
    otel_run = [str(BIN / "otel-run"), "-q"] if traced else []
    procs: list[subprocess.Popen[bytes]] = []
    relay: _rtt.Relay | None = None
    try:
        procs.append(
            _start(
                [
                    *(otel_run and [*otel_run, "-l", "replay-llm", "--"]),
                    sys.executable,
                    "-m",
                    "otel_run.demo.replay",
                    "--port",
                    str(llm_port),
                    "--cassettes",
                    str(project / "cassettes"),
                    "--latency-scale",
                    str(latency_scale),
                ],
                env,
                work / "replay.log",
            )
        )
        procs.append(
            _start(
                [
                    *(otel_run and [*otel_run, "-l", "backend", "--"]),
                    sys.executable,
                    "-m",
                    "otel_run.demo.backend",
                    "--llm-url",
                    f"http://127.0.0.1:{llm_port}/v1",
                    *("--ai-port", str(ai_port), "--cfapi-port", str(cfapi_port)),
                ],
                env,
                work / "backend.log",
            )
        )
        if routes:
            try:
                relay = _rtt.Relay(routes, rtt_s, handshakes)
                relay.start()
            except OSError as exc:
                raise OtelRunError(
                    f"--rtt: cannot listen on :{AI_PORT} and :{CFAPI_PORT}: {exc.strerror or exc}"
                ) from exc
            if relays is not None:
                relays.append(relay)
        for url, proc, log in (
            (f"http://127.0.0.1:{llm_port}/health", procs[0], work / "replay.log"),
            (f"http://127.0.0.1:{AI_PORT}/health", procs[1], work / "backend.log"),
            (f"http://127.0.0.1:{CFAPI_PORT}/health", procs[1], work / "backend.log"),
        ):
            _healthy(url, proc, log)
        yield work
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if relay is not None:
            relay.stop()
        shutil.rmtree(work, ignore_errors=True)


def _start(argv: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise OtelRunError(f"{url} did not become healthy; its log ends with:\n{tail}")
        time.sleep(0.1)


# --------------------------------------------------------------- optimize


def optimize(
    project: Path,
    script: str,
    looping_time: float,
    environ: Mapping[str, str],
    label: str = "demo",
    keep: bool = False,
    profile: str | None = None,
    codeflash: Path | None = None,
    pypi: bool = False,
) -> tuple[int, str | None]:
    """``otel-run codeflash optimize SCRIPT`` in a scratch copy of ``project``;
    returns codeflash's exit status and the run id (None if the store has no
    run from the scratch copy). The run goes to the store ``environ`` names,
    not to one under the scratch ``HOME``. ``codeflash``: the executable
    (default: the one next to otel-demo); ``pypi``: see :func:`codeflash_environment`."""
    with scratch_copy(project, keep) as (workdir, home):
        env = codeflash_environment(environ, home, looping_time, pypi=pypi)
        store = env[_env.OTEL_RUN_STORE]
        result = subprocess.run(
            [
                *(str(BIN / "otel-run"), "--store", store, "-l", label),
                *(("--profile", profile) if profile else ()),
                *("--", str(codeflash or BIN / "codeflash"), "optimize", script),
            ],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return result.returncode, _run_in(store, workdir)


@contextmanager
def scratch_copy(project: Path, keep: bool = False) -> Iterator[tuple[Path, Path]]:
    """A throw-away copy of ``project`` (codeflash rewrites the code it
    optimizes) and an empty home directory; yields both."""
    scratch = Path(tempfile.mkdtemp(prefix="otel-demo-"))
    try:
        workdir = scratch / project.name
        shutil.copytree(project, workdir, ignore=shutil.ignore_patterns("cassettes", "__pycache__", ".pytest_cache"))
        home = scratch / "home"
        home.mkdir()
        yield workdir, home
        if keep:
            _say(f"otel-demo: the optimized project is in {workdir}")
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def with_store(environ: Mapping[str, str], override: str | None = None) -> dict[str, str]:
    """A copy of ``environ`` whose ``OTEL_RUN_STORE`` is the store it means
    (``override``, else ``$OTEL_RUN_STORE``, else the default store under its
    ``$XDG_DATA_HOME``/``$HOME``), absolute. Resolve it before changing ``HOME``
    or ``XDG_DATA_HOME`` for a child, so the child writes where the caller reads."""
    env = dict(environ)
    env[_env.OTEL_RUN_STORE] = store_root(environ, override)
    return env


def codeflash_environment(
    environ: Mapping[str, str], home: Path, looping_time: float, pypi: bool = False
) -> dict[str, str]:
    """codeflash's environment: the demo's API key and local servers, and
    ``home`` as ``HOME``; the store stays the one ``environ`` names. Other
    hosts go to a closed port; with ``pypi``, pypi.org is reached directly."""
    env = with_store(environ)
    env.update(
        CODEFLASH_API_KEY=DEMO_KEY,
        CODEFLASH_AIS_SERVER="local",
        CODEFLASH_CFAPI_SERVER="local",
        CODEFLASH_LOOPING_TIME=f"{looping_time:g}",
        HOME=str(home),  # codeflash writes the API key into ~/.bashrc
        HTTPS_PROXY=CLOSED_PORT_PROXY,
        HTTP_PROXY=CLOSED_PORT_PROXY,
        NO_PROXY="localhost,127.0.0.1" + (",pypi.org" if pypi else ""),
    )
    for name in ("CI", "GITHUB_ACTIONS"):  # CI doubles codeflash's noise floor and skips its call graph
        env.pop(name, None)
    return env


def _run_in(store: str, workdir: Path) -> str | None:
    """The id of the last run in ``store`` started in ``workdir`` (a fresh
    scratch directory: the store may be shared with other runs going on)."""
    from otel_run.store._store import Store, StoreError

    cwd = os.path.realpath(workdir)
    try:
        runs = [r for r in Store(store).runs() if r.cwd and os.path.realpath(r.cwd) == cwd]
    except StoreError:
        return None
    return runs[-1].run_id if runs else None


# ----------------------------------------------------------------- helpers


def _project(path: str | None) -> Path:
    if path:
        project = Path(path).resolve()
    else:
        import otel_run

        project = Path(otel_run.__file__).resolve().parents[2] / "bench" / "fixture"
    if not (project / "pyproject.toml").is_file():
        raise OtelRunError(f"no project at {project} (pass --project DIR: a directory with pyproject.toml)")
    if not (project / "cassettes").is_dir():
        raise OtelRunError(f"{project} has no cassettes/ directory for the replay LLM server")
    return project


def _codeflash(path: str | None) -> Path | None:
    if path is None:
        return None
    exe = Path(path).expanduser().absolute()
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        raise OtelRunError(f"--codeflash: {path} is not an executable file")
    return exe


def _milliseconds(value: str) -> float:
    try:
        ms = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {value!r}") from None
    if not ms >= 0 or ms == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more milliseconds, not {value!r}")
    return ms


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_signal() -> None:
    stop = False

    def handler(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
