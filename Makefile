# The few commands a person needs. `make demo` and `make test` work on a fresh clone:
# they create .venv, install what is missing (a second run installs nothing), then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-stamp
# This machine keeps the CPU build of torch in /opt/wheels; elsewhere pip's index serves it.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check $(FIND_LINKS)

.PHONY: setup demo test test-all bench lint format clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -c constraints.txt torch==2.13.0
	$(PIP) -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: setup
	$(BIN)/deepstrata demo

# The default suite: fast tests only (slow/integration/distributed/gpu sorted by markers).
test: setup
	$(BIN)/python -m pytest -m "not slow and not distributed and not gpu"

test-all: setup
	$(BIN)/python -m pytest

# Lightning, for the comparison in train_throughput.py; the constraints keep torch as it is.
bench: setup
	$(PIP) -c constraints.txt -e ".[dev,bench]"
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/predict_throughput.py

lint: setup
	$(BIN)/ruff check deepstrata tests bench
	$(BIN)/ruff format --check deepstrata tests bench

format: setup
	$(BIN)/ruff format deepstrata tests bench
	$(BIN)/ruff check --fix deepstrata tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
