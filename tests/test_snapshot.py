"""dump and verify: the schema the files make, and a database that drifted from it."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from conftest import Database, cli, write

BREAK = "--> statement-breakpoint\n"
FILES = {
    "sql/public/0001_item.sql": "CREATE TABLE item (id int PRIMARY KEY, name text, price int);\n"
    + BREAK
    + "CREATE INDEX item_name ON item (name);\n",
    "sql/sale/0001_orders.sql": "CREATE TABLE orders (id int, item_id int REFERENCES item);\n",
}


def shadows(database: Database) -> list[str]:
    return [
        name
        for (name,) in database.query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'migrator_shadow_%'"
        )
    ]


def server_of(database: Database) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(database.url, dbname="postgres")


def test_dump_is_deterministic_and_leaves_migrators_tables_out(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FILES)
    assert cli("migrate", url=database.url).exit_code == 0
    first = cli("dump", url=database.url)
    assert first.exit_code == 0, first.output
    assert "wrote sql/schema.sql" in first.stdout
    text = (tmp_path / "sql/schema.sql").read_bytes()
    assert cli("dump", url=database.url).exit_code == 0
    assert (tmp_path / "sql/schema.sql").read_bytes() == text
    dumped = text.decode()
    assert 'CREATE TABLE "public"."item"' in dumped and 'CREATE TABLE "sale"."orders"' in dumped
    assert "__migrations" not in dumped and "__seeds" not in dumped
    assert "Dumped by pg_dump version" not in dumped and "\\restrict" not in dumped
    # The dump beside the schema folders is no migration.
    assert cli("status", "--check", url=database.url).exit_code == 0


def test_dump_check_fails_after_a_new_migration_until_the_file_is_regenerated(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FILES)
    assert cli("migrate", url=database.url).exit_code == 0
    assert cli("dump", url=database.url).exit_code == 0
    assert cli("dump", "--check", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0002_stock.sql": "ALTER TABLE item ADD stock int;\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    stale = cli("--json", "dump", "--check", url=database.url)
    assert stale.exit_code == 3
    document = json.loads(stale.stdout)
    assert '+    "stock" integer' in document["drift"][0]["diff"]
    assert cli("dump", url=database.url).exit_code == 0
    assert cli("dump", "--check", url=database.url).exit_code == 0


def test_verify_passes_fails_on_hand_made_drift_and_passes_again(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FILES)
    assert cli("migrate", url=database.url).exit_code == 0
    shadow = ["--shadow-url", server_of(database)]
    clean = cli("verify", *shadow, url=database.url)
    assert clean.exit_code == 0, clean.output
    assert "matches what the migration files make" in clean.stdout
    database.query("CREATE INDEX by_hand ON public.item (price)")
    database.query("ALTER TABLE public.item DROP COLUMN name CASCADE")
    drifted = cli("verify", *shadow, url=database.url)
    assert drifted.exit_code == 3
    assert 'only in the database: CREATE INDEX "by_hand"' in drifted.stderr
    assert 'only in what the files make: "name" "text"' in drifted.stderr
    assert shadows(database) == []  # dropped, also after a failure
    database.query("DROP INDEX public.by_hand")
    # Undone so that the columns stand in the order the files made them.
    database.query("ALTER TABLE public.item DROP price, ADD name text, ADD price int")
    database.query("CREATE INDEX item_name ON public.item (name)")
    again = cli("verify", *shadow, url=database.url)
    assert again.exit_code == 0, again.output
    assert shadows(database) == []


def test_verify_drops_the_shadow_when_a_file_fails_there(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0001_a.sql": "SELECT 1/0;\n"})
    assert cli("baseline", "public", "--version", "1", url=database.url).exit_code == 0
    result = cli("verify", "--shadow-url", server_of(database), url=database.url)
    assert result.exit_code == 1
    assert "empty shadow database" in result.stderr
    assert shadows(database) == []


def test_dump_after_migrate_writes_the_schema_in_development(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FILES)
    env = {"MIGRATOR_DUMP_AFTER_MIGRATE": "true"}
    assert cli("migrate", url=database.url, env=env).exit_code == 0
    assert 'CREATE TABLE "public"."item"' in (tmp_path / "sql/schema.sql").read_text()
    with psycopg.connect(database.url) as conn:
        assert conn.execute("SELECT count(*) FROM public.__migrations").fetchone() == (1,)


def test_verify_makes_its_shadow_on_the_embedded_server_by_default(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FILES)
    assert cli("migrate", url=database.url).exit_code == 0
    result = cli("verify", url=database.url)
    assert result.exit_code == 0, result.output
    from migrator import embedded

    with psycopg.connect(embedded.start(tmp_path / ".migrator"), autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'migrator_shadow_%'"
        ).fetchone()
    assert left == (0,)


def test_a_pg_dump_too_old_for_the_server_says_what_to_install() -> None:
    import pytest

    from migrator import snapshot
    from migrator.errors import ConfigError

    with pytest.raises(ConfigError, match="needs pg_dump 99 or newer") as raised:
        snapshot.pg_dump(99)
    assert "Install PostgreSQL 99's client tools" in raised.value.hint


# Found by a review by reproduction; each failed before its fix.


def test_pending_files_are_said_so_not_called_drift(database: Database, tmp_path: Path) -> None:
    write(tmp_path, FILES)
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0002_more.sql": "CREATE TABLE more (id int);\n"})
    result = cli("verify", "--shadow-url", server_of(database), url=database.url)
    assert result.exit_code == 3
    assert "1 migration files are not applied" in result.stderr
    assert "sql/public/0002_more.sql" in result.stderr


def test_a_managed_schema_not_there_yet_is_dumped_as_missing(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/app/0001_t.sql": "CREATE TABLE t (id int);\n"})
    result = cli("dump", "app", url=database.url)
    assert result.exit_code == 0, result.output
    assert "no managed schema exists" in (tmp_path / "sql/schema.sql").read_text()


def test_verify_writes_no_file_and_ignores_migrate_only_settings(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FILES)
    assert cli("migrate", url=database.url).exit_code == 0
    (tmp_path / "sql/schema.sql").write_text("committed\n")
    env = {
        "MIGRATOR_DUMP_AFTER_MIGRATE": "true",
        "MIGRATOR_LINT_ON_MIGRATE": "true",
    }
    result = cli("verify", "--shadow-url", server_of(database), url=database.url, env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "sql/schema.sql").read_text() == "committed\n"


def test_dump_check_without_a_committed_file_says_so(database: Database, tmp_path: Path) -> None:
    write(tmp_path, FILES)
    assert cli("migrate", url=database.url).exit_code == 0
    result = cli("dump", "--check", url=database.url)
    assert result.exit_code == 3 and "there is no sql/schema.sql to check" in result.stderr


def test_drift_lines_name_only_what_differs(database: Database, tmp_path: Path) -> None:
    write(tmp_path, FILES)
    assert cli("migrate", url=database.url).exit_code == 0
    database.query("ALTER TABLE public.item ADD extra int")
    result = cli("verify", "--shadow-url", server_of(database), url=database.url)
    assert result.exit_code == 3
    assert 'only in the database: "extra" integer' in result.stderr
    assert '"price" integer' not in result.stderr.split("error:")[1]
    assert "differs from what the migration files make" in result.stdout
