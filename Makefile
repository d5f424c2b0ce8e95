# keyway: two commands for people — `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
BACKEND ?= embedded
PORT ?= 8080

.PHONY: install test-deps run test lint bench clean package infra-check chromium

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# The OAuth 2.0 authorization server the end-to-end tests run (npm oidc-provider, pinned).
tests/oidc_server/node_modules/.installed: tests/oidc_server/package.json tests/oidc_server/package-lock.json
	npm ci --prefix tests/oidc_server --no-audit --no-fund --loglevel=error
	touch $@

# GitHub's published REST and GraphQL descriptions, for the simulator contract tests (npm, pinned).
tests/provider_specs/node_modules/.installed: tests/provider_specs/package.json tests/provider_specs/package-lock.json
	npm ci --prefix tests/provider_specs --no-audit --no-fund --loglevel=error
	touch $@

# Swagger UI for /api/docs (npm swagger-ui-dist, pinned; install scripts off: files only).
VIEWER := shared/console/viewer/node_modules/.installed
$(VIEWER): shared/console/viewer/package.json shared/console/viewer/package-lock.json
	npm ci --prefix shared/console/viewer --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium and chromedriver for the console's browser tests (tests/browser/).
CHROMIUM_PACKAGES := chromium chromium-driver
chromium:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(CHROMIUM_PACKAGES); \
	  else echo "browser tests: install Chromium with: sudo apt-get install $(CHROMIUM_PACKAGES)"; fi; \
	fi

install: $(VENV)/.installed

# checkov pins packaging<24, which pytest cannot share: it gets a venv of its own.
CHECKOV_VERSION := 3.3.30
.venv-checkov/.installed:
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $@

## One zip per function in dist/ (what Cloud Build deploys)
package: install $(VIEWER)
	$(BIN)/python -m keyway.package dist

## Terraform: policy inputs current, checkov clean
infra-check: install .venv-checkov/.installed
	$(BIN)/python -m keyway.infra_export --check
	.venv-checkov/bin/checkov -d infra --quiet --compact --skip-download

test-deps: install tests/oidc_server/node_modules/.installed tests/provider_specs/node_modules/.installed $(VIEWER) chromium

## Serve every function at http://127.0.0.1:$(PORT)/<function-name>/ (BACKEND=embedded|emulator)
run: install $(VIEWER)
	PORT=$(PORT) $(BIN)/keyway run --backend $(BACKEND)

## Lint, then the whole suite (unit, contract against every adapter, integration)
test: lint infra-check test-deps
	$(BIN)/pytest -q -ra

lint: install
	$(BIN)/ruff check .

## Benchmarks; results are written to benchmarks/results.md and benchmarks/results.json
bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
