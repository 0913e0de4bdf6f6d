"""``--profile imports``: an ``import MODULE`` span per slow import, on real programs."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from otel_run.store._model import Span, Trace
from tests.conftest import OTEL_RUN, PYTHON, Runner, one

SLOW_PACKAGE = {
    "slowpkg/__init__.py": "import time\ntime.sleep(0.2)\nfrom . import inner\n",
    "slowpkg/inner.py": "import time\ntime.sleep(0.05)\n",
    "quick.py": "X = 1\n",
}

PARENT = textwrap.dedent(
    """
    import subprocess, sys
    subprocess.run([sys.executable, "child.py"], check=True)
    """
)
CHILD = "import slowpkg\nimport quick\nprint('imported')\n"


def _plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _traced(runner: Runner, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``otel-run -q ARGS`` in ``cwd`` (the test's directory: the planted modules are found from there)."""
    return subprocess.run([OTEL_RUN, "-q", *args], cwd=cwd, env=runner.env(), capture_output=True, timeout=120)


def _imports(trace: Trace) -> dict[str, Span]:
    return {s.name: s for s in trace.spans if s.name.startswith("import ")}


def test_a_slow_import_in_a_child_is_a_span_under_its_process(runner: Runner, tmp_path: Path) -> None:
    _plant(tmp_path, {**SLOW_PACKAGE, "parent.py": PARENT, "child.py": CHILD})
    result = _traced(runner, tmp_path, "--profile", "imports", "--", PYTHON, "parent.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"imported\n"
    _, trace = runner.last()
    child = one(trace, lambda s: s.is_process and s.name == "child.py")
    spans = _imports(trace)
    pkg, inner = spans["import slowpkg"], spans["import slowpkg.inner"]
    assert pkg.parent_id == child.span_id and inner.parent_id == pkg.span_id  # nested as Python nests them
    assert pkg.attributes["otel_run.import.module"] == "slowpkg"
    assert inner.attributes["otel_run.import.cumulative_us"] >= 50_000  # it slept 50 ms
    assert pkg.attributes["otel_run.import.self_us"] >= 200_000  # its own 200 ms, without inner's
    # -X importtime's two columns: cumulative = self + the children's cumulative
    pkg_cumulative = pkg.attributes["otel_run.import.cumulative_us"]
    pkg_self = pkg.attributes["otel_run.import.self_us"]
    assert abs(pkg_cumulative - pkg_self - inner.attributes["otel_run.import.cumulative_us"]) <= 2
    assert child.start_ns <= pkg.start_ns <= inner.start_ns and inner.end_ns <= pkg.end_ns <= child.end_ns
    assert pkg.attributes["thread.name"] == "MainThread"
    # the totals on the process span (whether the quick module took under 1 ms is the machine's business:
    # the threshold test below decides with a margin no machine misses)
    assert child.attributes["otel_run.import.count"] >= 3
    assert child.attributes["otel_run.import.cumulative_us"] >= pkg_cumulative
    pid = child.resource.attributes["process.pid"]
    mine = [s for s in trace.spans if s.name.startswith("import ") and s.resource.attributes["process.pid"] == pid]
    assert child.attributes["otel_run.import.spans"] == len(mine)


def test_the_threshold_sums_fast_imports_into_their_parent(runner: Runner, tmp_path: Path) -> None:
    # slowpkg sleeps 200 ms and is over 150 ms on any machine; inner (50 ms) and quick (nothing) are far under it
    _plant(tmp_path, {**SLOW_PACKAGE, "child.py": CHILD})
    result = _traced(runner, tmp_path, "--profile", "imports", "--import-threshold", "150", "--", PYTHON, "child.py")
    assert result.returncode == 0, result.stderr
    _, trace = runner.last()
    spans = _imports(trace)
    assert set(spans) == {"import slowpkg"}
    pkg = spans["import slowpkg"]
    assert pkg.attributes["otel_run.import.hidden.count"] == 1  # inner, summed into its parent
    assert pkg.attributes["otel_run.import.hidden.cumulative_us"] >= 50_000
    process = one(trace, lambda s: s.is_process and s.name == "child.py")
    assert process.attributes["otel_run.import.hidden.count"] >= 1  # quick, summed into the process span


def test_a_failed_imports_traceback_is_unchanged(runner: Runner, tmp_path: Path) -> None:
    _plant(
        tmp_path,
        {
            **SLOW_PACKAGE,
            "slowpkg/boom.py": "def f():\n    raise ValueError('boom')\nf()\n",
            "missing.py": "import slowpkg\nimport not_a_module_anywhere\n",
            "raises.py": "import slowpkg.boom\n",
        },
    )
    for program in ("missing.py", "raises.py"):
        bare = subprocess.run([PYTHON, program], cwd=tmp_path, env=runner.env(), capture_output=True, timeout=60)
        traced = _traced(runner, tmp_path, "--profile", "imports", "--", PYTHON, program)
        assert bare.returncode == traced.returncode == 1
        assert traced.stderr == bare.stderr  # no frame of the hook in the program's traceback
        assert b"Traceback" in bare.stderr
    _, trace = runner.last()  # raises.py: the import that raised is a span, and says so
    assert _imports(trace)["import slowpkg.boom"].attributes["otel_run.import.error"] == "ValueError"


THREADED = textwrap.dedent(
    """
    import threading
    def load():
        import slowpkg
    t = threading.Thread(target=load, name="loader")
    t.start(); t.join()
    """
)


def test_an_import_on_a_thread_carries_that_thread(runner: Runner, tmp_path: Path) -> None:
    _plant(tmp_path, {**SLOW_PACKAGE, "threaded.py": THREADED})
    result = _traced(runner, tmp_path, "--profile", "imports", "--", PYTHON, "threaded.py")
    assert result.returncode == 0, result.stderr
    _, trace = runner.last()
    pkg = _imports(trace)["import slowpkg"]
    assert pkg.attributes["thread.name"] == "loader"
    main = one(trace, lambda s: s.is_process and s.name == "threaded.py")
    assert pkg.parent_id == main.span_id


SPIN_AT_IMPORT = {
    "spinmod.py": textwrap.dedent(
        """
        import time
        def walrus_import_spin(seconds):
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        walrus_import_spin(1.0)
        """
    ),
    "main.py": "import spinmod\n",
}


def test_cpu_samples_taken_during_an_import_belong_to_its_span(runner: Runner, tmp_path: Path) -> None:
    _plant(tmp_path, SPIN_AT_IMPORT)
    result = _traced(runner, tmp_path, "--profile", "cpu,imports", "--", PYTHON, "main.py")
    assert result.returncode == 0, result.stderr
    _, trace = runner.last()
    span = _imports(trace)["import spinmod"]
    text = runner.trace_cli("profile", "--span", span.span_id, "--format", "text")
    assert text.returncode == 0, text.stderr
    assert "walrus_import_spin" in text.stdout.splitlines()[2]


def test_no_import_timer_unless_asked(runner: Runner, tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text("import sys, json\nprint(json.dumps(sorted(m for m in sys.modules if 'importtime' in m)))\n")
    plain = runner.run("--", PYTHON, str(prog))
    assert plain.returncode == 0 and json.loads(plain.stdout) == []
    _, trace = runner.last()
    assert not _imports(trace)
    asked = runner.run("--profile", "imports", "--", PYTHON, str(prog))
    assert json.loads(asked.stdout) == ["otel_run.bootstrap._importtime"]
