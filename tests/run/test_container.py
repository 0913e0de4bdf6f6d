from __future__ import annotations

import itertools
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_run.run._container import _env_value, _image, _mounts, detect
from tests.conftest import OTEL_RUN, WAKEUP_FD, Runner, processes_under, settled_trace
from tests.engine import IMAGE, docker_service, require_engine

STAGES = ("container.create", "container.start", "container.boot", "container.workload", "container.teardown")

# in the container: a child process (traced through the bootstrap mount), then exit 0
WORKLOAD = textwrap.dedent(
    """
    import subprocess, sys
    subprocess.run([sys.executable, "-c", "print('grandchild')"], check=True)
    print("inside")
    """
)


# ------------------------------------------------------------- parsing (no engine)


@pytest.mark.parametrize(
    ("argv", "run_at", "image"),
    [
        (["docker", "run", "--rm", "img:1", "python3"], 1, "img:1"),
        (["docker", "-H", "unix:///x.sock", "run", "-e", "A=1", "--name", "n", "img"], 3, "img"),
        (["/usr/bin/podman", "--log-level", "info", "container", "run", "-v", "/a:/b:ro", "reg:5000/img:tag"], 4, None),
        (["docker", "run", "--env=A=1", "--", "img", "--rm"], 1, "img"),
    ],
)
def test_detects_run_and_finds_the_image(argv: list[str], run_at: int, image: str | None) -> None:
    found = detect(argv)
    assert found is not None and found.run_at == run_at
    assert _image(argv, run_at) == (image or "reg:5000/img:tag")


@pytest.mark.parametrize("argv", [["docker", "ps"], ["docker", "build", "."], ["python", "run"], ["docker"]])
def test_other_commands_are_left_alone(argv: list[str]) -> None:
    assert detect(argv) is None


def test_mounts_and_env_of_the_run_arguments() -> None:
    argv = ["docker", "run", "-v", "/data:/data:ro", "--mount", "type=tmpfs,target=/t", "-e", "PYTHONPATH=/x", "img"]
    assert _mounts(argv, 1) == [
        {"type": "bind", "source": "/data", "target": "/data", "read_only": True},
        {"type": "tmpfs", "source": "", "target": "/t", "read_only": False},
    ]
    assert _env_value(argv, 1, "PYTHONPATH") == "/x"


# ------------------------------------------------------------ with the real engine


@pytest.fixture(scope="module")
def engine() -> None:
    require_engine()


@pytest.fixture(scope="module")
def docker_host(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from docker_service(tmp_path_factory.mktemp("podman-service"))


@pytest.mark.parametrize("cli", ["docker", "podman"])
def test_a_container_run_is_one_trace_with_its_start_up_stages(
    cli: str, engine: None, docker_host: str, runner: Runner
) -> None:
    env = runner.env(DOCKER_HOST=docker_host)
    result = runner.run(cli, "run", "--rm", IMAGE, "python3", "-c", WORKLOAD, env=env, timeout=180)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split() == ["grandchild", "inside"]  # stdout untouched
    run, trace = runner.last()
    assert {s.trace_id for s in trace.spans} == {run.trace_id}
    root = trace.by_id[run.root_span_id]
    [cli_process] = [s for s in trace.spans if s.parent is root and s.is_process]
    [container] = [s for s in trace.spans if s.name.startswith("container ") and s.parent is cli_process]
    attrs = container.attributes
    assert attrs["container.image.name"] == IMAGE.split(":")[0] and attrs["container.image.tags"] == ["bookworm"]
    assert len(attrs["container.id"]) == 64 and attrs["container.runtime.name"] == cli and attrs["container.name"]
    stages = {s.name: s for s in container.children if s.name.startswith("container.")}
    assert set(stages) == set(STAGES), sorted(stages)
    ordered = [stages[name] for name in STAGES]
    for before, after in itertools.pairwise(ordered):
        assert before.end_ns == after.start_ns  # the stages tile the container's life
    assert ordered[0].start_ns == container.start_ns and ordered[-1].end_ns == container.end_ns
    [inside] = [s for s in container.children if s.is_process]
    assert inside.service == "python3" and inside.attributes["process.exit.code"] == 0
    assert [c.name for c in processes_under(inside)] == ["python3 -c print('grandchild')"]
    mounts = {attrs[f"otel_run.container.mount.{i}.target"] for i in range(2)}
    assert mounts == {"/otel-run/lib/otel_run", "/otel-run/store"}


@pytest.mark.parametrize("cli", ["docker", "podman"])
def test_exit_codes_pass_through_as_without_otel_run(cli: str, engine: None, docker_host: str, runner: Runner) -> None:
    env = runner.env(DOCKER_HOST=docker_host)
    names = [f"otel-run-test-{uuid.uuid4().hex[:12]}" for _ in range(4)]  # removed after, kept or not
    try:
        for args, bare_name, traced_name in ((["--rm"], *names[:2]), ([], *names[2:])):

            def command(name: str, args: list[str] = args) -> list[str]:
                return [cli, "run", *args, "--name", name, IMAGE, "python3", "-c", "import sys; sys.exit(5)"]

            bare = subprocess.run(command(bare_name), env=env, capture_output=True, timeout=180)
            traced = runner.run(*command(traced_name), env=env, timeout=180)
            assert traced.returncode == bare.returncode, (args, traced.stderr.decode()[-1000:])
            if not args:
                assert bare.returncode == 5  # (docker CLI + podman 4.3 service with --rm says 0: so does otel-run)
    finally:
        subprocess.run(["podman", "rm", "--force", "--ignore", *names], capture_output=True, timeout=180)


def test_an_image_pull_is_an_event_of_the_container_span(engine: None, runner: Runner, tmp_path: Path) -> None:
    # no registry here: pulling from an OCI archive is a real pull for the engine (a `pull` event)
    archive = tmp_path / "image.tar"
    subprocess.run(["podman", "save", "--format", "oci-archive", "-o", str(archive), IMAGE], check=True, timeout=300)
    source = f"oci-archive:{archive}"
    result = runner.run("podman", "run", "--rm", source, "python3", "-c", "pass", timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-1000:]
    _run, trace = runner.last()
    [container] = [s for s in trace.spans if s.name.startswith("container ")]
    [pull] = [e for e in container.events if e.name == "image.pull"]
    assert pull.attributes["container.image.name"] == source
    create = next(s for s in container.children if s.name == "container.create")
    assert container.start_ns <= pull.time_ns <= create.end_ns


def test_no_container_mount_still_passes_the_context(engine: None, runner: Runner) -> None:
    code = "import os; print(os.environ.get('TRACEPARENT'), os.environ.get('PYTHONPATH'))"
    result = runner.run("--no-container-mount", "podman", "run", "--rm", IMAGE, "python3", "-c", code, timeout=180)
    assert result.returncode == 0, result.stderr.decode()[-1000:]
    traceparent, pythonpath = result.stdout.decode().split()
    run, trace = runner.last()
    [container] = [s for s in trace.spans if s.name.startswith("container ")]
    assert traceparent == f"00-{run.trace_id}-{container.span_id}-01" and pythonpath == "None"
    assert not [s for s in trace.spans if s.parent is container and s.is_process]  # nothing traced inside


def test_a_signal_to_otel_run_reaches_the_container(engine: None, runner: Runner) -> None:
    # python is PID 1 in the container: without a handler the kernel would drop SIGTERM
    code = textwrap.dedent(
        f"""
        import os, select, signal, sys
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
        {WAKEUP_FD}
        print("ready", flush=True)
        while True:
            select.select([wakeup], [], [])
        """
    )
    proc = subprocess.Popen(
        [OTEL_RUN, "-q", "podman", "run", "--rm", IMAGE, "python3", "-c", code],
        env=runner.env(),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(15)
    assert proc.wait(timeout=60) == 3  # otel-run -> podman (sig-proxy) -> python in the container
    run, trace = runner.last()
    assert run.exit_code == 3
    [inside] = [s for s in trace.spans if s.is_process and s.service == "python3"]
    assert inside.attributes["process.exit.code"] == 3


def test_an_http_call_inside_the_container_reaches_a_host_service_in_one_trace(
    engine: None, runner: Runner, service: int
) -> None:
    """The Python inside borrows the mounted OpenTelemetry SDK when it first sends
    a request; the host's traced service continues the trace."""
    import sysconfig

    deps = sysconfig.get_paths()["purelib"]  # requests for the container, from this venv
    code = f"import requests; print(requests.get('http://127.0.0.1:{service}/work?ms=1').status_code)"
    result = runner.run(
        "podman", "run", "--rm", "--network", "host", "-v", f"{deps}:/deps:ro", "-e", "PYTHONPATH=/deps",
        IMAGE, "python3", "-c", code, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.decode().strip() == "200", result.stderr.decode()[-2000:]
    run, trace = settled_trace(runner, lambda t: any(s.kind == 2 for s in t.spans))
    [container] = [s for s in trace.spans if s.name.startswith("container ")]
    [inside] = [s for s in container.children if s.is_process]
    [client] = [s for s in trace.spans if s.kind == 3 and s.name.startswith("GET")]
    [server] = [s for s in trace.spans if s.kind == 2]
    node, chain = client, []
    while node is not None:
        chain.append(node)
        node = node.parent
    assert inside in chain and container in chain  # client span inside the container's Python
    assert server.parent is client and server.service == "service" and server.trace_id == run.trace_id


CONTAINER_SPIN = textwrap.dedent(
    """
    import subprocess, sys, time
    def walrus_in_container(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
    if sys.argv[1:] == ["child"]:
        walrus_in_container(1.0)
    else:
        subprocess.run([sys.executable, __file__, "child"], check=True)
    """
)


def test_cpu_profiles_reach_into_the_container(engine: None, runner: Runner, tmp_path: Path) -> None:
    # pid 1 and its child: the container's end kills the samplers, so each is stopped and waited for at exit
    prog = tmp_path / "spin.py"
    prog.write_text(CONTAINER_SPIN)
    mount = f"{prog}:/spin.py:ro"
    result = runner.run(
        "--profile", "cpu", "podman", "run", "--rm", "-v", mount, IMAGE, "python3", "/spin.py", timeout=180
    )
    assert result.returncode == 0, result.stderr.decode()[-1000:]
    assert b"profile" not in result.stderr  # no sampler failed
    _, trace = runner.last()
    [child] = [s for s in trace.spans if s.is_process and s.name == "spin.py child"]
    from otel_run.store._profiles import profile_paths

    assert len(profile_paths(str(runner.store), trace.trace_id)) == 2  # pid 1's too
    text = runner.trace_cli("profile", "--span", child.span_id, "--format", "text")
    assert text.returncode == 0, text.stderr
    assert "walrus_in_container" in text.stdout.splitlines()[2]
