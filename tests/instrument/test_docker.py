from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest

from tests.conftest import PYTHON, Runner, processes_under
from tests.engine import IMAGE, docker_service, require_engine

STAGES = ("container.create", "container.start", "container.workload", "container.teardown")


@pytest.fixture(scope="module")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_engine()
    yield from docker_service(tmp_path_factory.mktemp("podman-service"))


@pytest.mark.parametrize("style", ["run", "create+start"])
def test_the_docker_sdk_gets_the_container_span_stages_and_context(
    style: str, docker_host: str, runner: Runner
) -> None:
    inside = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass']); print('inside')"
    start = {
        "run": f"out = client.containers.run({IMAGE!r}, ['python3', '-c', {inside!r}], remove=True)",
        "create+start": (
            f"c = client.containers.create({IMAGE!r}, ['python3', '-c', {inside!r}], environment=['A=1'])\n"
            "c.start(); c.wait(); out = c.logs(); c.remove()"
        ),
    }[style]
    script = (
        textwrap.dedent(
            f"""
        import docker
        client = docker.DockerClient(base_url={docker_host!r})
        """
        )
        + start
        + "\nprint(out.decode().strip())\n"
    )
    result = runner.run(PYTHON, "-c", script, timeout=180)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().strip() == "inside"
    _run, trace = runner.last()
    [container] = [s for s in trace.spans if s.name == f"container {IMAGE}"]
    assert container.parent is not None and container.parent.is_process  # under the script's process span
    attrs = container.attributes
    assert len(attrs["container.id"]) == 64 and attrs["container.runtime.name"] == "docker"
    assert attrs["container.image.tags"] == ["bookworm"] and attrs["process.exit.code"] == 0
    stages = {s.name: s for s in container.children if s.name.startswith("container.")}
    assert set(stages) == set(STAGES), sorted(stages)
    [python] = [s for s in container.children if s.is_process]
    assert python.service == "python3" and [c.name for c in processes_under(python)] == ["python3 -c pass"]


def test_registered_for_opentelemetry_instrument_and_uninstrument_restores() -> None:
    from importlib.metadata import entry_points

    from docker.models import containers
    from opentelemetry.sdk.trace import TracerProvider

    from otel_run.instrument.docker import DockerInstrumentor, _as_dict

    [entry] = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "docker"]
    assert entry.load() is DockerInstrumentor
    before = containers.ContainerCollection.__dict__["create"]
    DockerInstrumentor().instrument(tracer_provider=TracerProvider())
    try:
        assert containers.ContainerCollection.__dict__["create"].__wrapped__ is before
    finally:
        DockerInstrumentor().uninstrument()
    assert containers.ContainerCollection.__dict__["create"] is before
    assert _as_dict(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"} and _as_dict({"A": 1}) == {"A": "1"}
