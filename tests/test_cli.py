"""Bad input of every kind: exit 2, a one-line reason naming the culprit, nothing applied."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, Database, cli, subprocess_env, write

from migrator import __version__


def assert_untouched(database: Database) -> None:
    assert database.scalar("SELECT count(*) FROM pg_class WHERE relname = '__migrations'") == 0
    assert database.scalar("SELECT to_regclass('public.t')") is None


GOOD = {"sql/public/0001_t.sql": "CREATE TABLE t (id int);\n"}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"sql/public/0002_x.sql": "SELECT 1;", "sql/public/create_x.sql": "SELECT 1;"},
            "sql/public/create_x.sql: name does not fit <version>_<name>.sql",
            id="a name that does not fit",
        ),
        pytest.param(
            {"sql/public/0002_x.sql": "SELECT 1;", "sql/public/02_y.sql": "SELECT 1;"},
            "sql/public/0002_x.sql and sql/public/02_y.sql: two files with version 2",
            id="two files with one version",
        ),
        pytest.param(
            {"sql/public/0002_x.sql": b"SELECT 'caf\xe9';"},
            "sql/public/0002_x.sql: invalid UTF-8 at byte offset 11",
            id="invalid UTF-8",
        ),
        pytest.param(
            {"sql/public/0002_x.sql": "-- migrator: fast\nSELECT 1;"},
            "sql/public/0002_x.sql:1: unknown directive 'fast'",
            id="an unknown directive",
        ),
        pytest.param(
            {"sql/public/0002_x.sql": "SELECT 'oops;\n--> statement-breakpoint\nSELECT 2;"},
            "sql/public/0002_x.sql:1:8: unterminated string literal",
            id="an unterminated literal",
        ),
        pytest.param(
            {"sql/public/0002_x.sql": "CREATE TABLE u ();\nCREATE INDEX CONCURRENTLY i ON t (id);"},
            "sql/public/0002_x.sql:2:1: chunk 1: CREATE INDEX CONCURRENTLY shares its chunk",
            id="CONCURRENTLY sharing a chunk",
        ),
        pytest.param(
            {"sql/public/0002_x.sql": "BEGIN;\nCREATE TABLE u ();"},
            "chunk 1: this chunk opens a transaction and does not end it",
            id="a chunk that opens a transaction and does not end it",
        ),
        pytest.param(
            {"sql/public/0002_x.sql": "BEGIN;\nINSERT INTO t VALUES (1);\nCOMMIT AND CHAIN;"},
            "sql/public/0002_x.sql:3:1: chunk 1: COMMIT AND CHAIN leaves a transaction open",
            id="COMMIT AND CHAIN",
        ),
        pytest.param(
            {"sql/public/0002_x.sql": "-- migrator: no-transaction\nDISCARD ALL;"},
            "sql/public/0002_x.sql:2:1: chunk 1: DISCARD ALL would drop the runner's advisory lock",
            id="DISCARD ALL",
        ),
        pytest.param(
            {"sql/0002_x.sql": "SELECT 1;"},
            "sql/0002_x.sql: migrations belong in a schema folder",
            id="a file outside any schema folder",
        ),
        pytest.param(
            {"sql/public/0002_x.sql/keep": "folder"},
            "sql/public/0002_x.sql: a folder named like a migration file",
            id="a folder named like a migration",
        ),
        *(
            pytest.param(
                {f"sql/public/{name}": "SELECT 1;"},
                f"sql/public/{name}: named like a migration, but it does not end in .sql",
                id=f"a near-miss name {name!r}",
            )
            for name in ("0002_x.SQL", "0002_x.Sql", "0002_x.sq", "0002_x.sql ")
        ),
        pytest.param(
            {"sql/public/9223372036854775808_x.sql": "SELECT 1;"},
            "sql/public/9223372036854775808_x.sql: version 9223372036854775808 does not fit",
            id="a version beyond bigint",
        ),
        pytest.param(
            {"sql/public/0002_x.sql": "-- migrator: lock-timeout=30d\nSELECT 1;"},
            "sql/public/0002_x.sql:1: lock-timeout needs a duration such as 30s, 500ms or 5min, "
            "at most 24 days",
            id="a timeout beyond PostgreSQL's range",
        ),
    ],
)
def test_bad_files_exit_2_naming_the_file_and_nothing_runs(
    database: Database, tmp_path: Path, files: dict[str, str | bytes], expected: str
) -> None:
    write(tmp_path, {**GOOD, **files})
    result = cli("migrate", url=database.url)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert_untouched(database)


def test_all_bad_files_are_named_at_once(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            **GOOD,
            "sql/public/x.sql": "SELECT 1;",
            "sql/other/0001_y.sql": b"\xff",
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 2
    assert "sql/public/x.sql" in result.stderr and "sql/other/0001_y.sql" in result.stderr
    assert_untouched(database)


def test_a_bad_pending_file_in_a_later_schema_stops_the_earlier_ones(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {**GOOD, "sql/zeta/0001_bad.sql": "SELECT $$never closed;"})
    assert cli("migrate", url=database.url).exit_code == 2
    assert_untouched(database)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("not a url", "the database URL is not valid", id="not a URL"),
        pytest.param(
            "postgresql://app:s3cr3t-pw@127.0.0.1:1/app",
            "cannot connect to postgresql://app:***@127.0.0.1:1/app",
            id="an unreachable server",
        ),
        pytest.param(
            "postgresql://app:s3cr3t@pw@127.0.0.1:5432/app",
            "the database URL has an unencoded '@' in its user or password",
            id="an unencoded @ in the password",
        ),
        pytest.param(
            "postgresql://nobody:s3cr3t-pw@127.0.0.1:5432/no_such_db",
            "cannot connect to postgresql://nobody:***@127.0.0.1:5432/no_such_db",
            id="a missing database",
        ),
    ],
)
def test_bad_connections_exit_2_without_showing_the_password(
    tmp_path: Path, url: str, expected: str
) -> None:
    write(tmp_path, GOOD)
    for command in ("migrate", "status"):
        result = cli(command, url=url)
        assert result.exit_code == 2, result.output
        assert expected in result.stderr
        assert "s3cr3t" not in result.output and "pw@" not in result.output
        assert "Traceback" not in result.output


def test_database_url_flag_and_database_url_fallback(database: Database, tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    assert cli("--database-url", database.url, "migrate").exit_code == 0
    result = cli("status", env={"DATABASE_URL": database.url})
    assert result.exit_code == 0 and "1 applied" in result.stdout


def test_missing_connection_outside_development_is_a_configuration_error(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    result = cli("migrate", env={"MIGRATOR_ENV": "production"})
    assert result.exit_code == 2
    assert "no database configured for the production environment" in result.stderr


def test_missing_sql_folder_and_unknown_schema(database: Database, tmp_path: Path) -> None:
    missing = cli("migrate", url=database.url)
    assert missing.exit_code == 2 and "migrations folder sql does not exist" in missing.stderr
    write(tmp_path, GOOD)
    unknown = cli("migrate", "nope", url=database.url)
    assert unknown.exit_code == 2 and "no migrations folder for schema nope" in unknown.stderr
    assert_untouched(database)


def test_invalid_settings_are_named(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    result = cli("migrate", env={"MIGRATOR_LOCK_TIMEOUT": "soon", "MIGRATOR_LOCK_RETRIES": "-1"})
    assert result.exit_code == 2
    assert "lock_timeout" in result.stderr and "lock_retries" in result.stderr


def test_status_check_exits_3_while_anything_is_pending(database: Database, tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    pending = cli("status", "--check", url=database.url)
    assert pending.exit_code == 3
    assert "0001_t.sql  pending" in pending.stdout
    assert cli("migrate", url=database.url).exit_code == 0
    assert cli("status", "--check", url=database.url).exit_code == 0


def test_new_creates_the_next_numbered_file(tmp_path: Path) -> None:
    first = cli("new", "sale", "Add orders")
    assert first.exit_code == 0, first.output
    assert "created sql/sale/0001_add_orders.sql" in first.stdout
    write(tmp_path, {"sql/sale/0007_x.sql": "SELECT 1;"})
    second = cli("new", "sale", "refunds")
    assert (tmp_path / "sql/sale/0008_refunds.sql").is_file(), second.output
    assert cli("new", "sale", "///").exit_code == 2
    escape = cli("new", "../outside", "x")
    assert escape.exit_code == 2 and "not a schema folder name" in escape.stderr
    assert not (tmp_path / "outside").exists()
    write(tmp_path, {"sql/public": "a file where a folder should be"})
    blocked = cli("new", "public", "x")
    assert blocked.exit_code == 2 and "cannot create sql/public/0001_x.sql" in blocked.stderr


def test_version_and_module_entry_point(database: Database, tmp_path: Path) -> None:
    assert cli("--version").stdout.strip() == f"migrator {__version__}"
    write(tmp_path, GOOD)
    completed = subprocess.run(
        [PYTHON, "-m", "migrator", "migrate"],
        cwd=tmp_path,
        env=subprocess_env(database.url),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert database.journal() == [(1, "applied", 1, 1)]
    assert REPO.is_dir()
