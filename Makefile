# keyway: two commands for people — `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
BACKEND ?= embedded
PORT ?= 8080

.PHONY: install run test lint unit bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

install: $(VENV)/.installed

## Serve every function at http://127.0.0.1:$(PORT)/<function-name>/ (BACKEND=embedded|emulator)
run: install
	PORT=$(PORT) $(BIN)/keyway run --backend $(BACKEND)

## Lint, then the whole suite (unit, contract against every adapter, integration)
test: lint
	$(BIN)/pytest -q -ra

lint: install
	$(BIN)/ruff check .

## Benchmarks; results are written to benchmarks/results/
bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
