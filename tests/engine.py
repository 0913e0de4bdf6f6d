"""A real container engine for the tests: podman with runc, and the docker CLI
driving it through ``podman system service``.

The image is a minimal Debian with python3, made here (there is no registry):
``debootstrap --variant=minbase --include=python3`` into a directory, imported
with ``podman import``, kept in podman's storage between test runs. All of it is
installed by ``bench/container/setup-engine``, which ``make test`` runs when it
runs as root (so a fresh ``make test`` exercises the container layer as CI
does). Otherwise the container tests skip, all with one reason naming the
command to run; with ``OTEL_RUN_REQUIRE_ENGINE=1`` (set by CI) they fail instead.
The tests install nothing themselves.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_run import _env

IMAGE = "localhost/otel-run-python:bookworm"
REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "bench" / "container" / "setup-engine"


def require_engine() -> None:
    """Skip (or, in CI, fail) when podman cannot run containers here."""
    problem = _problem()
    if problem is None:
        return
    if os.environ.get(_env.OTEL_RUN_REQUIRE_ENGINE) == "1":
        pytest.fail(f"container engine required but unusable: {problem}")
    # one reason for every container test: pytest -ra folds them into one line
    pytest.skip(f"no usable container engine ({problem}): run `{_setup_command()}`")


def _setup_command() -> str:
    relative = SETUP.relative_to(REPO)
    return str(relative) if os.geteuid() == 0 else f"sudo {relative}"


def docker_service(directory: Path) -> Iterator[str]:
    """``podman system service`` on a socket in ``directory``; yields DOCKER_HOST."""
    socket_path = directory / "podman.sock"
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{socket_path}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host = f"unix://{socket_path}"
    try:
        deadline = time.monotonic() + 120  # a deadline for a wait: podman is slow to start on a loaded machine
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["docker", "version", "--format", "{{.Server.Version}}"],
                env={**os.environ, "DOCKER_HOST": host},
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("podman system service did not answer the docker CLI within 120 s")
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@functools.cache
def _problem() -> str | None:
    """What keeps the container tests from running here; None when nothing does.
    Checked once per session (the probe starts a container)."""
    if shutil.which("podman") is None:
        return "podman is not installed"
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    exists = subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True, timeout=120)
    if exists.returncode != 0:
        return f"no image {IMAGE}"
    with tempfile.TemporaryDirectory() as tmp:
        probe = subprocess.run(
            ["podman", "run", "--rm", IMAGE, "python3", "-c", "print('ok')"],
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=300,
        )
    if probe.stdout.strip() != "ok":
        last = probe.stderr.strip().splitlines()[-1:] or [f"exit {probe.returncode}"]
        return f"podman run failed: {last[0][-200:]}"
    return None
