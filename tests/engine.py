"""A real container engine for the tests: podman with runc, and the docker CLI
driving it through ``podman system service``.

The image is a minimal Debian with python3, made here (there is no registry):
``debootstrap --variant=minbase --include=python3`` into a directory, imported
with ``podman import``, kept in podman's storage between test runs. Everything
is installed and configured by ``.ci/run`` (``bench/container/setup-engine``);
on a machine without podman the container tests skip with the reason, unless
``OTEL_RUN_REQUIRE_ENGINE=1`` (set by CI), where they fail instead.
"""

from __future__ import annotations

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
    pytest.skip(f"no usable container engine: {problem}")


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
        deadline = time.monotonic() + 30
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
            pytest.fail("podman system service did not answer the docker CLI within 30 s")
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _problem() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (bench/container/setup-engine installs it)"
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    exists = subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True)
    if exists.returncode != 0:
        build = subprocess.run([str(SETUP), "--image-only"], capture_output=True, text=True)
        if build.returncode != 0:
            return f"cannot build {IMAGE}: {build.stderr.strip().splitlines()[-1:] or build.returncode}"
    with tempfile.TemporaryDirectory() as tmp:
        probe = subprocess.run(
            ["podman", "run", "--rm", IMAGE, "python3", "-c", "print('ok')"],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
    if probe.stdout.strip() != "ok":
        return f"podman run failed: {probe.stderr.strip()[-300:]}"
    return None
