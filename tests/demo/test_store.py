"""Issue 10: every process of ``otel-demo`` writes to one store, resolved
before codeflash gets its scratch ``HOME``. Fast: no codeflash, no services."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from otel_run.demo import _cli
from otel_run.demo._cli import codeflash_environment, with_store
from otel_run.store._store import Store
from tests.conftest import user_without_store

DEFAULT = (".local", "share", "otel-run")


def test_codeflash_gets_a_scratch_home_and_keeps_the_callers_default_store(tmp_path: Path) -> None:
    home, scratch = tmp_path / "home", tmp_path / "scratch-home"
    environ = {"HOME": str(home), "PATH": os.defpath}

    env = codeflash_environment(environ, scratch, 1.0)

    assert env["HOME"] == str(scratch)
    assert env["OTEL_RUN_STORE"] == str(home.joinpath(*DEFAULT))
    assert "OTEL_RUN_STORE" not in environ  # the caller's mapping is left alone


def test_the_store_is_resolved_from_the_callers_xdg_data_home_and_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch-home"
    xdg = codeflash_environment({"HOME": "/nonexistent", "XDG_DATA_HOME": str(tmp_path / "data")}, scratch, 1.0)
    assert xdg["OTEL_RUN_STORE"] == str(tmp_path / "data" / "otel-run")

    monkeypatch.chdir(tmp_path)
    relative = codeflash_environment({"HOME": "/nonexistent", "OTEL_RUN_STORE": "rel/store"}, scratch, 1.0)
    assert relative["OTEL_RUN_STORE"] == str(tmp_path / "rel" / "store")
    assert with_store({"OTEL_RUN_STORE": "/a"}, "b")["OTEL_RUN_STORE"] == str(tmp_path / "b")  # --store wins


def test_the_demo_path_writes_its_run_to_the_invoking_users_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """``otel-demo`` with no ``OTEL_RUN_STORE``: the services and the optimize
    run see the default store of the test's ``HOME``, codeflash (here a stand-in
    that reports what it got) sees a scratch ``HOME``, and the final
    ``otel-trace show`` finds the run."""
    home = tmp_path / "home"
    home.mkdir()
    user_without_store(monkeypatch, home)
    default = home.joinpath(*DEFAULT)

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("otel-run", "otel-trace"):
        (bin_dir / tool).symlink_to(_cli.BIN / tool)
    codeflash = bin_dir / "codeflash"
    codeflash.write_text(
        f"#!{sys.executable}\n"
        "import os\n"
        "print('stand-in codeflash HOME=' + os.environ['HOME'])\n"
        "print('stand-in codeflash OTEL_RUN_STORE=' + os.environ['OTEL_RUN_STORE'])\n"
    )
    codeflash.chmod(0o755)
    monkeypatch.setattr(_cli, "BIN", bin_dir)

    seen: list[Mapping[str, str]] = []

    @contextmanager
    def no_services(
        project: Path, llm_port: int, latency_scale: float, environ: Mapping[str, str], **_: object
    ) -> Iterator[Path]:
        seen.append(dict(environ))
        yield tmp_path

    monkeypatch.setattr(_cli, "services", no_services)

    code = _cli.main(["--looping-time", "1"])
    out, err = capfd.readouterr()

    assert code == 0, err
    [services_env] = seen
    assert services_env["OTEL_RUN_STORE"] == str(default) and services_env["HOME"] == str(home)
    lines = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("stand-in codeflash "))
    assert lines["stand-in codeflash HOME"] != str(home)  # codeflash's scratch HOME ...
    assert not Path(lines["stand-in codeflash HOME"]).exists()  # ... is gone, the run is not
    assert lines["stand-in codeflash OTEL_RUN_STORE"] == str(default)

    [run] = [r for r in Store(str(default)).runs() if r.label == "demo"]
    assert run.finished and run.exit_code == 0 and run.command[-2:] == ["optimize", "foo.py"]
    assert f"trace {run.trace_id}" in out and "waterfall" in out  # the final otel-trace show
    assert "error" not in err, err


def test_a_run_missing_from_the_store_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    user_without_store(monkeypatch, tmp_path)

    @contextmanager
    def no_services(*args: object, **kwargs: object) -> Iterator[Path]:
        yield tmp_path

    monkeypatch.setattr(_cli, "services", no_services)
    monkeypatch.setattr(_cli, "optimize", lambda *args, **kwargs: (0, None))

    assert _cli.main(["--store", str(tmp_path / "s")]) == 1
    assert capfd.readouterr().err == f"otel-demo: error: the optimize run is not in the store {tmp_path / 's'}\n"
