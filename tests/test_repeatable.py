"""Repeatable files, R__<name>.sql: applied after the versioned files whenever they change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Database, cli, write

import migrator

BREAK = "--> statement-breakpoint\n"
TABLE = "CREATE TABLE item (id int, price int);\n" + BREAK + "INSERT INTO item VALUES (1, 10);\n"


def view(expression: str = "price") -> str:
    """A repeatable view over item; each run of it adds a row to audit.runs (no reset drops it)."""
    return (
        "INSERT INTO audit.runs VALUES (clock_timestamp());\n"
        + BREAK
        + f"CREATE OR REPLACE VIEW item_view AS SELECT id, {expression} AS price FROM item;\n"
    )


@pytest.fixture
def project(database: Database, tmp_path: Path) -> Database:
    database.query("CREATE SCHEMA audit; CREATE TABLE audit.runs (at timestamptz NOT NULL)")
    write(tmp_path, {"sql/public/0001_item.sql": TABLE, "sql/public/R__item_view.sql": view()})
    return database


def runs(database: Database) -> int:
    return int(database.scalar("SELECT count(*) FROM audit.runs"))


def repeatable_rows(database: Database, schema: str = "public") -> list[tuple[Any, ...]]:
    return database.query(
        f'SELECT name, status, runs FROM "{schema}".__migrations_repeatable ORDER BY name'
    )


def test_a_repeatable_view_is_created_after_the_versioned_files_and_not_run_again_unchanged(
    project: Database,
) -> None:
    first = cli("migrate", url=project.url)
    assert first.exit_code == 0, first.output
    # After 0001 (the view reads its table), in the same run.
    assert first.stderr.index("0001_item.sql") < first.stderr.index("R__item_view.sql")
    assert project.query("SELECT id, price FROM public.item_view") == [(1, 10)]
    assert runs(project) == 1
    assert repeatable_rows(project) == [("R__item_view.sql", "applied", 1)]
    second = cli("migrate", url=project.url)
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.stdout
    assert runs(project) == 1


def test_an_edit_runs_it_again_once(project: Database, tmp_path: Path) -> None:
    assert cli("migrate", url=project.url).exit_code == 0
    write(tmp_path, {"sql/public/R__item_view.sql": view("price * 2")})
    status = json.loads(cli("--json", "status", url=project.url).stdout)
    assert [(r["name"], r["state"]) for r in status["repeatables"]] == [("R__item_view.sql", "due")]
    assert cli("validate", url=project.url).exit_code == 0  # a changed repeatable is not drift
    dry = cli("migrate", "--dry-run", url=project.url)
    assert "sql/public/R__item_view.sql: repeatable, 2 chunks, one transaction" in dry.stdout
    assert runs(project) == 1
    again = cli("migrate", url=project.url)
    assert again.exit_code == 0, again.output
    assert project.query("SELECT price FROM public.item_view") == [(20,)]
    assert runs(project) == 2
    assert cli("migrate", url=project.url).exit_code == 0
    assert runs(project) == 2
    assert repeatable_rows(project) == [("R__item_view.sql", "applied", 2)]


def test_a_failing_edit_keeps_the_previous_definition_and_fixing_it_applies_it(
    project: Database, tmp_path: Path
) -> None:
    assert cli("migrate", url=project.url).exit_code == 0
    write(tmp_path, {"sql/public/R__item_view.sql": view("no_such_column")})
    failed = cli("migrate", url=project.url)
    assert failed.exit_code == 1
    assert "sql/public/R__item_view.sql:3:" in failed.stderr
    assert 'column "no_such_column" does not exist' in failed.stderr
    assert project.query("SELECT price FROM public.item_view") == [(10,)]  # as before
    assert runs(project) == 1  # its first chunk rolled back with it
    assert repeatable_rows(project) == [("R__item_view.sql", "failed", 1)]
    status = json.loads(cli("--json", "status", url=project.url).stdout)
    assert status["repeatables"][0]["state"] == "failed"
    assert "no_such_column" in status["repeatables"][0]["detail"]
    assert cli("status", "--check", url=project.url).exit_code == 3
    write(tmp_path, {"sql/public/R__item_view.sql": view("price + 1")})
    fixed = cli("migrate", url=project.url)
    assert fixed.exit_code == 0, fixed.output
    assert project.query("SELECT price FROM public.item_view") == [(11,)]
    assert repeatable_rows(project) == [("R__item_view.sql", "applied", 2)]
    assert cli("status", "--check", url=project.url).exit_code == 0


def test_a_repeatable_in_a_schema_without_versioned_files(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/util/R__answer.sql": "CREATE OR REPLACE FUNCTION answer() RETURNS int"
            " LANGUAGE sql AS 'SELECT 42';\n"
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.scalar("SELECT util.answer()") == 42
    assert repeatable_rows(database, "util") == [("R__answer.sql", "applied", 1)]
    status = json.loads(cli("--json", "status", url=database.url).stdout)
    assert status["migrations"] == []
    assert [(r["schema"], r["name"], r["state"], r["runs"]) for r in status["repeatables"]] == [
        ("util", "R__answer.sql", "applied", 1)
    ]


def test_status_lists_every_state(project: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sql/public/R__a_gone.sql": "SELECT 1;\n",
            "sql/public/R__b_fails.sql": "SELECT 1;\n",
        },
    )
    assert cli("migrate", url=project.url).exit_code == 0
    (tmp_path / "sql/public/R__a_gone.sql").unlink()
    write(
        tmp_path,
        {
            "sql/public/R__b_fails.sql": "SELECT 1/0;\n",
            "sql/public/R__c_new.sql": "SELECT 1;\n",
        },
    )
    # migrate stops at the failing file (files run in name order); R__c_new is left.
    assert cli("migrate", url=project.url).exit_code == 1
    write(tmp_path, {"sql/public/R__item_view.sql": view("price * 3")})
    status = json.loads(cli("--json", "status", url=project.url).stdout)
    assert [(r["name"], r["state"]) for r in status["repeatables"]] == [
        ("R__a_gone.sql", "missing"),
        ("R__b_fails.sql", "failed"),
        ("R__c_new.sql", "pending"),
        ("R__item_view.sql", "due"),
    ]
    text = cli("status", url=project.url).stdout
    assert "repeatable files" in text and "R__c_new.sql" in text


def test_a_no_transaction_repeatable_runs_chunk_by_chunk(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_item.sql": TABLE,
            "sql/public/R__index.sql": "-- migrator: no-transaction\n"
            "DROP INDEX CONCURRENTLY IF EXISTS item_price;\n"
            + BREAK
            + "CREATE INDEX CONCURRENTLY item_price ON item (price);\n",
        },
    )
    assert cli("migrate", url=database.url).exit_code == 0
    assert database.scalar("SELECT to_regclass('public.item_price')") == "item_price"
    write(tmp_path, {"sql/public/R__index.sql": "CREATE INDEX CONCURRENTLY x ON item (id);\n"})
    refused = cli("migrate", url=database.url)
    assert refused.exit_code == 2
    assert "repeatable file, which runs in one transaction" in refused.stderr


def test_bad_repeatable_names_are_refused(database: Database, tmp_path: Path) -> None:
    for name, problem in [
        ("R__view.down.sql", "a repeatable file has no down file"),
        ("r__view.sql", "does not start with R__"),
        ("R__.sql", "needs a name after R__"),
    ]:
        folder = tmp_path / name.replace(".", "_")
        write(folder, {f"sql/public/{name}": "SELECT 1;\n"})
        result = cli("--sql-dir", str(folder / "sql"), "migrate", url=database.url)
        assert result.exit_code == 2, name
        assert problem in result.stderr, result.stderr


def test_new_repeatable_creates_the_file(tmp_path: Path) -> None:
    result = cli("new", "public", "Item view", "--repeatable")
    assert result.exit_code == 0, result.output
    assert "created sql/public/R__item_view.sql" in result.stdout
    assert "Repeatable" in (tmp_path / "sql/public/R__item_view.sql").read_text()
    again = cli("new", "public", "Item view", "--repeatable")
    assert again.exit_code == 2
    assert cli("new", "public", "x", "--repeatable", "--down").exit_code == 2


def test_a_rollback_makes_repeatables_due_and_migrate_makes_them_again(
    project: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0001_item.down.sql": "DROP TABLE item CASCADE;\n"})
    assert cli("migrate", url=project.url).exit_code == 0
    rolled = cli("rollback", url=project.url)
    assert rolled.exit_code == 0, rolled.output
    assert project.scalar("SELECT to_regclass('public.item_view')") is None  # dropped with item
    status = json.loads(cli("--json", "status", url=project.url).stdout)
    assert status["repeatables"][0]["state"] == "due"
    again = cli("migrate", url=project.url)
    assert again.exit_code == 0, again.output
    assert project.query("SELECT id, price FROM public.item_view") == [(1, 10)]
    assert runs(project) == 2


def test_to_and_only_leave_repeatables_for_a_full_run(project: Database, tmp_path: Path) -> None:
    assert cli("migrate", "--to", "1", url=project.url).exit_code == 0
    assert project.scalar("SELECT to_regclass('public.item_view')") is None
    assert cli("migrate", url=project.url).exit_code == 0
    assert project.scalar("SELECT to_regclass('public.item_view')") == "item_view"


def test_reset_applies_them_again(project: Database) -> None:
    assert cli("migrate", url=project.url).exit_code == 0
    result = cli("reset", "public", "--confirm", project.name, url=project.url)
    assert result.exit_code == 0, result.output
    assert project.query("SELECT id, price FROM public.item_view") == [(1, 10)]
    assert repeatable_rows(project) == [("R__item_view.sql", "applied", 1)]


def test_the_python_api_reports_them(project: Database, tmp_path: Path) -> None:
    result = migrator.migrate(database_url=project.url)
    assert [(o.name, o.repeatable) for o in result.applied] == [
        ("0001_item.sql", False),
        ("R__item_view.sql", True),
    ]
    status = migrator.status(database_url=project.url)
    assert [(r.name, r.state.value) for r in status.repeatables] == [
        ("R__item_view.sql", "applied")
    ]


def test_repair_forgets_the_row_of_a_deleted_repeatable(project: Database, tmp_path: Path) -> None:
    assert cli("migrate", url=project.url).exit_code == 0
    (tmp_path / "sql/public/R__item_view.sql").unlink()
    assert "missing" in cli("status", url=project.url).stdout
    repaired = cli("repair", "--reason", "view retired", "--yes", url=project.url)
    assert repaired.exit_code == 0, repaired.output
    assert "forget the repeatable file's row: sql/public/R__item_view.sql" in repaired.stdout
    assert repeatable_rows(project) == []
    assert project.scalar("SELECT to_regclass('public.item_view')") == "item_view"  # it stays


# Found by a review by reproduction; each failed before its fix.


def test_repeatables_run_after_every_schemas_versioned_files(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/app/0001_t.sql": "CREATE TABLE t (id int);\n",
            "sql/logs/0001_log.sql": "CREATE TABLE log (what text);\n",
            "sql/app/R__side.sql": "INSERT INTO logs.log VALUES ('app read logs');\n",
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.query("SELECT what FROM logs.log") == [("app read logs",)]


def test_a_no_transaction_repeatable_that_releases_the_lock_stops_after_that_chunk(
    project: Database, tmp_path: Path
) -> None:
    unlock = "DO $$ BEGIN EXECUTE 'SELECT pg_advisory_unlock' || '_all()'; END $$;\n"
    write(
        tmp_path,
        {
            "sql/public/R__item_view.sql": "-- migrator: no-transaction\n"
            + unlock
            + BREAK
            + "INSERT INTO audit.runs VALUES (now());\n"
        },
    )
    result = cli("migrate", url=project.url)
    assert result.exit_code == 1
    assert "chunk 1 of 2 failed: the chunk released the runner's advisory lock" in result.stderr
    assert runs(project) == 0  # chunk 2 never ran


def test_status_check_counts_an_interrupted_repeatable(project: Database) -> None:
    assert cli("migrate", url=project.url).exit_code == 0
    project.query("UPDATE public.__migrations_repeatable SET status = 'running'")
    assert cli("status", "--check", url=project.url).exit_code == 3


def test_a_rollback_in_one_schema_makes_every_schemas_repeatables_due(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/app/0001_t.sql": "CREATE TABLE t (id int);\n",
            "sql/app/0002_c.sql": "ALTER TABLE t ADD c int;\n",
            "sql/app/0002_c.down.sql": "ALTER TABLE t DROP c CASCADE;\n",
            "sql/rep/R__rv.sql": "CREATE OR REPLACE VIEW rv AS SELECT id, c FROM app.t;\n",
        },
    )
    assert cli("migrate", url=database.url).exit_code == 0
    assert cli("rollback", "app", url=database.url).exit_code == 0
    assert database.scalar("SELECT to_regclass('rep.rv')") is None  # the CASCADE took it
    assert cli("status", "--check", url=database.url).exit_code == 3
    assert cli("migrate", url=database.url).exit_code == 0
    assert database.scalar("SELECT to_regclass('rep.rv')") == "rep.rv"


def test_a_repeatable_that_empties_the_repeatable_journal_is_stopped(
    project: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/R__a.sql": "SELECT 1;\n"})
    assert cli("migrate", url=project.url).exit_code == 0
    write(tmp_path, {"sql/public/R__b.sql": "DELETE FROM public.__migrations_repeatable;\n"})
    result = cli("migrate", url=project.url)
    assert result.exit_code == 1
    assert "removed rows of the repeatable journal" in result.stderr
    rows = repeatable_rows(project)
    assert [(name, status) for name, status, _ in rows] == [
        ("R__a.sql", "applied"),
        ("R__item_view.sql", "applied"),
    ]
    # Outside a transaction what it did stays: the rows are put back.
    write(
        tmp_path,
        {
            "sql/public/R__b.sql": "-- migrator: no-transaction\n"
            "DROP TABLE public.__migrations_repeatable;\n" + BREAK + "SELECT 1;\n"
        },
    )
    dropped = cli("migrate", url=project.url)
    assert dropped.exit_code == 1
    assert "chunk 1 of 2 failed: the file removed rows of the repeatable journal" in dropped.stderr
    assert {name for name, *_ in repeatable_rows(project)} == {
        "R__a.sql",
        "R__b.sql",
        "R__item_view.sql",
    }


def test_a_repeatable_journal_of_another_shape_made_during_the_run_is_refused(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_t.sql": "CREATE TABLE public.__migrations_repeatable (name text);\n",
            "sql/public/R__v.sql": "SELECT 1;\n",
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 2
    assert "repeatable journal" in result.stderr and "does not have the shape" in result.stderr


def test_pending_lists_the_due_repeatables_a_failed_run_left(
    project: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/R__a_fails.sql": "SELECT 1/0;\n"})
    result = cli("--json", "migrate", url=project.url)
    assert result.exit_code == 1
    pending = json.loads(result.stdout)["pending"]
    assert [(p["name"], p["state"]) for p in pending] == [
        ("R__a_fails.sql", "due"),
        ("R__item_view.sql", "due"),
    ]


def test_near_miss_repeatable_names_are_refused(database: Database, tmp_path: Path) -> None:
    for name in ("R__x.SQL", "R__x.sq", "R__new\nline.sql"):
        folder = tmp_path / str(abs(hash(name)))
        write(folder, {f"sql/public/{name}": "SELECT 1;\n"})
        result = cli("--sql-dir", str(folder / "sql"), "migrate", url=database.url)
        assert result.exit_code == 2, name
