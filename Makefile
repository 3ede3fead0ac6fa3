# The two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo always runs on the embedded PostgreSQL, whatever the shell has configured.
EMBEDDED := env -u MIGRATOR_DATABASE_URL -u DATABASE_URL -u PGHOST -u PGHOSTADDR -u PGPORT \
	-u PGDATABASE -u PGUSER -u PGSERVICE MIGRATOR_ENV=development

.PHONY: install test check lint demo migrate seed status status-check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# The distribution was called migrator before it became migrator-sql: never both.
	$(BIN)/pip uninstall --quiet --yes migrator 2>/dev/null || true
	@# PYTHONWARNINGS: setuptools prints a notice box for every editable install.
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The suite runs on the machine's PostgreSQL when 127.0.0.1:5432 answers (or on
# MIGRATOR_TEST_DATABASE_URL), then again on the embedded one, a second major version.
LOCAL_PG := postgresql://postgres@127.0.0.1:5432/postgres
test: install
	$(BIN)/pytest -q
	@if [ -n "$$MIGRATOR_TEST_DATABASE_URL" ] || $(BIN)/python -c "import psycopg; \
		psycopg.connect('$(LOCAL_PG)', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== again on the embedded PostgreSQL =="; \
		MIGRATOR_TEST_SERVER=embedded $(BIN)/pytest -q; \
	fi

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

# For CI: fails (make exits 2) while a migration is pending, failed or drifted, or a seed is
# pending or failed; `migrator status --check` itself exits 3 then.
status-check: install
	$(BIN)/migrator status --check

# Timings against the psql floor, with the targets (not part of `make test`).
# Bytecode compiled first, as a pip install would have it (PYTHONDONTWRITEBYTECODE=1 would
# otherwise have every timed start compile migrator's modules again).
bench: install
	$(BIN)/python -m compileall -q migrator
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) .migrator .pytest_cache .mypy_cache .ruff_cache *.egg-info
