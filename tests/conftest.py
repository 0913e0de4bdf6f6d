"""Shared fixtures: real otel-run processes against a throw-away store."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_run.store._model import Span, Trace
from otel_run.store._store import Run, Store

BIN = Path(sys.executable).parent
OTEL_RUN = str(BIN / "otel-run")
OTEL_TRACE = str(BIN / "otel-trace")
PYTHON = sys.executable
PYTHON_NAME = Path(PYTHON).name
REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "bench" / "demo"

# For a child program that waits for a signal with a Python handler: it then
# loops on ``select.select([wakeup], [], [])``. CPython runs a handler between
# bytecodes, so a signal landing after the interpreter's last check and before a
# blocking call such as ``time.sleep(60)`` only sets a flag, and the handler runs
# when the call returns, a minute later (seen under load, with otel-run having
# forwarded the signal 0.4 ms after the test sent it). The wakeup fd gets a byte
# whenever the signal lands, so ``select`` returns and the handler runs.
WAKEUP_FD = "wakeup, w = os.pipe(); os.set_blocking(w, False); signal.set_wakeup_fd(w)"

# Variables that would make the test's own environment leak into what it checks.
_SCRUB = (
    "TRACEPARENT",
    "TRACESTATE",
    "BAGGAGE",
    "OTEL_RUN_STORE",
    "OTEL_RUN_PROCESS",
    "OTEL_RUN_PYLIB",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "PYTHONPATH",
    "OTEL_RUN_PROFILE",
    "OTEL_RUN_PROFILE_RATE",
    "OTEL_RUN_IMPORT_THRESHOLD",
    "OTEL_RUN_PYSPY",
    "OTEL_RUN_IN_CONTAINER",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(extra)
    return env


def user_without_store(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Make this process's environment that of a user who never set
    ``OTEL_RUN_STORE`` or ``XDG_DATA_HOME``, with ``home`` as ``HOME`` (for
    code that reads ``os.environ``, such as ``otel-demo``): the store is the
    default one, ``home/.local/share/otel-run``."""
    for name in [*_SCRUB, "XDG_DATA_HOME"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))


class Runner:
    """Runs otel-run and otel-trace against one store."""

    def __init__(self, store: Path) -> None:
        self.store = store

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(**{"OTEL_RUN_STORE": str(self.store), **extra})

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input: bytes | None = None,
        timeout: float = 120,
        quiet: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        cmd = [OTEL_RUN, *(["-q"] if quiet else []), *args]
        return subprocess.run(cmd, env=env or self.env(), input=input, capture_output=True, timeout=timeout)

    def trace_cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([OTEL_TRACE, *args], env=env or self.env(), capture_output=True, text=True, timeout=120)

    def last(self) -> tuple[Run, Trace]:
        store = Store(str(self.store))
        run = store.find_run()
        return run, store.load_trace(run.trace_id)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The container tests (those using the ``engine`` or ``docker_host``
    fixtures) skip here rather than in the fixture: a skip raised in a fixture
    is reported at each test, this one once, as one line of ``pytest -ra``."""
    if {"engine", "docker_host"} & set(getattr(item, "fixturenames", ())):
        from tests.engine import require_engine

        require_engine()


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path / "store")


def by_name(trace: Trace, predicate: Callable[[Span], bool]) -> list[Span]:
    return [s for s in trace.spans if predicate(s)]


WALRUS_SPIN = """
import time

def walrus_spin(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x
"""
"""A CPU-bound function with a name no library has, for the profiling tests to find."""


def one(trace: Trace, predicate: Callable[[Span], bool]) -> Span:
    found = by_name(trace, predicate)
    assert len(found) == 1, f"expected one span, found {found} in {trace.spans}"
    return found[0]


def settled_trace(runner: Runner, predicate: Callable[[Trace], bool], timeout: float = 60) -> tuple[Run, Trace]:
    """The last run once ``predicate`` holds: spans from other processes (a
    service) arrive when their flush timer fires, a fraction of a second later
    on an idle machine. The timeout is a deadline for a wait, not a claim about
    speed: generous, so that a loaded machine only makes the test slower."""
    holder: list[tuple[Run, Trace]] = []

    def check() -> bool:
        holder[:] = [runner.last()]
        return predicate(holder[0][1])

    wait_for(check, timeout, "spans from other processes")
    return holder[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago. Another
    process on the machine may take one before it is bound again: start servers
    with :func:`start_listening`, which checks and retries, or on port 0."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_listening(argv: Callable[..., list[str]], ports: int, what: str) -> tuple[subprocess.Popen[bytes], list[int]]:
    """Start ``argv(*ports)``, a server told its ports on the command line, and
    wait until *it* listens on all of them. A port taken meanwhile by another
    process (other test suites share the machine) makes the server exit: then
    again, on other ports."""
    for _ in range(5):
        chosen = free_ports(ports)
        proc = subprocess.Popen(argv(*chosen), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up(proc: subprocess.Popen[bytes] = proc, chosen: list[int] = chosen) -> bool:
            return proc.poll() is not None or all(listens(proc.pid, port) for port in chosen)

        try:
            wait_for(up, what=f"{what} to listen")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.poll() is None:
            return proc, chosen
    raise AssertionError(f"{what} could not listen on free ports in 5 attempts")


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself has a TCP socket listening on ``port``
    (a connect() would also succeed if another process had taken the port)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def wait_for(predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds. ``timeout`` is a deadline for the
    wait, not a claim about speed: generous, so a loaded machine is only slower."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def service(runner: Runner, tmp_path: Path) -> Iterator[int]:
    """The demo WSGI service (official OpenTelemetry middleware), traced by its
    own otel-run into the same store; yields its port."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [OTEL_RUN, "-q", PYTHON, str(DEMO / "service.py"), "--port-file", str(port_file)],
        # the secrets test checks that captured credentials are redacted
        env=runner.env(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="Authorization,X-Api-Key"),
    )
    try:
        wait_for(port_file.exists, what="the service to listen")
        yield int(port_file.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def processes_under(span: Span) -> list[Span]:
    """The process spans below ``span``, at any depth."""
    out, stack = [], list(span.children)
    while stack:
        s = stack.pop()
        if s.is_process:
            out.append(s)
        stack.extend(s.children)
    return out


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Serve:
    """An ``otel-trace serve`` process (a real OTLP/HTTP receiver) on a port the
    kernel chose (``--port 0``): it says which on its first line, once it listens."""

    def __init__(self, store: Path, token: str | None = None) -> None:
        self.store = store
        self.port = 0
        self.token = token
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Serve:
        args = [OTEL_TRACE, "--store", str(self.store), "serve", "--port", "0", "-q"]
        if self.token:
            args += ["--token", self.token]
        self.proc = subprocess.Popen(args, env=clean_env(), stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline().decode()
        found = re.search(r"OTLP/HTTP on http://127\.0\.0\.1:(\d+)/v1/traces", line)
        assert found, f"otel-trace serve did not start: {line!r}"
        self.port = int(found.group(1))
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def post(self, body: bytes, headers: dict[str, str], path: str = "/v1/traces") -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def delivery_record(store: Path) -> list[dict[str, Any]]:
    """The lines of the store's delivery record (``export.jsonl``)."""
    try:
        text = (store / "export.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_for_record(store: Path, run_ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    """The delivery record's line for each run, once every run has one (a wait
    for a background process, not a claim about its speed)."""
    found: dict[str, dict[str, Any]] = {}

    def check() -> bool:
        found.clear()
        found.update({line["run_id"]: line for line in delivery_record(store) if line["run_id"] in run_ids})
        return len(found) == len(run_ids)

    wait_for(check, timeout, f"the delivery record of {run_ids}")
    return dict(found)
