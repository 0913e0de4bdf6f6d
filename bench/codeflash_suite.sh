#!/usr/bin/env bash
# bench/codeflash_suite.sh VENV LABEL [STORE] — codeflash's own unit tests against the codeflash
# installed in VENV (untouched or patched by bench/case_study.py), under otel-run -l LABEL.
#
# The tests: codeflash's GitHub repository at $CODEFLASH_TESTS_COMMIT (the newest commit this
# machine could reach; no v0.20.6 tag was published there, and the 0.20.6 sdist on PyPI ships no
# tests: 178 of its 207 source files are identical at that commit, the 29 others are newer). So a
# few tests fail on the untouched install too; what a patch must not do is add a failure.
# Set CODEFLASH_SRC to a checkout (a `git clone https://github.com/codeflash-ai/codeflash`), else
# the script clones it. Only tests/ and code_to_optimize/ are copied, to $WORK/suite, so `import
# codeflash` resolves to VENV's site-packages, never to a source tree.
#
# The test-only dependencies (pytest-xdist, numpy, …) go to $WORK/suite-deps on PYTHONPATH, not
# into VENV, so the venvs stay as case_study.py measured them.
#
# Not run, because this machine cannot: tests/test_languages (JavaScript, Java, Go: node toolchains
# and a JVM from npm/Maven, network), the Java/JS tests at the top level (same), and the tests that
# need jax, torch, tensorflow or numba (multi-GiB wheels). Everything else runs, with -n 2.
#
# Prints `codeflash-suite LABEL: P passed, F failed, S skipped, E errors (exit N)` and writes
# $WORK/suite-LABEL.json (counts and the failing test ids, from pytest's JUnit XML).
set -euo pipefail

VENV=${1:?usage: bench/codeflash_suite.sh VENV LABEL [STORE]}
LABEL=${2:?usage: bench/codeflash_suite.sh VENV LABEL [STORE]}
WORK=${CASE_STUDY_WORK:-/tmp/otel-run-case-study}
STORE=${3:-$WORK/store}
CODEFLASH_TESTS_COMMIT=${CODEFLASH_TESTS_COMMIT:-d7f95a50fbfc8567419e21610cfc9767ca244cbc}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=$HERE/.venv/bin
unset PYTHONDONTWRITEBYTECODE PYTHONPATH PYTEST_ADDOPTS

if [ ! -x "$VENV/bin/python" ]; then echo "codeflash_suite: $VENV: not a venv (run bench/case_study.py setup)" >&2; exit 1; fi

SUITE=$WORK/suite
if [ ! -f "$SUITE/.commit" ] || [ "$(cat "$SUITE/.commit")" != "$CODEFLASH_TESTS_COMMIT" ]; then
  SRC=${CODEFLASH_SRC:-$WORK/codeflash-src}
  if [ ! -e "$SRC" ]; then git clone -q https://github.com/codeflash-ai/codeflash "$SRC"; fi
  rm -rf "$SUITE" && mkdir -p "$SUITE"
  git -C "$SRC" archive "$CODEFLASH_TESTS_COMMIT" tests code_to_optimize pyproject.toml | tar x -C "$SUITE"
  echo "$CODEFLASH_TESTS_COMMIT" > "$SUITE/.commit"
fi

DEPS=$WORK/suite-deps
if [ ! -f "$DEPS/.done" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --target "$DEPS" \
    pytest-xdist==3.8.0 execnet==2.1.2 numpy==2.4.6 pandas==3.1.1 scipy==1.17.1 parameterized==0.9.0 \
    timeout-decorator==0.5.0 pyrsistent==0.20.0 xarray==2026.9.0 black==26.10.1 tiktoken==0.14.0 \
    pyarrow==26.0.1 attrs==26.1.0 structlog==26.1.0 watchdog==7.1.0 bokeh==3.9.2 junitparser==5.0.3
  # pip --target also installs what they depend on (pytest 9, pluggy, requests…): the venv's own
  # versions must win, so every distribution the venv already has is removed from $DEPS again
  "$VENV/bin/python" - "$DEPS" <<'EOF'
"""Remove from a --target directory every distribution the venv already has (the venv's version wins)."""
import csv, re, shutil, sys
from importlib.metadata import distributions
from pathlib import Path

target = Path(sys.argv[1])
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
have = {norm(d.metadata["Name"]) for d in distributions()}
removed = []
for info in target.glob("*.dist-info"):
    name = norm(info.name.split("-")[0])
    if name not in have:
        continue
    record = info / "RECORD"
    for row in csv.reader(record.open()) if record.exists() else []:
        path = (target / row[0]).resolve()
        if path.is_file() and target in path.parents:
            path.unlink()
    shutil.rmtree(info, ignore_errors=True)
    removed.append(name)
for d in sorted(target.iterdir()):  # package directories left empty
    if d.is_dir() and not any(p.is_file() for p in d.rglob("*")):
        shutil.rmtree(d)
print("pruned from", target, ":", " ".join(sorted(removed)))
EOF
  touch "$DEPS/.done"
fi

cd "$SUITE"
IGNORE=(--ignore=tests/test_languages --ignore=tests/scripts)
for f in tests/test_java_*.py tests/test_javascript_*.py tests/test_js_*.py tests/test_init_javascript.py \
  tests/test_validate_javascript_code.py tests/test_fix_mock_paths_vitest.py tests/test_optimizer_js_project_root_bug.py; do
  [ -e "$f" ] && IGNORE+=("--ignore=$f")
done
set +e
PYTHONPATH=$DEPS "$BIN/otel-run" --store "$STORE" -q -l "$LABEL" -- \
  "$VENV/bin/python" -m pytest -q -n 2 -p no:cacheprovider "${IGNORE[@]}" \
  --junitxml="$WORK/suite-$LABEL.xml" -o junit_family=xunit2 tests/ > "$WORK/suite-$LABEL.log" 2>&1
code=$?
set -e
tail -3 "$WORK/suite-$LABEL.log" >&2
"$VENV/bin/python" - "$WORK/suite-$LABEL.xml" "$LABEL" "$code" "$WORK/suite-$LABEL.json" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET

xml, label, code, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
failing = []
for case in ET.parse(xml).getroot().iter("testcase"):
    name = f"{case.get('classname')}::{case.get('name')}"
    kinds = {child.tag for child in case}
    if "failure" in kinds:
        counts["failed"] += 1
        failing.append(name)
    elif "error" in kinds:
        counts["errors"] += 1
        failing.append(name)
    elif "skipped" in kinds:
        counts["skipped"] += 1
    else:
        counts["passed"] += 1
json.dump({"label": label, "exit": code, **counts, "failing": sorted(failing)}, open(out, "w"), indent=1)
print(f"codeflash-suite {label}: {counts['passed']} passed, {counts['failed']} failed, "
      f"{counts['skipped']} skipped, {counts['errors']} errors (exit {code})")
EOF
