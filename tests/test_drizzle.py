"""Drizzle-kit folders and `adopt drizzle`: journal order, unlisted files, matching Drizzle's
table by hash and by `when`; and, with node, Drizzle's own migrate() half-way then migrator."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Database, cli, write
from test_operators import dump

from migrator import drizzle
from migrator.errors import BadFile
from migrator.model import SqlFile

FIXTURE = REPO / "tests" / "fixtures" / "drizzle-kit"  # drizzle-kit generate's own output
BREAK = "--> statement-breakpoint"


def journal(*tags: str, version: str = "7", dialect: str = "postgresql") -> str:
    entries = [
        {"idx": i, "version": version, "when": 1700000000000 + i, "tag": tag, "breakpoints": True}
        for i, tag in enumerate(tags)
    ]
    return json.dumps({"version": version, "dialect": dialect, "entries": entries}, indent=2)


# A drizzle-kit style folder: markers inline after ';', an unlisted file, and a meta folder
# with snapshots beside the journal.
FOLDER = {
    "sql/public/meta/_journal.json": journal("0000_cool_start", "0001_quiet_step", "0002_last"),
    "sql/public/meta/0000_snapshot.json": "{}",
    "sql/public/0000_cool_start.sql": (
        'CREATE TABLE "users" (\n\t"id" serial PRIMARY KEY NOT NULL,\n\t"name" text\n);'
        f'{BREAK}\nCREATE INDEX "users_name_idx" ON "users" USING btree ("name");'
    ),
    "sql/public/0001_quiet_step.sql": (
        f'ALTER TABLE "users" ADD COLUMN "email" text;{BREAK}\n'
        "INSERT INTO users (name) VALUES ('a;b');"
    ),
    "sql/public/0002_last.sql": 'CREATE TABLE "posts" ("id" serial PRIMARY KEY NOT NULL);',
    "sql/public/0003_stray.sql": "CREATE TABLE stray (id int);",
}


def test_a_drizzle_folder_applies_in_journal_order_and_reports_unlisted_files(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FOLDER)
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert "sql/public/0003_stray.sql is not in its folder's meta/_journal.json" in result.stderr
    assert database.journal() == [(0, "applied", 2, 2), (1, "applied", 2, 2), (2, "applied", 1, 1)]
    assert database.scalar("SELECT to_regclass('stray')") is None
    assert database.query("SELECT name FROM users") == [("a;b",)]
    assert database.scalar("SELECT to_regclass('users_name_idx') IS NOT NULL")
    # The hash is Drizzle's: sha256 of the file's text.
    hashes = database.query("SELECT name, hash FROM public.__migrations ORDER BY version")
    for name, stored in hashes:
        data = (tmp_path / "sql/public" / name).read_bytes()
        assert stored == hashlib.sha256(data).hexdigest()

    status = cli("status", url=database.url)
    rows = {
        line.split()[2]: line.split()[3]
        for line in status.stdout.splitlines()
        if line.startswith("public ")
    }
    assert rows["0003_stray.sql"] == "unlisted"
    assert rows["0000_cool_start.sql"] == "applied"
    assert cli("status", "--check", url=database.url).exit_code == 0
    validate = cli("validate", url=database.url)
    assert validate.exit_code == 0, validate.output
    assert "0003_stray.sql is not in its folder's meta/_journal.json" in validate.stderr


def test_journal_order_not_file_names_decides(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sql/public/meta/_journal.json": journal("0001_first", "0002_second"),
            "sql/public/0001_first.sql": "CREATE TABLE t (id int);",
            "sql/public/0002_second.sql": "INSERT INTO t VALUES (2);",
            "sql/public/0000_not_listed.sql": "INSERT INTO t VALUES (0);",
        },
    )
    assert cli("migrate", url=database.url).exit_code == 0
    assert database.query("SELECT id FROM t") == [(2,)]
    assert [row[0] for row in database.journal()] == [1, 2]


@pytest.mark.parametrize(
    ("journal_text", "problem"),
    [
        (journal("0000_a", "0001_missing"), "0001_missing.sql: no such file (listed in"),
        (journal("0000_a", version="8"), "journal version '8' is not one of 5, 6, 7"),
        (journal("0000_a", dialect="mysql"), "dialect 'mysql' is not PostgreSQL"),
        (journal("0001_a", "0000_b"), "the journal order and the tags disagree"),
        (journal("first"), "the tag does not start with a number"),
        (journal("9223372036854775808_a"), "version 9223372036854775808 does not fit"),
        (journal("../0000_a"), "the tag must be a plain file name"),
        ("{not json", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON (RecursionError"),
        (journal("0000_a", "0000_a"), "0000_a is listed twice"),
        (
            journal("0000_a").replace('"idx": 0', '"idx": true'),
            "needs an integer idx and when and a tag",
        ),
        (
            json.dumps(
                {
                    "version": "7",
                    "dialect": "pg",
                    "entries": [
                        {"idx": 1, "when": 2, "tag": "0001_a"},
                        {"idx": 0, "when": 1, "tag": "0000_a"},
                    ],
                }
            ),
            "0000_a (idx 0) is listed after 0001_a (idx 1)",
        ),
        ('{"version": "7"}', 'not a drizzle-kit journal (no "entries" list)'),
    ],
)
def test_a_bad_drizzle_journal_is_refused_before_anything_runs(
    database: Database, tmp_path: Path, journal_text: str, problem: str
) -> None:
    write(
        tmp_path,
        {
            "sql/public/meta/_journal.json": journal_text,
            "sql/public/0000_a.sql": "CREATE TABLE a (id int);",
            "sql/public/0001_a.sql": "CREATE TABLE a1 (id int);",
            "sql/public/0000_b.sql": "CREATE TABLE b (id int);",
            "sql/public/first.sql": "CREATE TABLE f (id int);",
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 2, result.output
    assert problem in result.stderr
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None
    assert database.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0


@pytest.mark.parametrize("kind", ["dangling link", "fifo", "folder", "dangling meta"])
def test_a_journal_that_is_not_a_file_is_refused_without_waiting(
    database: Database, tmp_path: Path, kind: str
) -> None:
    write(tmp_path, {"sql/public/0001_stray.sql": "CREATE TABLE stray (id int);"})
    meta = tmp_path / "sql/public/meta"
    if kind == "dangling meta":
        meta.symlink_to("nowhere")
    else:
        meta.mkdir()
        target = meta / "_journal.json"
        {
            "dangling link": lambda: target.symlink_to("nowhere.json"),
            "fifo": lambda: os.mkfifo(target),
            "folder": target.mkdir,
        }[kind]()
    result = cli("migrate", url=database.url)  # a FIFO read would hang here
    assert result.exit_code == 2, result.output
    assert "sql/public/meta" in result.stderr
    assert database.scalar("SELECT to_regclass('stray')") is None
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None


@pytest.mark.parametrize(("version", "dialect"), [("5", "pg"), ("6", "postgresql"), ("7", "pg")])
def test_older_journal_formats_are_read(version: str, dialect: str) -> None:
    text = journal("0000_a", "0001_b", version=version, dialect=dialect)
    entries = drizzle.parse_journal(text.encode(), "meta/_journal.json")
    assert [(e.idx, e.version, e.tag) for e in entries] == [(0, 0, "0000_a"), (1, 1, "0001_b")]


def _file(version: int, text: str, when: int | None) -> SqlFile:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return SqlFile("public", version, f"{version:04d}_x.sql", f"sql/{version}", text, digest, when)


def test_match_by_hash_and_when_then_hash_then_when() -> None:
    files = [_file(0, "a", 10), _file(1, "b", 20), _file(2, "c", 30)]
    rows = [
        drizzle.DrizzleRow(1, files[0].hash, 999),  # hash, but row 4 matches file 0 better
        drizzle.DrizzleRow(2, "0" * 64, 20),  # when: the file was edited since it ran
        drizzle.DrizzleRow(3, "f" * 64, 77),  # nothing
        drizzle.DrizzleRow(4, files[0].hash, 10),  # hash and when
        drizzle.DrizzleRow(5, files[2].hash, 31),  # hash alone: the journal's when changed
    ]
    found = drizzle.match(rows, files)
    assert [(file.version, row.id) for file, row in found.matched] == [(0, 4), (1, 2), (2, 5)]
    assert [row.id for row in found.unmatched] == [1, 3]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([(1, 10)], [(0, 1)]),  # Drizzle ran the first of two identical files
        ([(1, 20)], [(1, 1)]),  # ... or only the second (hash alone would take the first)
        ([(1, 10), (2, 20)], [(0, 1), (1, 2)]),  # ... or both
    ],
)
def test_identical_files_pair_up_by_when(
    rows: list[tuple[int, int]], expected: list[tuple[int, int]]
) -> None:
    """drizzle-kit generate --custom twice gives two identical placeholder files."""
    files = [_file(0, "-- custom", 10), _file(1, "-- custom", 20)]
    found = drizzle.match([drizzle.DrizzleRow(i, files[0].hash, when) for i, when in rows], files)
    assert [(file.version, row.id) for file, row in found.matched] == expected
    assert found.unmatched == ()


def test_journal_entries_need_their_fields() -> None:
    text = json.dumps({"version": "7", "dialect": "postgresql", "entries": [{"tag": "0000_a"}]})
    with pytest.raises(BadFile, match="needs an integer idx and when and a tag"):
        drizzle.parse_journal(text.encode(), "j")


def _drizzle_table(database: Database, rows: list[tuple[str, int]]) -> None:
    """Drizzle's migrations table as its migrate() creates it, with (hash, created_at) rows."""
    database.query(
        "CREATE SCHEMA drizzle; CREATE TABLE drizzle.__drizzle_migrations"
        " (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)"
    )
    for hash_, created in rows:
        database.query(
            "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES (%s, %s)",
            (hash_, created),
        )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_adopt_journals_what_drizzle_ran_and_migrate_finishes(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FOLDER)
    folder = tmp_path / "sql/public"
    # Drizzle ran the first two files (its table holds their hashes; the objects exist).
    database.query('CREATE TABLE "users" ("id" serial PRIMARY KEY, "name" text, "email" text)')
    _drizzle_table(
        database,
        [(_sha(folder / "0000_cool_start.sql"), 1700000000000), ("e" * 64, 1700000000001)],
    )
    # The second row's hash matches no file (edited since); its created_at is the journal's when.
    dry = cli("adopt", "drizzle", "--dry-run", url=database.url)
    assert dry.exit_code == 0, dry.output
    assert "would adopt 2 files of public" in dry.stdout
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None

    adopted = cli("--json", "adopt", "drizzle", url=database.url)
    assert adopted.exit_code == 0, adopted.output
    document: dict[str, Any] = json.loads(adopted.stdout)
    assert document["adopted"] == [
        {"path": "sql/public/0000_cool_start.sql", "drizzle_id": 1, "entry": "id 1"},
        {"path": "sql/public/0001_quiet_step.sql", "drizzle_id": 2, "entry": "id 2"},
    ]
    rows = database.query("SELECT version, status, note FROM public.__migrations ORDER BY 1")
    assert [(v, s) for v, s, _ in rows] == [(0, "baseline"), (1, "baseline")]
    assert rows[0][2].startswith("adopted from Drizzle (drizzle.__drizzle_migrations id 1) by ")
    assert "id 2" in rows[1][2]

    again = cli("adopt", "drizzle", url=database.url)
    assert again.exit_code == 0, again.output
    assert "adopted 0 files of public from drizzle.__drizzle_migrations (2 already" in again.stdout

    finished = cli("migrate", url=database.url)
    assert finished.exit_code == 0, finished.output
    assert database.journal() == [
        (0, "baseline", 2, 2),
        (1, "baseline", 2, 2),
        (2, "applied", 1, 1),
    ]
    assert database.scalar("SELECT to_regclass('posts') IS NOT NULL")
    assert database.query("SELECT count(*) FROM users") == [(0,)]  # 0001's insert did not rerun


def test_adopt_refuses_with_every_unmatched_row_and_changes_nothing(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FOLDER)
    _drizzle_table(
        database,
        [
            (_sha(tmp_path / "sql/public/0000_cool_start.sql"), 1700000000000),
            ("a" * 64, 1600000000000),
            ("b" * 64, 9223372036854775807),  # no datetime holds it: shown as the number
        ],
    )
    result = cli("adopt", "drizzle", url=database.url)
    assert result.exit_code == 3, result.output
    assert "2 migrations recorded in drizzle.__drizzle_migrations match no file" in result.stderr
    assert f"id 2: hash {'a' * 64}, created_at 1600000000000 (2020-09-13" in result.stderr
    assert f"id 3: hash {'b' * 64}, created_at 9223372036854775807\n" in result.stderr
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None


@pytest.mark.parametrize(
    ("table", "code", "message"),
    [
        ("drizzle.__drizzle_migrations", 2, "no table drizzle.__drizzle_migrations in database"),
        ("a.b.c", 2, "--table 'a.b.c' is not [SCHEMA.]TABLE"),
        ("nodot", 2, "no table public.nodot in database"),
        ("public.other", 2, 'Drizzle\'s table "public"."other" does not have the shape'),
        ("public.typed", 2, "created_at is not a number"),
    ],
)
def test_adopt_without_drizzles_table_is_a_clear_error(
    database: Database, tmp_path: Path, table: str, code: int, message: str
) -> None:
    write(tmp_path, FOLDER)
    database.query("CREATE TABLE public.other (id int)")
    database.query(
        "CREATE TABLE public.typed (id serial PRIMARY KEY, hash text, created_at timestamptz)"
    )
    result = cli("adopt", "drizzle", "--table", table, url=database.url)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None


def test_adopt_in_production_needs_the_confirmation(database: Database, tmp_path: Path) -> None:
    write(tmp_path, FOLDER)
    _drizzle_table(database, [(_sha(tmp_path / "sql/public/0000_cool_start.sql"), 1)])
    env = {"MIGRATOR_ENV": "production"}
    refused = cli("adopt", "drizzle", url=database.url, env=env)
    assert refused.exit_code == 4, refused.output
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None
    confirmed = cli("adopt", "drizzle", "--confirm", database.name, url=database.url, env=env)
    assert confirmed.exit_code == 0, confirmed.output
    assert database.journal() == [(0, "baseline", 2, 2)]


def test_real_drizzle_kit_output_applies_unchanged(database: Database, tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "sql/public")
    (tmp_path / "sql/public/9999_not_generated.sql").write_text("CREATE TABLE nope (id int);")
    entries = json.loads((FIXTURE / "meta/_journal.json").read_text())["entries"]
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert "9999_not_generated.sql is not in its folder's meta/_journal.json" in result.stderr
    assert [row[:2] for row in database.journal()] == [
        (int(entry["tag"][:4]), "applied") for entry in entries
    ]
    assert database.scalar("SELECT to_regclass('nope')") is None


# Drizzle's own migrate() (drizzle-orm with node-postgres), run by node.
DRIZZLE_MIGRATE = """
const { drizzle } = require("drizzle-orm/node-postgres");
const { migrate } = require("drizzle-orm/node-postgres/migrator");
const { Pool } = require("pg");
const pool = new Pool(JSON.parse(process.argv[2]));
migrate(drizzle(pool), { migrationsFolder: process.argv[3] })
  .then(() => pool.end())
  .catch((error) => { console.error(error); process.exit(1); });
"""


@pytest.fixture(scope="session")
def drizzle_orm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with drizzle-orm and pg installed from the npm registry, and a migrate script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: Drizzle's own migrate() cannot run")
    folder = tmp_path_factory.mktemp("drizzle-orm")
    (folder / "package.json").write_text('{"name": "drizzle-check", "private": true}')
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "drizzle-orm@0.45", "pg@8"],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (folder / "migrate.cjs").write_text(DRIZZLE_MIGRATE)
    return folder


def _drizzle_migrate(drizzle_orm: Path, url: str, migrations: Path) -> None:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    # node-postgres's own settings; a host starting with "/" is a socket folder, as in libpq.
    config = {
        "host": params.get("host"),
        "port": int(params.get("port") or 5432),
        "user": params.get("user"),
        "password": params.get("password"),
        "database": params.get("dbname"),
    }
    completed = subprocess.run(
        ["node", str(drizzle_orm / "migrate.cjs"), json.dumps(config), str(migrations)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr


def _schema(database: Database) -> str:
    text = dump(
        database, "--schema-only", "--exclude-schema=drizzle", "--exclude-table=public.__migrations"
    )
    # Some server builds stamp each column with a creation counter (attoptions pg_attver=N):
    # it differs between any two databases, whatever made them.
    return re.sub(r"pg_attver=\d+", "pg_attver=N", text)


def test_half_by_drizzle_adopted_then_finished_equals_drizzle_alone(
    drizzle_orm: Path, database: Database, server_url: str, tmp_path: Path
) -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo

    entries = json.loads((FIXTURE / "meta/_journal.json").read_text())["entries"]
    half = len(entries) // 2
    first = tmp_path / "first-half"
    shutil.copytree(FIXTURE, first)
    meta = json.loads((first / "meta/_journal.json").read_text())
    meta["entries"] = entries[:half]
    (first / "meta/_journal.json").write_text(json.dumps(meta))

    _drizzle_migrate(drizzle_orm, database.url, first)
    assert database.scalar("SELECT count(*) FROM drizzle.__drizzle_migrations") == half
    shutil.copytree(FIXTURE, tmp_path / "sql/public")
    adopted = cli("adopt", "drizzle", url=database.url)
    assert adopted.exit_code == 0, adopted.output
    assert f"adopted {half} files of public" in adopted.stdout
    # Matched by hash, not by the `when` fallback: our hash is Drizzle's.
    assert database.query(
        "SELECT hash FROM public.__migrations ORDER BY version"
    ) == database.query("SELECT hash FROM drizzle.__drizzle_migrations ORDER BY id")
    assert "changed since Drizzle ran it" not in adopted.stderr
    finished = cli("migrate", url=database.url)
    assert finished.exit_code == 0, finished.output
    journal_rows = database.journal()
    assert [status for _, status, _, _ in journal_rows] == ["baseline"] * half + ["applied"] * (
        len(entries) - half
    )

    alone = Database(make_conninfo(server_url, dbname=f"{database.name}_alone"), "")
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database.name}_alone"')  # type: ignore[arg-type]
    try:
        _drizzle_migrate(drizzle_orm, alone.url, FIXTURE)
        assert alone.scalar("SELECT count(*) FROM drizzle.__drizzle_migrations") == len(entries)
        assert _schema(database) == _schema(alone)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database.name}_alone" WITH (FORCE)')  # type: ignore[arg-type]


def test_new_refuses_a_drizzle_folder(tmp_path: Path) -> None:
    write(tmp_path, FOLDER)
    result = cli("new", "public", "add_things")
    assert result.exit_code == 2, result.output
    assert "drizzle-kit generate --custom" in result.stderr
    assert sorted(p.name for p in (tmp_path / "sql/public").glob("*.sql")) == [
        "0000_cool_start.sql",
        "0001_quiet_step.sql",
        "0002_last.sql",
        "0003_stray.sql",
    ]


def test_adopt_by_when_notes_the_edit_and_reports_journal_conflicts(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FOLDER)
    folder = tmp_path / "sql/public"
    assert cli("migrate", "--to", "0", url=database.url).exit_code == 0
    journaled = _sha(folder / "0000_cool_start.sql")
    (folder / "0000_cool_start.sql").write_text(
        "-- edited\n" + (folder / "0000_cool_start.sql").read_text()
    )
    (folder / "0001_quiet_step.sql").write_text(
        "-- edited too\n" + (folder / "0001_quiet_step.sql").read_text()
    )
    _drizzle_table(
        database,
        [(_sha(folder / "0000_cool_start.sql"), 1700000000000), ("d" * 64, 1700000000001)],
    )
    result = cli("adopt", "drizzle", url=database.url)
    assert result.exit_code == 0, result.output
    assert (
        "0001_quiet_step.sql matched drizzle.__drizzle_migrations id 2 by its journal `when` only"
        in result.stderr
    )
    assert f"0000_cool_start.sql is journaled already with hash {journaled}" in result.stderr
    rows = database.query("SELECT version, status, hash, note FROM public.__migrations ORDER BY 1")
    assert [(v, s, h) for v, s, h, _ in rows] == [
        (0, "applied", journaled),
        (1, "baseline", _sha(folder / "0001_quiet_step.sql")),
    ]
    assert f"id 2; its hash then was {'d' * 64})" in rows[1][3]


def test_adopt_after_import_drizzle_matches_crlf_and_split_files(
    database: Database, tmp_path: Path
) -> None:
    crlf = "CREATE TABLE a (id int);\r\nCREATE TABLE b (id int);\r\n"
    lf = "CREATE TABLE c (id int);\nCREATE TABLE d (id int);\n"
    write(
        tmp_path / "drizzle",
        {
            "meta/_journal.json": journal("0000_crlf", "0001_lf"),
            "0000_crlf.sql": crlf.encode(),
            "0001_lf.sql": lf,
        },
    )
    result = cli("import", "drizzle", "drizzle", "--split")
    assert result.exit_code == 0, result.output
    assert BREAK in (tmp_path / "sql/public/0001_lf.sql").read_text()
    sha = [hashlib.sha256(text.encode()).hexdigest() for text in (crlf, lf)]
    _drizzle_table(database, [(sha[0], 1), (sha[1], 2)])  # Drizzle hashes the bytes it read
    adopted = cli("--json", "adopt", "drizzle", url=database.url)
    assert adopted.exit_code == 0, adopted.output
    assert [a["entry"] for a in json.loads(adopted.stdout)["adopted"]] == ["id 1", "id 2"]
