# exchange-store: `make run` sets up and runs the demo, `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PIP_FLAGS ?= --disable-pip-version-check -q

.PHONY: help run test test-reliability lint bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install $(PIP_FLAGS) -e '.[test]'
	touch $@

run: $(VENV)/.installed  ## set up and run the main job (demo on the local filesystem)
	$(BIN)/exchange-store keygen --exist-ok var/snapshot.key
	$(BIN)/exchange-store keygen --exist-ok var/exchange.key
	$(BIN)/exchange-store demo --etc etc

# Azurite (Azure Blob emulator, an npm package) for the Azure tests; without npm they skip.
.tools/.azurite:
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix .tools --no-audit --no-fund --silent azurite@3 && touch $@ \
	  || echo "npm could not install azurite: the Azure tests will be skipped"; \
	else echo "npm not found: the Azure tests will be skipped"; fi

test: $(VENV)/.installed-test .tools/.azurite  ## set up and run the whole test suite
	$(PY) -m pytest -q -m "not reliability"

test-reliability: $(VENV)/.installed-test  ## the full reliability sweep (crash points, fuzz, races)
	$(PY) -m pytest -q -m reliability tests/reliability

lint: $(VENV)/.installed-test  ## ruff, mypy and the architecture contract (import-linter)
	$(BIN)/ruff check exchange_store tests bench
	$(BIN)/ruff format --check exchange_store tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.installed  ## the storage benchmark with in-run baselines
	$(BIN)/exchange-store bench --etc etc

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
