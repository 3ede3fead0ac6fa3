"""Down files beside their up files: found, checked, never run by migrate."""

from __future__ import annotations

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
