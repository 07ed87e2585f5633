# crmdeals: `make serve` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast lint format bench tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)  ## serve on 127.0.0.1:8000 with SQLite (./crmdeals.db)
	$(BIN)/crmdeals serve

lint: $(STAMP)  ## ruff, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The suite runs in two processes (pytest-xdist; tests/conftest.py says which tests stay
# together). Bytecode is cached beside the venv, not in the tree: each of the servers and
# commands the tests start, and each process's assertion rewriting, would compile it anew.
test: lint tools  ## lint, types, the whole test suite (the installed wheel and a tiny `make bench` too)
	PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/$(VENV)/pycache \
		$(BIN)/pytest --numprocesses 2 --dist loadgroup

test-fast: $(STAMP)  ## the test suite without the end-to-end tests that start servers
	$(BIN)/pytest -m "not e2e"

bench: $(STAMP) tools  ## the HTTP benchmark (bench/http.py) and its charts (bench/results/), about 25 minutes
	$(BIN)/python -m bench.http --charts bench/results
	$(BIN)/python -m bench.pg_import  # a first import: 6 clients, 300,000 deals
	$(BIN)/python -m bench.webhooks  # webhook deliveries per second, upload latency beside them

tools:  ## Debian's wrk (the benchmark's load) and pgbouncer (its tests), when missing
	@for tool in wrk pgbouncer; do \
		command -v $$tool >/dev/null || PATH="$$PATH:/usr/sbin" command -v $$tool >/dev/null || \
		apt-get install -y -q $$tool >/dev/null || \
		echo "$$tool could not be installed: the tests that need it will not run"; \
	done

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache crmdeals.db crmdeals.db-*
