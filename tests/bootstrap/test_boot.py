"""The bootstrap's process span: how a Python process names itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from otel_run import _wire
from otel_run.bootstrap import _boot
from tests.conftest import PYTHON, Runner, clean_env, one


@pytest.mark.parametrize(
    ("argv", "service", "name"),
    [
        (["/usr/bin/python3", "-m", "pytest", "-x"], "pytest", "python3 -m pytest -x"),
        (["python", "/venv/bin/codeflash", "optimize", "foo.py"], "codeflash", "codeflash optimize foo.py"),
        (["python", "-X", "importtime", "tool.py"], "tool", "tool.py"),
        (["python", "-c", "print(1)"], "python", "python -c print(1)"),
        (
            ["python", "-c", "from multiprocessing.spawn import spawn_main", "--multiprocessing-fork"],
            "multiprocessing",
            "multiprocessing spawn",
        ),
        (["python", "pkg/__main__.py"], "pkg", "__main__.py"),
    ],
)
def test_python_service_and_span_names(argv: list[str], service: str, name: str) -> None:
    assert _boot._python_service(argv) == service
    assert _boot._python_span_name(argv) == name


def test_a_package_main_run_by_path_is_named_by_its_dotted_package(tmp_path: Path) -> None:
    main = tmp_path / "site-packages" / "jedi" / "inference" / "subprocess" / "__main__.py"
    main.parent.mkdir(parents=True)
    for package in (main.parent, main.parent.parent, main.parent.parent.parent):
        (package / "__init__.py").write_text("")
    main.write_text("")
    # not "subprocess", which reads as the standard library's
    assert _boot._python_service(["python", str(main), "arg"]) == "jedi.inference.subprocess"


# ------------------------------------------------------- how a process ends

ENDS_BY_CTRL_C = (
    "raise KeyboardInterrupt",
    # the program loaded traceback: the exception event uses it
    "import traceback; raise KeyboardInterrupt",
)


@pytest.mark.parametrize("program", ENDS_BY_CTRL_C)
def test_an_unhandled_keyboard_interrupt_still_ends_the_process_by_sigint(runner: Runner, program: str) -> None:
    # the parent reports how its child ended: bare, a KeyboardInterrupt is death by SIGINT (-2), not exit 1
    parent = (
        "import subprocess, sys;"
        f"r = subprocess.run([sys.executable, '-c', {program!r}], stderr=subprocess.DEVNULL); print(r.returncode)"
    )
    bare = subprocess.run([PYTHON, "-c", parent], env=clean_env(), capture_output=True, text=True, timeout=60)
    traced = runner.run(PYTHON, "-c", parent)
    assert bare.stdout.strip() == "-2"
    assert traced.stdout.decode().strip() == bare.stdout.strip(), traced.stderr
    _, trace = runner.last()
    child = one(trace, lambda s: s.is_process and s.attributes.get("process.command_args", [])[-1:] == [program])
    [exception] = [e for e in child.events if e.name == "exception"]
    assert exception.attributes["exception.type"] == "builtins.KeyboardInterrupt"
    assert 'File "<string>", line 1, in <module>' in exception.attributes["exception.stacktrace"]


def test_the_stacktrace_without_the_traceback_module_keeps_the_chain() -> None:
    try:
        try:
            {}["k"]
        except KeyError as exc:
            raise ValueError("bad") from exc
    except ValueError as exc:
        text = _wire._format_exception(exc)
    assert text.index("KeyError: 'k'") < text.index("direct cause") < text.index("ValueError: bad")
    assert text.count("Traceback (most recent call last):") == 2
    assert "in test_the_stacktrace_without_the_traceback_module_keeps_the_chain" in text
