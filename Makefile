PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ORCH := $(BIN)/orchestrator

.PHONY: install test lint demo bench chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check orchestrator tests bench
	$(BIN)/ruff format --check orchestrator tests bench
	$(BIN)/mypy orchestrator

demo: install
	$(BIN)/python -m orchestrator.demo

bench: install
	$(BIN)/python bench/run.py

# the whole reliability, key-safety and hostile-input suite, slow matrices included;
# writes bench/chaos.json
chaos: install
	ORCHESTRATOR_CHAOS_REPORT=bench/chaos.json $(BIN)/python -m pytest -q -o addopts="" \
		tests/reliability tests/safety tests/hostile
	@cat bench/chaos.json

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
