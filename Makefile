# The two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo always runs on the embedded PostgreSQL, whatever the shell has configured.
EMBEDDED := env -u MIGRATOR_DATABASE_URL -u DATABASE_URL -u PGHOST -u PGHOSTADDR -u PGPORT \
	-u PGDATABASE -u PGUSER -u PGSERVICE MIGRATOR_ENV=development

.PHONY: install test check lint demo migrate seed status status-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

check: lint test

demo: install
	$(EMBEDDED) $(BIN)/migrator migrate
	$(EMBEDDED) $(BIN)/migrator seed
	$(EMBEDDED) $(BIN)/migrator status

migrate: install
	$(BIN)/migrator migrate

seed: install
	$(BIN)/migrator seed

status: install
	$(BIN)/migrator status

# For CI: exit 3 when a migration is pending, failed or drifted, or a seed is pending or failed.
status-check: install
	$(BIN)/migrator status --check

clean:
	rm -rf $(VENV) .migrator .pytest_cache .mypy_cache .ruff_cache *.egg-info
