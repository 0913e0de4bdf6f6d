"""Test suites nobody here wrote, run bare and traced: every test has the same
outcome, and the run the same exit status, with and without pytest-xdist.

The suites come from PyPI as sdists at pinned versions, each installed with
what its tests need into a virtualenv of its own, cached under
``bench/out/third-party`` (the first run downloads; later runs reuse it).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import OTEL_RUN, REPO, Runner, clean_env

CACHE = REPO / "bench" / "out" / "third-party"
PLUGINS = Path(__file__).parent / "plugins"
SUITES = {
    # name: (sdist requirement, what its tests need besides the package)
    "attrs": ("attrs==26.1.0", ["--group", "tests"]),  # hypothesis, pympler, cloudpickle, pytest-xdist
    "more-itertools": ("more-itertools==11.2.1", ["pytest", "pytest-xdist"]),
}


@pytest.fixture(scope="module", params=sorted(SUITES))
def suite(request: pytest.FixtureRequest) -> tuple[str, Path, Path]:
    """(name, the suite's Python, its source tree), installed once per machine."""
    name = request.param
    requirement, extras = SUITES[name]
    home = CACHE / requirement.replace("==", "-")
    python, ready = home / "venv" / "bin" / "python", home / "ready"
    if not ready.exists():
        home.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        run([*pip, "download", "--no-binary", ":all:", "--no-deps", "-d", str(home), requirement])
        [sdist] = home.glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            # extraction filters came in 3.11.4 (Debian 12's python3 is 3.11.2): a pinned sdist from PyPI either way
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(home, **safe)  # type: ignore[arg-type]
        run([sys.executable, "-m", "venv", str(home / "venv")])
        run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-U", "pip"])
        source = source_of(home)
        run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", ".", *extras], cwd=source)
        ready.touch()
    return name, python, source_of(home)


@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "xdist"])
def test_a_third_party_suite_has_the_same_outcomes_bare_and_traced(
    suite: tuple[str, Path, Path], workers: int, runner: Runner, tmp_path: Path
) -> None:
    name, python, source = suite
    args = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "otel_run_deterministic"]
    args += ["-n", str(workers)] if workers else ["-p", "no:xdist"]
    env = clean_env(PYTHONPATH=str(PLUGINS))
    bare = pytest_outcomes(args, env, source, tmp_path / "bare.xml")
    traced = pytest_outcomes(
        [OTEL_RUN, "-q", *args], {**env, **runner.env(PYTHONPATH=str(PLUGINS))}, source, tmp_path / "traced.xml"
    )
    assert traced[0] == bare[0], f"{name}: exit status {traced[0]} traced, {bare[0]} bare"
    assert len(bare[1]) > 100, f"{name}: only {len(bare[1])} tests ran"
    differ = {
        t: (bare[1].get(t), traced[1].get(t))
        for t in bare[1].keys() | traced[1].keys()
        if bare[1].get(t) != traced[1].get(t)
    }
    assert not differ, f"{name}: {len(differ)} tests differ (bare, traced): {sorted(differ.items())[:10]}"
    _, trace = runner.last()
    assert {s.trace_id for s in trace.spans} == {trace.trace_id} and len(trace.roots) == 1  # one trace, no orphans
    if workers:
        assert sum(1 for s in trace.processes if s.name.startswith("pytest-xdist gw")) == workers


def pytest_outcomes(args: list[str], env: dict[str, str], cwd: Path, xml: Path) -> tuple[int, dict[str, str]]:
    """Exit status and {test id: passed|failed|error|skipped} from junit XML."""
    result = subprocess.run([*args, f"--junitxml={xml}"], env=env, cwd=cwd, capture_output=True, timeout=900)
    outcomes: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "passed"
    return result.returncode, outcomes


def source_of(home: Path) -> Path:
    return next(p for p in home.iterdir() if p.is_dir() and (p / "pyproject.toml").exists())


def run(command: list[str], cwd: Path | None = None) -> None:
    subprocess.run(command, cwd=cwd, check=True, timeout=900)
