"""Down files beside their up files: found, checked, never run by migrate."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Database, cli, write

UP = "CREATE TABLE item (id int);\n--> statement-breakpoint\nCREATE INDEX item_id ON item (id);\n"
DOWN = "DROP INDEX item_id;\n--> statement-breakpoint\nDROP TABLE item;\n"


def test_migrate_applies_the_up_file_and_leaves_its_down_file_alone(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0001_item.sql": UP, "sql/public/0001_item.down.sql": DOWN})
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.journal() == [(1, "applied", 2, 2)]
    assert database.scalar("SELECT to_regclass('public.item_id')") == "item_id"
    assert cli("validate", url=database.url).exit_code == 0
    assert cli("status", "--check", url=database.url).exit_code == 0
    assert "0001_item.sql (+down)  applied" in cli("status", url=database.url).stdout
    status = cli("--json", "status", url=database.url)
    assert [entry["has_down"] for entry in json.loads(status.stdout)["migrations"]] == [True]


def test_a_down_file_without_its_up_file_is_refused_naming_it(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0001_item.sql": UP, "sql/public/0002_gone.down.sql": DOWN})
    result = cli("migrate", url=database.url)
    assert result.exit_code == 2
    assert (
        "sql/public/0002_gone.down.sql: a down file without its up file 0002_gone.sql"
        in result.stderr
    )
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None


def test_validate_checks_down_files_too(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {"sql/public/0001_item.sql": UP, "sql/public/0001_item.down.sql": "SELECT 'open;\n"},
    )
    result = cli("validate", url=database.url)
    assert result.exit_code == 2
    assert "sql/public/0001_item.down.sql:1:8: unterminated string literal" in result.stderr


def test_new_with_down_creates_both_files(tmp_path: Path) -> None:
    write(tmp_path, {"sql/public/0001_item.sql": UP})
    result = cli("new", "public", "add price", "--down")
    assert result.exit_code == 0, result.output
    assert "created sql/public/0002_add_price.sql" in result.stdout
    assert "created sql/public/0002_add_price.down.sql" in result.stdout
    up = (tmp_path / "sql/public/0002_add_price.sql").read_text()
    down = (tmp_path / "sql/public/0002_add_price.down.sql").read_text()
    assert up.startswith("-- public: add price\n")
    assert down.startswith("-- Reverts 0002_add_price.sql, newest change first.\n")
    assert sorted(p.name for p in (tmp_path / "sql/public").iterdir()) == [
        "0001_item.sql",
        "0002_add_price.down.sql",
        "0002_add_price.sql",
    ]


def test_require_down_refuses_pending_files_without_one_before_anything_runs(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_item.sql": UP,
            "sql/public/0001_item.down.sql": DOWN,
            "sql/public/0002_price.sql": "ALTER TABLE item ADD price int;\n",
        },
    )
    env = {"MIGRATOR_REQUIRE_DOWN": "true"}
    refused = cli("migrate", url=database.url, env=env)
    assert refused.exit_code == 2
    assert (
        "sql/public/0002_price.sql: no down file 0002_price.down.sql, and require_down is set"
        in refused.stderr
    )
    assert database.scalar("SELECT to_regclass('public.item')") is None  # not even 0001
    write(tmp_path, {"sql/public/0002_price.down.sql": "ALTER TABLE item DROP price;\n"})
    applied = cli("migrate", url=database.url, env=env)
    assert applied.exit_code == 0, applied.output
    assert database.journal() == [(1, "applied", 2, 2), (2, "applied", 1, 1)]


def test_the_example_project_rolls_back_entirely_and_applies_again(
    database: Database, tmp_path: Path
) -> None:
    import shutil

    from conftest import REPO

    from migrator import discovery

    shutil.copytree(REPO / "sql", tmp_path / "sql")
    shutil.copytree(REPO / "seeds", tmp_path / "seeds")
    assert cli("migrate", url=database.url).exit_code == 0
    assert cli("seed", url=database.url).exit_code == 0
    several = cli("rollback", url=database.url)
    assert several.exit_code == 2  # three schemas have applied files: which one?
    schemas = discovery.find_schemas(tmp_path / "sql")
    for schema in reversed(schemas):  # the last applied schema first
        result = cli("rollback", schema, "--to", "0", url=database.url)
        assert result.exit_code == 0, result.output
        assert database.journal(schema) == []
    left = database.query(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'v', 'i')"
        " AND c.relname NOT LIKE '\\_\\_%%' AND c.relname NOT LIKE '%%pkey'",
        (schemas,),
    )
    assert left == []
    assert (
        database.query(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = ANY(%s)",
            (schemas,),
        )
        == []
    )
    history = database.scalar(
        "SELECT (SELECT count(*) FROM public.__migrations_history)"
        " + (SELECT count(*) FROM pricing.__migrations_history)"
        " + (SELECT count(*) FROM sale.__migrations_history)"
    )
    assert history == 10
    again = cli("migrate", url=database.url)
    assert again.exit_code == 0, again.output
    assert [row[:2] for row in database.journal()] == [(v, "applied") for v in range(1, 5)]
    assert database.scalar("SELECT count(*) FROM sale.__migrations") == 2
