"""The Python API (one function per command), migrator.testing, and what the reporters show:
JSON documents after a failure, server NOTICEs, and the live line on a terminal."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, Database, cli, subprocess_env, write

import migrator
from migrator.model import FileState

MARK = "\n--> statement-breakpoint\n"
GOOD = {
    "sql/public/0001_account.sql": "CREATE TABLE account (id int);"
    + MARK
    + "CREATE INDEX ON account (id);",
    "sql/public/0002_role.sql": "CREATE TABLE role (name text);",
}
FAILING = "INSERT INTO role VALUES ('a');" + MARK + "SELECT * FROM no_such_table;"


def test_migrate_returns_the_files_applied_and_those_left_pending(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, GOOD)
    result = migrator.migrate(database_url=database.url, to=1)
    assert [(o.schema, o.version, o.name, o.chunks_run) for o in result.applied] == [
        ("public", 1, "0001_account.sql", 2)
    ]
    assert result.applied[0].duration_ms >= 0
    assert [(s.version, s.state) for s in result.pending] == [(2, FileState.PENDING)]
    assert database.journal() == [(1, "applied", 2, 2)]

    again = migrator.migrate(database_url=database.url)
    assert [o.version for o in again.applied] == [2] and again.pending == ()
    assert database.journal() == [(1, "applied", 2, 2), (2, "applied", 1, 1)]
    assert migrator.migrate(database_url=database.url).applied == ()


def test_migration_failed_carries_the_files_applied_before_it(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {**GOOD, "sql/public/0003_bad.sql": FAILING})
    with pytest.raises(migrator.MigrationFailed) as caught:
        migrator.migrate(database_url=database.url)
    error = caught.value
    assert isinstance(error, migrator.MigratorError) and error.exit_code == 1
    assert [o.name for o in error.applied] == ["0001_account.sql", "0002_role.sql"]
    assert (error.path, error.chunk, error.chunks_total) == ("sql/public/0003_bad.sql", 2, 2)
    assert error.sqlstate == "42P01"
    assert 'relation "no_such_table" does not exist' in error.reason
    assert database.journal() == [(1, "applied", 2, 2), (2, "applied", 1, 1), (3, "failed", 1, 2)]
    assert database.query("SELECT name FROM role") == [("a",)]


def test_status_seed_validate_and_a_settings_object(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {**GOOD, "seeds/1_roles.sql": "INSERT INTO role VALUES ('admin');"})
    settings = migrator.Settings(database_url=database.url)
    assert "postgres" not in repr(settings)  # the URL is a secret
    before = migrator.status(settings)
    assert [s.state for s in before.migrations] == [FileState.PENDING, FileState.PENDING]
    assert before.open_work == (
        "sql/public/0001_account.sql",
        "sql/public/0002_role.sql",
        "1_roles",
    )
    migrator.migrate(settings)
    seeded = migrator.seed(settings)
    assert [(o.name, o.action) for o in seeded.outcomes] == [("1_roles", "ran")]
    assert database.query("SELECT name, status FROM public.__seeds") == [("1_roles", "SUCCESS")]
    assert migrator.validate(settings).files == 2
    assert migrator.status(settings).open_work == ()
    with pytest.raises(TypeError, match="settings given twice"):
        migrator.status(settings, lock_wait=1)
    with pytest.raises(migrator.ConfigError, match="lock_timeout: must be a duration"):
        migrator.Settings(lock_timeout="soon")
    assert migrator.status(settings, select="public").seeds == ()  # one name, not its letters


def test_a_user_project_tests_with_migrator_testing(server_url: str, tmp_path: Path) -> None:
    """A project's own conftest.py uses migrator.testing; its pytest runs in a subprocess."""
    import psycopg

    project = tmp_path / "shop"
    shutil.copytree(REPO / "tests" / "fixtures" / "user_project", project)
    environment = subprocess_env(server_url, MIGRATOR_TEST_DATABASE_URL=server_url)
    environment.pop("MIGRATOR_DATABASE_URL")

    def run_its_tests() -> subprocess.CompletedProcess[str]:
        run = subprocess.run(
            [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=project,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        with psycopg.connect(server_url, autocommit=True) as conn:  # each database dropped
            left = conn.execute(
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'migrator_test_%'"
            ).fetchone()
        assert left == (0,)
        return run

    passed = run_its_tests()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "2 passed" in passed.stdout

    # A migration that fails fails the tests with its reason and place, not a traceback.
    write(project, {"db/sql/public/0003_bad.sql": "SELECT 1;" + MARK + "SELECT * FROM nope;"})
    failed = run_its_tests()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert 'db/sql/public/0003_bad.sql:3:15: chunk 2 of 2 failed: relation "nope"' in failed.stdout
    assert "SQLSTATE 42P01" in failed.stdout
    assert "engine.py" not in failed.stdout  # none of migrator's own frames


def test_json_after_a_failure_names_the_applied_file_and_the_failure(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0001_ok.sql": "CREATE TABLE ok (id int);"})
    write(tmp_path, {"sql/public/0002_bad.sql": "SELECT * FROM no_such_table;"})
    result = cli("--json", "migrate", url=database.url)
    assert result.exit_code == 1
    document = json.loads(result.stdout)  # exactly one document
    assert [entry["path"] for entry in document["applied"]] == ["sql/public/0001_ok.sql"]
    assert document["applied"][0]["version"] == 1
    error = document["error"]
    assert (error["type"], error["path"], error["chunk"]) == (
        "MigrationFailed",
        "sql/public/0002_bad.sql",
        1,
    )
    assert error["sqlstate"] == "42P01"
    assert [entry["path"] for entry in document["pending"]] == ["sql/public/0002_bad.sql"]
    assert document["unlisted"] == [] and f"/{database.name}" in document["target"]
    assert document["exit_code"] == 1
    assert database.journal() == [(1, "applied", 1, 1), (2, "failed", 0, 1)]

    status = json.loads(cli("--json", "status", url=database.url).stdout)
    assert status["seeds"] == [] and status["drift"] == []
    assert "T" in status["migrations"][0]["finished_at"]  # ISO 8601
    validate = json.loads(cli("--json", "validate", url=database.url).stdout)
    assert validate["valid"] is True
    write(tmp_path, {"sql/public/0001_ok.sql": "CREATE TABLE ok (id bigint);"})
    drifted = cli("--json", "validate", url=database.url)
    assert drifted.exit_code == 3
    assert json.loads(drifted.stdout)["valid"] is False


NOTICE = "DO $$ BEGIN RAISE NOTICE 'x marks the spot'; RAISE WARNING 'careful'; END $$;"


def test_server_notices_reach_stderr_with_the_file_and_chunk(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0001_n.sql": "CREATE TABLE n (id int);" + MARK + NOTICE})
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert "sql/public/0001_n.sql chunks 1-2: NOTICE: x marks the spot" in result.stderr
    assert "WARNING: careful" in result.stderr
    assert "x marks" not in result.stdout
    assert database.journal() == [(1, "applied", 2, 2)]

    write(tmp_path, {"sql/public/0002_n.sql": "-- migrator: no-transaction\n" + NOTICE})
    quiet = cli("-q", "--json", "migrate", url=database.url)
    assert quiet.exit_code == 0, quiet.output
    assert "x marks" not in quiet.stderr  # -q hides notices, not warnings
    assert "sql/public/0002_n.sql chunk 1: WARNING: careful" in quiet.stderr
    messages = json.loads(quiet.stdout)["messages"]
    assert messages[0] == {
        "where": "sql/public/0002_n.sql chunk 1",
        "severity": "NOTICE",
        "message": "x marks the spot",
        "detail": "",
        "hint": "",
    }

    write(tmp_path, {"seeds/1_s.sql": NOTICE})
    seeded = cli("seed", url=database.url)
    assert seeded.exit_code == 0, seeded.output
    assert "seed 1_s: NOTICE: x marks the spot" in seeded.stderr


def test_a_terminal_shows_the_file_while_its_chunk_runs(database: Database, tmp_path: Path) -> None:
    """Under a pty, the name of the file whose chunk sleeps is on screen during the sleep."""
    write(
        tmp_path,
        {"sql/public/0001_slow.sql": "CREATE TABLE s (id int);" + MARK + "SELECT pg_sleep(5);"},
    )
    master, slave = os.openpty()
    started = time.monotonic()
    process = subprocess.Popen(
        [PYTHON, "-m", "migrator", "migrate"],
        cwd=tmp_path,
        env={**subprocess_env(database.url), "TERM": "xterm", "COLUMNS": "120"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    try:
        while time.monotonic() - started < 20 and b"0001_slow.sql" not in seen:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                seen += os.read(master, 4096)
        on_screen_at = time.monotonic()
        assert b"applying sql/public/0001_slow.sql" in seen, seen
        assert process.poll() is None, "the file's name appeared only after the run ended"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert time.monotonic() - on_screen_at > 1  # seen while the 5 s chunk still ran
    assert database.journal() == [(1, "applied", 2, 2)]


def test_a_reporter_subclass_hears_the_events_it_overrides(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, GOOD)

    class Files(migrator.Reporter):
        def __init__(self) -> None:
            self.done: list[str] = []

        def file_done(self, outcome: migrator.FileOutcome) -> None:
            self.done.append(outcome.name)

    heard = Files()
    migrator.migrate(database_url=database.url, reporter=heard)
    assert heard.done == ["0001_account.sql", "0002_role.sql"]
    assert database.journal() == [(1, "applied", 2, 2), (2, "applied", 1, 1)]
