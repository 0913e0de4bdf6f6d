# otel-run: two commands do all set-up on a fresh machine.
#
#   make demo    run the demo pipeline under otel-run (embedded store, no servers) and show its trace
#   make test    the whole test suite: ruff, mypy, pytest
#   make bench   start-up and per-span benchmarks (writes results/*.md; needs hyperfine)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip
	$(BIN)/python -m pip install -q -e '.[test,demo,bench]'
	@touch $@

demo: setup
	$(BIN)/otel-run $(BIN)/python bench/demo/pipeline.py
	$(BIN)/otel-trace show

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/span_cost.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
