# One command per job, the same locally and in CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
DEMO_DIR ?= demo_data

.PHONY: install demo test test-fast lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, alone: pinned to the CPU build, so nothing later pulls CUDA packages in.
	$(BIN)/python -m pip install -q -c constraints.txt "torch==$$(sed -n 's/^torch==//p' constraints.txt)"
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## demo: the main job on the embedded default (SQLite, local files, local workers)
demo: $(STAMP)
	$(BIN)/hivescribe run examples/media --task transcription --workers 1 --data-dir $(DEMO_DIR)
	$(BIN)/python scripts/demo_report.py $(DEMO_DIR)

## test: the whole suite (SQLite and PostgreSQL; start PostgreSQL first, see .ci/run)
test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

## bench: throughput and claim latency; prints figures (see docs/benchmarks.md)
bench: $(STAMP)
	$(BIN)/python bench/queue.py
	$(BIN)/python bench/worker_overlap.py
	$(BIN)/python bench/export_memory.py
	$(BIN)/python bench/dashboard_load.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache .mypy_cache
