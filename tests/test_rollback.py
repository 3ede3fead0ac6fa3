"""`rollback`: applied files reverted with their down files, a transaction per chunk, resumably."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Database, cli, write

import migrator
from migrator.errors import MigrationFailed

# Each down chunk leaves a row in public.log, so "ran exactly once" can be counted.
SETUP = "CREATE TABLE public.log (what text NOT NULL)"


def log(what: str) -> str:
    return f"INSERT INTO public.log VALUES ('{what}');\n"


BREAK = "--> statement-breakpoint\n"
FILES = {
    "sql/public/0001_item.sql": "CREATE TABLE item (id int);\n",
    "sql/public/0001_item.down.sql": log("down 1") + BREAK + "DROP TABLE item;\n",
    "sql/public/0002_price.sql": "ALTER TABLE item ADD price int;\n"
    + BREAK
    + "CREATE INDEX CONCURRENTLY item_price ON item (price);\n",
    "sql/public/0002_price.down.sql": "DROP INDEX CONCURRENTLY item_price;\n"
    + BREAK
    + log("down 2")
    + BREAK
    + "ALTER TABLE item DROP price;\n",
    "sql/public/0003_tag.sql": "CREATE TABLE tag (name text);\n",
    "sql/public/0003_tag.down.sql": log("down 3") + BREAK + "DROP TABLE tag;\n",
}


@pytest.fixture
def applied(database: Database, tmp_path: Path) -> Database:
    """The three files applied."""
    database.query(SETUP)
    write(tmp_path, FILES)
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.journal() == [(1, "applied", 1, 1), (2, "applied", 2, 2), (3, "applied", 1, 1)]
    return database


def logged(database: Database) -> list[str]:
    return sorted(what for (what,) in database.query("SELECT what FROM public.log"))


def relation(database: Database, name: str) -> Any:
    return database.scalar("SELECT to_regclass(%s)", (name,))


def column(database: Database, table: str, name: str) -> bool:
    return bool(
        database.scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = %s"
            " AND column_name = %s",
            (table, name),
        )
    )


def test_rollback_reverts_the_newest_file_which_migrate_applies_again(applied: Database) -> None:
    result = cli("rollback", url=applied.url)
    assert result.exit_code == 0, result.output
    assert "reverted 1 file of public, 2 down chunks" in result.stdout
    assert "reverting sql/public/0003_tag.sql with 0003_tag.down.sql" in result.stderr
    assert relation(applied, "public.tag") is None
    assert relation(applied, "public.item") == "item"
    assert applied.journal() == [(1, "applied", 1, 1), (2, "applied", 2, 2)]
    assert logged(applied) == ["down 3"]
    # Who reverted what, and when, is kept after the row is gone.
    history = applied.query(
        "SELECT version, name, down_name, reverted_by = current_user, reverted_at IS NOT NULL,"
        " applied_at IS NOT NULL, content FROM public.__migrations_history"
    )
    assert history == [
        (3, "0003_tag.sql", "0003_tag.down.sql", True, True, True, FILES["sql/public/0003_tag.sql"])
    ]
    status = json.loads(cli("--json", "status", url=applied.url).stdout)
    assert [(m["version"], m["state"]) for m in status["migrations"]] == [
        (1, "applied"),
        (2, "applied"),
        (3, "pending"),
    ]
    again = cli("migrate", url=applied.url)
    assert again.exit_code == 0, again.output
    assert "applied 1 file" in again.stdout
    assert relation(applied, "public.tag") == "tag"
    assert applied.journal()[-1] == (3, "applied", 1, 1)


def test_steps_and_to_choose_how_many_files_go(applied: Database) -> None:
    two = cli("rollback", "public", "--steps", "2", url=applied.url)
    assert two.exit_code == 0, two.output
    assert applied.journal() == [(1, "applied", 1, 1)]
    assert relation(applied, "public.item_price") is None
    assert not column(applied, "item", "price")
    assert logged(applied) == ["down 2", "down 3"]
    assert cli("migrate", url=applied.url).exit_code == 0
    to = cli("rollback", "--to", "1", url=applied.url)
    assert to.exit_code == 0, to.output
    assert "reverted 2 files of public" in to.stdout
    assert applied.journal() == [(1, "applied", 1, 1)]  # version 1 stays
    everything = cli("rollback", "--to", "0", url=applied.url)
    assert everything.exit_code == 0, everything.output
    assert applied.scalar("SELECT count(*) FROM public.__migrations") == 0
    assert relation(applied, "public.item") is None
    nothing = cli("rollback", url=applied.url)
    assert nothing.exit_code == 0
    assert "nothing to roll back" in nothing.stdout
    reverted = applied.query(
        "SELECT version FROM public.__migrations_history ORDER BY reverted_at, id"
    )
    assert [v for (v,) in reverted] == [3, 2, 3, 2, 1]


def test_a_missing_down_file_is_refused_before_anything_is_reverted(
    applied: Database, tmp_path: Path
) -> None:
    (tmp_path / "sql/public/0002_price.down.sql").unlink()
    result = cli("rollback", "--steps", "2", url=applied.url)
    assert result.exit_code == 2
    assert "sql/public/0002_price.sql: no down file 0002_price.down.sql beside it" in result.stderr
    assert "Nothing was reverted" in result.stderr
    assert relation(applied, "public.tag") == "tag"
    assert len(applied.journal()) == 3
    assert logged(applied) == []


def test_a_bad_down_file_in_the_plan_is_refused_before_anything_runs(
    applied: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0002_price.down.sql": "BEGIN;\nDROP INDEX item_price;\n"})
    result = cli("rollback", "--to", "0", url=applied.url)
    assert result.exit_code == 2
    assert "0002_price.down.sql" in result.stderr
    assert len(applied.journal()) == 3
    assert logged(applied) == []


def test_a_failed_down_chunk_stops_and_the_next_rollback_resumes_there(
    applied: Database, tmp_path: Path
) -> None:
    broken = log("down 3") + BREAK + "DROP TABLE no_such_table;\n" + BREAK + "DROP TABLE tag;\n"
    write(tmp_path, {"sql/public/0003_tag.down.sql": broken})
    failed = cli("rollback", url=applied.url)
    assert failed.exit_code == 1
    assert "sql/public/0003_tag.down.sql:3:1: chunk 2 of 3 failed" in failed.stderr
    assert 'table "no_such_table" does not exist' in failed.stderr
    row = applied.query(
        "SELECT status, down_chunks_done, error IS NOT NULL FROM public.__migrations"
        " WHERE version = 3"
    )
    assert row == [("applied", 1, True)]
    assert logged(applied) == ["down 3"]
    status = cli("status", url=applied.url)
    assert "reverting" in status.stdout and "down 1/3" in status.stdout
    assert "failed at down chunk 2 of 3" in status.stdout
    assert cli("status", "--check", url=applied.url).exit_code == 3
    # migrate refuses while the rollback is unfinished, and says so.
    refused = cli("migrate", url=applied.url)
    assert refused.exit_code == 3
    assert "a rollback is unfinished; nothing was applied" in refused.stderr
    assert "migrator rollback" in refused.stderr
    fixed = broken.replace("no_such_table", "IF EXISTS no_such_table")
    write(tmp_path, {"sql/public/0003_tag.down.sql": fixed})
    resumed = cli("rollback", url=applied.url)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at chunk 2" in resumed.stderr
    assert "(2 down chunks, resumed at chunk 2)" in resumed.stderr
    assert logged(applied) == ["down 3"]  # the first chunk's side effect, once
    assert relation(applied, "public.tag") is None
    assert [v for v, *_ in applied.journal()] == [1, 2]
    assert cli("migrate", url=applied.url).exit_code == 0
    assert relation(applied, "public.tag") == "tag"


def test_a_down_chunk_that_ran_cannot_be_edited_before_resuming(
    applied: Database, tmp_path: Path
) -> None:
    broken = log("down 3") + BREAK + "DROP TABLE no_such_table;\n"
    write(tmp_path, {"sql/public/0003_tag.down.sql": broken})
    assert cli("rollback", url=applied.url).exit_code == 1
    edited = log("edited") + BREAK + "DROP TABLE tag;\n"
    write(tmp_path, {"sql/public/0003_tag.down.sql": edited})
    refused = cli("rollback", url=applied.url)
    assert refused.exit_code == 3
    assert "0003_tag.down.sql: chunk 1 changed after it ran" in refused.stderr
    assert cli("validate", url=applied.url).exit_code == 3
    assert logged(applied) == ["down 3"]
    # repair goes on with the down file as it is now, its committed chunk kept as done.
    repaired = cli("repair", "--reason", "chunk 1 ran", "--yes", url=applied.url)
    assert repaired.exit_code == 0, repaired.output
    resumed = cli("rollback", url=applied.url)
    assert resumed.exit_code == 0, resumed.output
    assert logged(applied) == ["down 3"]
    assert relation(applied, "public.tag") is None


def test_repair_restart_clears_an_unfinished_rollback(applied: Database, tmp_path: Path) -> None:
    broken = log("down 3") + BREAK + "DROP TABLE no_such_table;\n"
    write(tmp_path, {"sql/public/0003_tag.down.sql": broken})
    assert cli("rollback", url=applied.url).exit_code == 1
    repaired = cli("repair", "--restart", "--reason", "undone by hand", "--yes", url=applied.url)
    assert repaired.exit_code == 0, repaired.output
    row = applied.query(
        "SELECT status, down_chunks_done FROM public.__migrations WHERE version = 3"
    )
    assert row == [("applied", None)]
    assert cli("migrate", url=applied.url).exit_code == 0
    assert cli("status", "--check", url=applied.url).exit_code == 0


def test_production_without_confirmation_exits_4_and_reverts_nothing(applied: Database) -> None:
    env = {"MIGRATOR_ENV": "production"}
    refused = cli("rollback", url=applied.url, env=env)
    assert refused.exit_code == 4
    assert "0003_tag.sql with 0003_tag.down.sql" in refused.stdout  # the plan, shown first
    assert len(applied.journal()) == 3
    assert relation(applied, "public.tag") == "tag"
    assert logged(applied) == []
    wrong = cli("rollback", "--confirm", "other", url=applied.url, env=env)
    assert wrong.exit_code == 4
    assert len(applied.journal()) == 3
    confirmed = cli("rollback", "--confirm", applied.name, url=applied.url, env=env)
    assert confirmed.exit_code == 0, confirmed.output
    assert len(applied.journal()) == 2


def test_run_mode_guard_refuses_rollback(applied: Database) -> None:
    env = {"MIGRATOR_REQUIRE_RUN_MODE": "true"}
    assert cli("rollback", url=applied.url, env=env).exit_code == 4
    assert len(applied.journal()) == 3


def test_dry_run_prints_the_down_sql_and_changes_nothing(applied: Database) -> None:
    result = cli("rollback", "--steps", "2", "--dry-run", url=applied.url)
    assert result.exit_code == 0, result.output
    assert "rollback plan" in result.stdout
    assert "sql/public/0003_tag.sql with 0003_tag.down.sql: 2 chunks" in result.stdout
    assert "DROP TABLE tag;" in result.stdout
    assert "chunk 1 (line 1) runs outside a transaction: DROP INDEX CONCURRENTLY" in result.stdout
    assert len(applied.journal()) == 3
    assert relation(applied, "public.tag") == "tag"
    assert applied.scalar("SELECT to_regclass('public.__migrations_history')") is None
    document = json.loads(cli("--json", "rollback", "--dry-run", url=applied.url).stdout)
    assert [(p["path"], p["down"]) for p in document["plan"]] == [
        ("sql/public/0003_tag.sql", "sql/public/0003_tag.down.sql")
    ]
    assert document["plan"][0]["chunks"][1]["sql"].strip() == "DROP TABLE tag;"
    assert len(applied.journal()) == 3


def test_json_lists_the_files_reverted(applied: Database) -> None:
    result = cli("--json", "rollback", "--steps", "2", url=applied.url)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "public"
    assert [(r["version"], r["chunks_run"]) for r in document["reverted"]] == [(3, 2), (2, 3)]
    assert document["exit_code"] == 0


def test_without_a_schema_it_asks_for_one_when_several_have_applied_files(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": "CREATE TABLE a (id int);\n",
            "sql/public/0001_a.down.sql": "DROP TABLE a;\n",
            "sql/extra/0001_b.sql": "CREATE TABLE b (id int);\n",
            "sql/extra/0001_b.down.sql": "DROP TABLE b;\n",
        },
    )
    assert cli("migrate", url=database.url).exit_code == 0
    result = cli("rollback", url=database.url)
    assert result.exit_code == 2
    assert "2 have applied files" in result.stderr and "migrator rollback" in result.stderr
    assert len(database.journal()) == 1 and len(database.journal("extra")) == 1
    named = cli("rollback", "extra", url=database.url)
    assert named.exit_code == 0, named.output
    assert database.journal("extra") == []
    # Now only public has applied files: no schema needed.
    alone = cli("rollback", url=database.url)
    assert alone.exit_code == 0, alone.output
    assert database.journal() == []


def test_a_failed_up_run_is_not_rolled_back(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": "CREATE TABLE a (id int);\n" + BREAK + "SELECT 1/0;\n",
            "sql/public/0001_a.down.sql": "DROP TABLE a;\n",
        },
    )
    assert cli("migrate", url=database.url).exit_code == 1
    result = cli("rollback", url=database.url)
    assert result.exit_code == 2
    assert "only an applied file can be reverted" in result.stderr
    assert database.journal() == [(1, "failed", 1, 2)]


def test_the_journal_keeps_the_down_hash_and_the_plan_says_when_it_changed(
    applied: Database, tmp_path: Path
) -> None:
    hashes = applied.query("SELECT version, down_hash IS NOT NULL FROM public.__migrations")
    assert sorted(hashes) == [(1, True), (2, True), (3, True)]
    write(tmp_path, {"sql/public/0003_tag.down.sql": "DROP TABLE tag;\n"})
    result = cli("rollback", "--dry-run", url=applied.url)
    assert "note: its down file changed since it was applied" in result.stdout


def test_a_journal_made_before_down_columns_is_read_and_then_given_them(
    database: Database, tmp_path: Path
) -> None:
    database.query(SETUP)
    write(tmp_path, {k: v for k, v in FILES.items() if "0003" not in k})
    assert cli("migrate", url=database.url).exit_code == 0
    # As an older migrator left it: without the columns for down files.
    database.query(
        "ALTER TABLE public.__migrations DROP down_hash, DROP down_chunks_done,"
        " DROP down_chunk_hashes"
    )
    assert cli("status", "--check", url=database.url).exit_code == 0
    assert not column(database, "__migrations", "down_hash")  # status reads, never writes
    write(tmp_path, FILES)
    assert cli("migrate", url=database.url).exit_code == 0
    assert column(database, "__migrations", "down_hash")
    plan = cli("rollback", "--to", "0", "--dry-run", url=database.url).stdout
    # The files applied before the columns were there have no down hash on record.
    assert plan.count("note: no down file was journaled when it was applied") == 2
    rolled = cli("rollback", "--to", "0", url=database.url)
    assert rolled.exit_code == 0, rolled.output
    assert database.journal() == []
    assert logged(database) == ["down 1", "down 2", "down 3"]


def test_the_python_api_returns_the_reverted_files(applied: Database) -> None:
    result = migrator.rollback(database_url=applied.url, steps=2)
    assert [(o.version, o.path) for o in result.reverted] == [
        (3, "sql/public/0003_tag.sql"),
        (2, "sql/public/0002_price.sql"),
    ]
    assert result.schema == "public" and not result.dry_run
    assert applied.journal() == [(1, "applied", 1, 1)]


def test_the_python_api_failure_carries_what_was_reverted_before_it(
    applied: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0002_price.down.sql": "DROP TABLE no_such_table;\n"})
    with pytest.raises(MigrationFailed) as raised:
        migrator.rollback(database_url=applied.url, to=0)
    assert [o.version for o in raised.value.reverted] == [3]
    assert raised.value.path == "sql/public/0002_price.down.sql"
    assert [v for v, *_ in applied.journal()] == [1, 2]


def test_a_down_chunk_that_releases_the_lock_is_rolled_back_and_nothing_is_written(
    applied: Database, tmp_path: Path
) -> None:
    unlock = "DO $$ BEGIN EXECUTE 'SELECT pg_advisory_unlock' || '_all()'; END $$;\n"
    write(tmp_path, {"sql/public/0003_tag.down.sql": log("down 3") + unlock + "DROP TABLE tag;\n"})
    result = cli("rollback", url=applied.url)
    assert result.exit_code == 1
    assert "the chunk released the runner's advisory lock" in result.stderr
    assert logged(applied) == []  # its transaction rolled back
    assert relation(applied, "public.tag") == "tag"
    row = applied.query("SELECT down_chunks_done, error FROM public.__migrations WHERE version = 3")
    assert row == [(0, None)]  # another runner may own the journal: no failure written


# Found by a review by reproduction; each failed before its fix.


def test_a_down_file_of_comments_only_reverts_at_once(database: Database, tmp_path: Path) -> None:
    assert cli("new", "public", "thing", "--down").exit_code == 0  # the down is comments only
    with (tmp_path / "sql/public/0001_thing.sql").open("a") as up:
        up.write("CREATE TABLE thing (id int);\n")
    assert cli("migrate", url=database.url).exit_code == 0
    result = cli("rollback", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.journal() == []
    assert database.scalar("SELECT count(*) FROM public.__migrations_history") == 1


def test_repair_refuses_a_down_file_shorter_than_its_committed_chunks(
    applied: Database, tmp_path: Path
) -> None:
    broken = log("d1") + BREAK + log("d2") + BREAK + "SELECT 1/0;\n" + BREAK + "DROP TABLE tag;\n"
    write(tmp_path, {"sql/public/0003_tag.down.sql": broken})
    assert cli("rollback", url=applied.url).exit_code == 1
    write(tmp_path, {"sql/public/0003_tag.down.sql": "DROP TABLE tag;\n"})
    repaired = cli("repair", "--reason", "shorter", "--yes", url=applied.url)
    assert repaired.exit_code == 2
    assert "now has 1 chunks, but 2 of it committed" in repaired.stderr
    assert applied.scalar("SELECT down_chunks_done FROM public.__migrations WHERE version = 3") == 2


def test_a_rollback_whose_down_chunks_all_committed_deletes_the_row(
    applied: Database, tmp_path: Path
) -> None:
    # A no-transaction down that deletes its own row: put back with every chunk done.
    hostile = (
        "-- migrator: no-transaction\nDROP TABLE tag;\n"
        + BREAK
        + "DELETE FROM public.__migrations WHERE version = 3;\n"
    )
    write(tmp_path, {"sql/public/0003_tag.down.sql": hostile})
    assert cli("rollback", url=applied.url).exit_code == 1
    assert applied.scalar("SELECT down_chunks_done FROM public.__migrations WHERE version = 3") == 2
    again = cli("rollback", url=applied.url)
    assert again.exit_code == 0, again.output
    assert [v for v, *_ in applied.journal()] == [1, 2]
    assert applied.scalar("SELECT count(*) FROM public.__migrations_history") == 1


def test_a_down_made_single_transaction_does_not_run_its_committed_chunks_again(
    applied: Database, tmp_path: Path
) -> None:
    broken = log("d1") + BREAK + "SELECT 1/0;\n" + BREAK + "DROP TABLE tag;\n"
    write(tmp_path, {"sql/public/0003_tag.down.sql": broken})
    assert cli("rollback", url=applied.url).exit_code == 1
    single = "-- migrator: single-transaction\n" + broken.replace("SELECT 1/0", "SELECT 1")
    write(tmp_path, {"sql/public/0003_tag.down.sql": single})
    assert cli("repair", "--reason", "one transaction", "--yes", url=applied.url).exit_code == 0
    result = cli("rollback", url=applied.url)
    assert result.exit_code == 0, result.output
    assert logged(applied) == ["d1"]
    assert relation(applied, "public.tag") is None


def test_steps_are_refused_while_a_rollback_is_unfinished(
    applied: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0002_price.down.sql": "SELECT 1/0;\n"})
    assert cli("rollback", "--steps", "2", url=applied.url).exit_code == 1  # 3 went, 2 failed
    write(tmp_path, {"sql/public/0002_price.down.sql": "ALTER TABLE item DROP price;\n"})
    again = cli("rollback", "--steps", "2", url=applied.url)
    assert again.exit_code == 2
    assert "(without --steps)" in again.stderr
    assert [v for v, *_ in applied.journal()] == [1, 2]
    assert cli("rollback", url=applied.url).exit_code == 0
    assert [v for v, *_ in applied.journal()] == [1]


def test_baseline_is_refused_while_a_rollback_is_unfinished(
    applied: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0003_tag.down.sql": "SELECT 1/0;\n"})
    assert cli("rollback", url=applied.url).exit_code == 1
    write(tmp_path, {"sql/public/0004_more.sql": "SELECT 1;\n"})
    result = cli("baseline", "public", "--version", "4", url=applied.url)
    assert result.exit_code == 2
    assert "the rollback of 0003_tag.sql in public is unfinished" in result.stderr
    assert [v for v, *_ in applied.journal()] == [1, 2, 3]


def test_a_history_table_of_another_shape_is_refused_before_anything_runs(
    applied: Database,
) -> None:
    applied.query("CREATE TABLE public.__migrations_history (id int, note text)")
    result = cli("rollback", url=applied.url)
    assert result.exit_code == 2
    assert "rollback history" in result.stderr and "does not have the shape" in result.stderr
    assert logged(applied) == []
    assert len(applied.journal()) == 3


def test_a_down_file_that_empties_another_schemas_journal_gets_it_put_back(
    applied: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/other/0001_o.sql": "CREATE TABLE o (x int);\n"})
    assert cli("migrate", url=applied.url).exit_code == 0
    hostile = log("down 3") + BREAK + "DELETE FROM other.__migrations;\n" + BREAK
    write(tmp_path, {"sql/public/0003_tag.down.sql": hostile + "DROP TABLE tag;\n"})
    result = cli("rollback", "public", url=applied.url)
    assert result.exit_code == 1
    assert "removed rows of the journal" in result.stderr
    assert applied.journal("other") == [(1, "applied", 1, 1)]
    assert cli("migrate", url=applied.url).exit_code == 0  # nothing runs twice
