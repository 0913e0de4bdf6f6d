"""subprocess, exec, fork and multiprocessing children, at any depth."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import PYTHON, PYTHON_NAME, Runner, one


def test_child_nests_under_the_span_current_when_it_was_spawned(runner: Runner) -> None:
    code = textwrap.dedent(
        """
        import subprocess, sys
        from opentelemetry import trace
        tracer = trace.get_tracer("app")
        with tracer.start_as_current_span("phase: verify"):
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        subprocess.run(["sh", "-c", "exit 3"])
        """
    )
    assert runner.run(PYTHON, "-c", code).returncode == 0
    _, trace = runner.last()
    phase = one(trace, lambda s: s.name == "phase: verify")
    call = one(trace, lambda s: s.name == f"subprocess {PYTHON_NAME}")
    assert call.parent is phase
    child = one(trace, lambda s: s.parent is call)
    assert child.is_process and child.attributes["process.exit.code"] == 0
    assert child.service == PYTHON_NAME  # the child's own record won over the parent's view
    assert call.events[0].name == "spawned"
    sh_call = one(trace, lambda s: s.name == "subprocess sh")
    assert sh_call.attributes["process.exit.code"] == 3 and sh_call.status_code == 2
    sh = one(trace, lambda s: s.parent is sh_call)
    assert sh.attributes["process.exit.code"] == 3


def test_custom_env_still_carries_the_context(runner: Runner) -> None:
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass'], env={'PATH': '/usr/bin:/bin'})"
    runner.run(PYTHON, "-c", code)
    _, trace = runner.last()
    call = one(trace, lambda s: s.name.startswith("subprocess"))
    child = one(trace, lambda s: s.parent is call)
    assert child.service == PYTHON_NAME and not child.attributes.get("otel_run.unfinished")
    assert "python.started" in {e.name for e in child.events}


def test_failed_spawn_is_an_error_span(runner: Runner) -> None:
    code = "import subprocess\ntry:\n    subprocess.run(['/no/such/binary'])\nexcept FileNotFoundError:\n    print('caught')"
    result = runner.run(PYTHON, "-c", code)
    assert result.stdout == b"caught\n"
    _, trace = runner.last()
    call = one(trace, lambda s: s.name == "subprocess binary")
    assert call.status_code == 2 and "FileNotFoundError" in call.status_message
    assert not call.children


def test_exec_replaces_the_image_inside_the_same_process_span(runner: Runner) -> None:
    code = "import os, sys; os.execv(sys.executable, [sys.executable, '-c', 'import sys; sys.exit(4)'])"
    result = runner.run(PYTHON, "-c", code)
    assert result.returncode == 4
    _, trace = runner.last()
    first = one(trace, lambda s: s.is_process and "execv" in s.name)
    second = one(trace, lambda s: s.is_process and "execv" not in s.name)
    assert second.parent is first
    assert "process.exec" in {e.name for e in first.events}
    assert first.attributes["process.exit.code"] == 4  # the kernel's view, at the final exit
    assert second.attributes["process.exit.code"] == 4
    assert first.attributes["process.pid"] == second.attributes["process.pid"]


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_multiprocessing_children_are_traced(runner: Runner, method: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = textwrap.dedent(
        f"""
        import multiprocessing
        from opentelemetry import trace

        def work(n):
            with trace.get_tracer("w").start_as_current_span(f"work {{n}}"):
                return n * n

        if __name__ == "__main__":
            ctx = multiprocessing.get_context({method!r})
            with trace.get_tracer("app").start_as_current_span("fan out"):
                procs = [ctx.Process(target=work, args=(i,)) for i in range(2)]
                for p in procs: p.start()
                for p in procs: p.join()
            print([p.exitcode for p in procs])
        """
    )
    script = tmp_path / "fan_out.py"
    script.write_text(code)
    result = runner.run(PYTHON, str(script))
    assert result.stdout == b"[0, 0]\n", result.stderr
    _, trace = runner.last()
    works = [s for s in trace.spans if s.name.startswith("work ")]
    assert len(works) == 2
    main = one(trace, lambda s: s.is_process and s.parent is not None and s.parent.is_run)
    for work in works:
        process = work.parent
        assert process is not None and process.is_process
        assert process.attributes["process.pid"] != main.attributes["process.pid"]
        assert process.attributes["process.exit.code"] == 0
        assert not process.unfinished
        node = process.parent
        while node is not None and node is not main:
            node = node.parent
        assert node is main


def test_python_m_pytest_subprocess_is_traced(runner: Runner, tmp_path) -> None:  # type: ignore[no-untyped-def]
    test_file = tmp_path / "test_sample.py"
    test_file.write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    code = f"import subprocess, sys; sys.exit(subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', {str(test_file)!r}]).returncode)"
    result = runner.run(PYTHON, "-c", code)
    assert result.returncode == 0, result.stdout
    _, trace = runner.last()
    pytest_span = one(trace, lambda s: s.is_process and s.service == "pytest")
    assert pytest_span.attributes["process.exit.code"] == 0
    assert pytest_span.parent is not None and pytest_span.parent.name == f"subprocess {PYTHON_NAME}"
