# Two entry points for a fresh machine with Python 3.11+, pip and make:
#   make demo   set up, simulate a day of delivery attempts and print its report, then run the
#               live demo (partner simulator, engine, real client) and open the dashboard on both
#   make test   set up, run the whole test suite
# Both create .venv and install the project on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data
ATTEMPTS ?= 2000000
SIM_DATE ?= 2026-11-27

.PHONY: demo test lint bench clean-data

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deliverydash simulate --attempts $(ATTEMPTS) --date $(SIM_DATE) --data-dir $(DATA_DIR) --replace
	$(BIN)/deliverydash report --data-dir $(DATA_DIR) --date $(SIM_DATE)
	$(BIN)/deliverydash demo --data-dir $(DATA_DIR)
	$(BIN)/deliverydash dashboard --data-dir $(DATA_DIR)

# The suite on TEST_WORKERS pytest-xdist workers (the machines have 2 cores), each test file on one
# worker so that its module fixtures are built once (docs/testing.md). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	@.ci/ensure-chromium
	@.ci/ensure-node
	@.ci/ensure-postgres
	@.ci/ensure-java
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean-data:
	rm -rf $(DATA_DIR)/attempts
