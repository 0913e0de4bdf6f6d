# otel-run: two commands do all set-up on a fresh machine.
#
#   make demo    codeflash optimize foo.py on bench/fixture, offline (reference backend + replay LLM), as one trace
#   make test    the whole test suite: ruff, mypy, the import layers (lint-imports), pytest (as root it first installs the
#                container engine and image the container tests use: bench/container/setup-engine)
#
#   make demo-pipeline     the small multi-process demo (HTTP service, workers, multiprocessing pool)
#   make bench             start-up and per-span benchmarks (writes results/*.md; needs hyperfine)
#   make bench-codeflash   codeflash optimize with and without otel-run (writes results/codeflash.md; ~15 min)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup engine tools demo demo-pipeline test bench bench-codeflash clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip
	$(BIN)/python -m pip install -q -e '.[test,demo,bench,vm]'
	@touch $@

demo: setup
	$(BIN)/otel-demo

demo-pipeline: setup
	$(BIN)/otel-run $(BIN)/python bench/demo/pipeline.py
	$(BIN)/otel-trace show

# podman + runc, the docker CLI and the local python image, when missing (idempotent, ~50 ms
# when all is there). Needs root; otherwise the container tests skip, naming the command.
engine:
	@if [ "$$(id -u)" -eq 0 ]; then bench/container/setup-engine; fi

# Debian's strace (the process counts are checked against strace -f), tmux (otel-trace show is
# rendered in a real terminal), chromium (the flame graph page is drawn by a real browser) and
# cloud-init (`cloud-init schema` checks infra/cloud-init.yaml), when
# missing. Needs root; otherwise those tests skip, naming it.
tools:
	@if [ "$$(id -u)" -eq 0 ] && ! (command -v strace && command -v tmux && command -v chromium && command -v cloud-init) >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q strace tmux chromium cloud-init; fi

test: setup engine tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/span_cost.py

bench-codeflash: setup
	$(BIN)/python bench/codeflash_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
