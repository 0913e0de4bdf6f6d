"""The bootstrap's process span: how a Python process names itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_run.bootstrap import _boot


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
