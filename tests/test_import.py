"""`migrator import KIND SOURCE`: each runner's folder, with the quirks real repositories hit,
written as migrator files; what the runner would not run, or runs by accident, reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, write

from migrator import importer, sqlfile
from migrator.importer import SourceFile
from migrator.lexer import MARKER


def imported(kind: str, source: dict[str, str | bytes], *args: str) -> dict[str, Any]:
    """Write the source folder, import it (JSON), and return the document; exit 0 asserted."""
    write(Path("src"), source)
    result = cli("import", kind, "src", "--json", *args)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def folder(schema: str = "public") -> dict[str, str]:
    """The files of a schema folder, by name."""
    root = Path("sql") / schema
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(root.iterdir()) if p.is_file()}


def reported(document: dict[str, Any]) -> dict[str, str]:
    return {item["path"]: item["reason"] for item in document["reported"]}


def test_dbmate_sections_options_and_loose_names() -> None:
    document = imported(
        "dbmate",
        {
            "20240101000000_users.sql": "-- a comment before\n-- migrate:up\n"
            "create table u (id int);\n"
            "\n-- migrate:down\ndrop table u;\n",
            "20240102000000_index.sql": "-- migrate:up transaction:false\n"
            "create index concurrently u_id on u (id);\n-- migrate:down\n",
            "20240103000000_orders_up.sql": "-- migrate:up\ncreate table o (id int);\n"
            "-- migrate:down\n",
            "20240103000000_orders_down.sql": "-- migrate:up\ndrop table o;\n-- migrate:down\n",
            "20240104000000_two.sql": "-- migrate:up\nselect 1;\n-- migrate:down\n"
            "-- migrate:up\nselect 2;\n-- migrate:down\n",
            "20240105000000_nodown.sql": "-- migrate:up\nselect 1;\n",
            "20240106000000_early.sql": "select 1;\n-- migrate:up\nselect 2;\n-- migrate:down\n",
            "9_late.sql": "-- migrate:up\nselect 9;\n-- migrate:down\n",
            "notes.sql": "select 1;",
            "README.md": "not a migration",
            "old/1_x.sql": "-- migrate:up\n-- migrate:down\n",
        },
    )
    assert folder() == {
        "20240101000000_users.down.sql": "drop table u;\n",
        "20240101000000_users.sql": "-- a comment before\ncreate table u (id int);\n\n",
        "20240102000000_index.sql": "-- migrator: no-transaction\n"
        "create index concurrently u_id on u (id);\n",
    }
    reasons = reported(document)
    assert set(reasons) == {
        "src/20240103000000_orders_up.sql",
        "src/20240103000000_orders_down.sql",
        "src/20240104000000_two.sql",
        "src/20240105000000_nodown.sql",
        "src/20240106000000_early.sql",
        "src/9_late.sql",
        "src/notes.sql",
        "src/old/1_x.sql",
    }
    assert "runs it as a migration of its own" in reasons["src/20240103000000_orders_down.sql"]
    assert "several '-- migrate:up'" in reasons["src/20240104000000_two.sql"]
    assert "no '-- migrate:down' line" in reasons["src/20240105000000_nodown.sql"]
    assert "statements before" in reasons["src/20240106000000_early.sql"]
    assert "dbmate sorts by file names" in reasons["src/9_late.sql"]
    assert "sub-folder" in reasons["src/old/1_x.sql"]
    assert [(f["path"], f["down"]) for f in document["imported"]] == [
        ("sql/public/20240101000000_users.sql", "sql/public/20240101000000_users.down.sql"),
        ("sql/public/20240102000000_index.sql", ""),
    ]


def test_golang_migrate_pairs_and_names_it_would_run_by_accident() -> None:
    document = imported(
        "golang-migrate",
        {
            "000001_init.up.sql": "BEGIN;\ncreate table a (id int);\nCOMMIT;\n",
            "000001_init.down.sql": "drop table a;\n",
            "000002_more.up.sql": "create table b (id int);\n",
            "000003_x.up.sql.bak": "create table c (id int);\n",
            "000004_typo_up.sql": "create table d (id int);\n",
            "000005_y.UP.sql": "create table e (id int);\n",
            "000006_dup.up.sql": "select 1;\n",
            "6_dup_again.up.sql": "select 2;\n",
            "000007_orphan.down.sql": "select 1;\n",
            "0_zero.up.sql": "create table z (id int);\n",
        },
    )
    assert folder() == {
        "0_zero.sql": "create table z (id int);\n",
        "000001_init.down.sql": "drop table a;\n",
        "000001_init.sql": "BEGIN;\ncreate table a (id int);\nCOMMIT;\n",
        "000002_more.sql": "create table b (id int);\n",
    }
    reasons = reported(document)
    assert "takes any extension" in reasons["src/000003_x.up.sql.bak"]
    assert "golang-migrate ignores it" in reasons["src/000004_typo_up.sql"]
    assert "golang-migrate ignores it" in reasons["src/000005_y.UP.sql"]
    assert "two files of one direction" in reasons["src/000006_dup.up.sql"]
    assert "two files of one direction" in reasons["src/6_dup_again.up.sql"]
    assert "without its up file" in reasons["src/000007_orphan.down.sql"]


def test_goose_annotations_no_transaction_and_refused_files() -> None:
    document = imported(
        "goose",
        {
            "00001_users.sql": "-- +goose Up\n-- +goose StatementBegin\n"
            "create function f() returns int language plpgsql as $$ begin return 1; end $$;\n"
            "-- +goose StatementEnd\ncreate table u (id int);\n\n"
            "-- +goose Down\ndrop table u;\ndrop function f;\n",
            "00002_idx.sql": "-- +goose NO TRANSACTION\n-- +goose up\n"
            "create index concurrently u_id on u (id);\n-- +goose DOWN\n"
            "drop index concurrently u_id;\n",
            "00003_env.sql": "-- +goose ENVSUB ON\n-- +goose Up\ncreate role ${ROLE_NAME};\n",
            "00004_indented.sql": "  -- +goose Up\nselect 1;\n",
            "00005_noup.sql": "select 1;\n",
            "00008_shout.sql": "-- +goose Up\ncreate table s (id int);\n-- +GOOSE Down\n"
            "drop table s;\n",
            "00006_go.go": "package migrations\n",
            "0_zero.sql": "-- +goose Up\nselect 0;\n",
            "7_typo.SQL": "-- +goose Up\nselect 7;\n",
            "setup.sql": "-- +goose Up\nselect 1;\n",
        },
    )
    assert folder() == {
        "00001_users.down.sql": "drop table u;\ndrop function f;\n",
        "00001_users.sql": "create function f() returns int language plpgsql as "
        "$$ begin return 1; end $$;\ncreate table u (id int);\n\n",
        "00002_idx.down.sql": "-- migrator: no-transaction\ndrop index concurrently u_id;\n",
        "00002_idx.sql": "-- migrator: no-transaction\ncreate index concurrently u_id on u (id);\n",
        "00003_env.sql": "create role ${ROLE_NAME};\n",
    }
    reasons = reported(document)
    assert (
        "leading" in reasons["src/00004_indented.sql"]
        or "not an annotation" in (reasons["src/00004_indented.sql"])
    )
    assert "SQL before '-- +goose Up'" in reasons["src/00005_noup.sql"]
    assert "a Go migration" in reasons["src/00006_go.go"]
    assert "as a plain comment" in reasons["src/00008_shout.sql"]
    assert "versions start at 1" in reasons["src/0_zero.sql"]
    assert "lower case" in reasons["src/7_typo.SQL"]
    assert "no version" in reasons["src/setup.sql"]
    warnings = {item["path"]: item["reason"] for item in document["warnings"]}
    assert "ENVSUB" in warnings["src/00003_env.sql"]


def test_prisma_folders_order_hidden_and_missing_scripts() -> None:
    script = '-- CreateTable\nCREATE TABLE "User" ("id" SERIAL NOT NULL);\r\n'
    document = imported(
        "prisma",
        {
            "migration_lock.toml": 'provider = "postgresql"\n',
            "0_init/migration.sql": script,
            "20240101120000_add_post/migration.sql": 'CREATE TABLE "Post" ("id" INT);\n',
            "20240101120000_add_post/notes.sql": "select 1;",
            "20240102000000_empty/README.md": "no script here",
            ".hidden_2024/migration.sql": "select 1;",
            "init_without_number/migration.sql": "select 1;",
            "9_after/migration.sql": "select 9;",
        },
    )
    written = (Path("sql/public/0_init.sql")).read_bytes()
    assert written == script.encode()  # byte for byte, CRLF kept
    assert set(folder()) == {"0_init.sql", "20240101120000_add_post.sql"}
    reasons = reported(document)
    assert "no migration.sql" in reasons["src/20240102000000_empty"]
    assert "hidden folder" in reasons["src/.hidden_2024"]
    assert "does not start with a number" in reasons["src/init_without_number/migration.sql"]
    assert "Prisma sorts by folder names" in reasons["src/9_after/migration.sql"]
    assert "only migration.sql" in reasons["src/20240101120000_add_post/notes.sql"]


def test_prisma_of_another_provider_is_not_imported() -> None:
    document = imported(
        "prisma",
        {"migration_lock.toml": 'provider = "mysql"\n', "1_init/migration.sql": "select 1;"},
    )
    assert not Path("sql/public").exists()
    assert "not PostgreSQL" in reported(document)["src/1_init"]


def test_diesel_versions_metadata_and_refused_folders() -> None:
    imported(
        "diesel",
        {
            "00000000000000_diesel_initial_setup/up.sql": "create function g() returns int "
            "language sql as 'select 1';\n",
            "00000000000000_diesel_initial_setup/down.sql": "drop function g;\n",
            "2024-01-01-120000_create_users/up.sql": "create table users (id int);\n",
            "2024-01-01-120000_create_users/down.sql": "drop table users;\n",
            "2024-01-02-000000_index/up.sql": "create index concurrently i on users (id);\n",
            "2024-01-02-000000_index/metadata.toml": "run_in_transaction = false\n",
            "2024-01-03-000000_empty_metadata/up.sql": "select 1;\n",
            "2024-01-03-000000_empty_metadata/metadata.toml": "",
        },
    )
    files = folder()
    assert files == {
        "00000000000000_diesel_initial_setup.down.sql": "drop function g;\n",
        "00000000000000_diesel_initial_setup.sql": "create function g() returns int language sql "
        "as 'select 1';\n",
        "20240101120000_create_users.down.sql": "drop table users;\n",
        "20240101120000_create_users.sql": "create table users (id int);\n",
        "20240102000000_index.sql": "-- migrator: no-transaction\n"
        "create index concurrently i on users (id);\n",
        # serde reads a metadata.toml without the key as false: Diesel runs it outside one
        "20240103000000_empty_metadata.sql": "-- migrator: no-transaction\nselect 1;\n",
    }
    Path("src2/2024-02-01-000000_no_up").mkdir(parents=True)
    write(
        Path("src2"),
        {
            "2024-02-01-000000_no_up/down.sql": "select 1;",
            "2024-02-02-000000_empty/up.sql": "",
            "not-a-version_x/up.sql": "select 1;",
            "2024-01-01-120000_same_version/up.sql": "select 1;",
        },
    )
    result = cli("import", "diesel", "src2", "--schema", "other", "--json")
    reasons = reported(json.loads(result.stdout))
    assert "no up.sql" in reasons["src2/2024-02-01-000000_no_up"]
    assert "empty" in reasons["src2/2024-02-02-000000_empty/up.sql"]
    assert "not a number" in reasons["src2/not-a-version_x/up.sql"]


def test_flyway_versions_undo_repeatables_and_skipped_names() -> None:
    document = imported(
        "flyway",
        {
            "V1__init.sql": "create table a (id int);\n",
            "V1_1__add_b.sql": "create table b (id int);\n",
            "V1.2__add_c.SQL": "create table c (id int);\n",
            "U1_1__add_b.sql": "drop table b;\n",
            "nested/V2__in_sub_folder.sql": "create table d (id int);\n",
            "V2.1__idx.sql": "create index concurrently d_id on d (id);\n",
            "V2.1__idx.sql.conf": "executeInTransaction=false\n",
            "R__views.sql": "create or replace view v as select 1;\n",
            "V3__placeholder.sql": "create schema ${schema_name};\n",
            "V1_init.sql": "select 1;",
            "v4__lower.sql": "select 1;",
            "B5__baseline.sql": "select 1;",
            "beforeMigrate.sql": "select 1;",
            "U9__orphan.sql": "select 1;",
        },
    )
    # Dotted versions: numbered in Flyway's order, the Flyway version kept in the name.
    assert folder() == {
        "0001_V1__init.sql": "create table a (id int);\n",
        "0002_V1.1__add_b.down.sql": "drop table b;\n",
        "0002_V1.1__add_b.sql": "create table b (id int);\n",
        "0003_V1.2__add_c.sql": "create table c (id int);\n",
        "0004_V2__in_sub_folder.sql": "create table d (id int);\n",
        "0005_V2.1__idx.sql": "-- migrator: no-transaction\n"
        "create index concurrently d_id on d (id);\n",
        "0006_V3__placeholder.sql": "create schema ${schema_name};\n",
        "R__views.sql": "create or replace view v as select 1;\n",
    }
    reasons = reported(document)
    assert "Flyway skips it" in reasons["src/V1_init.sql"]
    assert "Flyway skips it" in reasons["src/v4__lower.sql"]
    assert "baseline migration" in reasons["src/B5__baseline.sql"]
    assert "callback" in reasons["src/beforeMigrate.sql"]
    assert "undo file without V9" in reasons["src/U9__orphan.sql"]
    warnings = {item["path"]: item["reason"] for item in document["warnings"]}
    assert "placeholders" in warnings["src/V3__placeholder.sql"]


def test_flyway_whole_number_versions_stay() -> None:
    imported(
        "flyway",
        {
            "V1__a.sql": "select 1;\n",
            "V002__b.sql": "select 2;\n",
            "V3.0__c.sql": "select 3;\n",  # Flyway's 3
            "V4.sql": "select 4;\n",  # no description: Flyway runs it
            "V5__1__e.sql": "select 5;\n",  # a description that starts like a version
        },
    )
    assert set(folder()) == {"1_a.sql", "002_b.sql", "3_c.sql", "4_migration.sql", "5_1__e.sql"}
    assert importer.file_key("flyway", "5_1__e.sql", 5) == "5"
    assert importer.file_key("flyway", "0002_V1.1__b.sql", 2) == "1.1"


def test_flyway_runs_non_transactional_scripts_statement_by_statement() -> None:
    document = imported(
        "flyway",
        {
            "V1__idx.sql": "create index concurrently a1 on a (id);\n"
            "create index concurrently a2 on a (id);\n",
            "V2__mixed.sql": "create table m (id int);\ncreate index concurrently m1 on m (id);\n",
            "V3__skip.sql": "select 1;\n",
            "V3__skip.sql.conf": "shouldExecute=false\n",
            "R__v.sql": "create or replace view v as select '${x}' as x;\n",
        },
    )
    files = folder()
    assert files["1_idx.sql"] == (
        "-- migrator: no-transaction\ncreate index concurrently a1 on a (id);\n"
        f"{MARKER}\ncreate index concurrently a2 on a (id);\n"
    )
    assert files["2_mixed.sql"].startswith("-- migrator: no-transaction\n")
    warnings = {item["path"]: item["reason"] for item in document["warnings"]}
    assert "mixed=true" in warnings["src/V2__mixed.sql"]
    assert "placeholders" in warnings["src/R__v.sql"]
    assert "shouldExecute=false" in reported(document)["src/V3__skip.sql"]


def test_drizzle_folder_files_outside_its_journal_are_reported() -> None:
    entries = [
        {"idx": 0, "version": "7", "when": 1, "tag": "0000_first", "breakpoints": True},
        {"idx": 1, "version": "7", "when": 2, "tag": "0001_second", "breakpoints": True},
    ]
    document = imported(
        "drizzle",
        {
            "meta/_journal.json": json.dumps(
                {"version": "7", "dialect": "postgresql", "entries": entries}
            ),
            "0000_first.sql": f"create table a (id int);{MARKER}\ncreate table b (id int);",
            "0001_second.sql": "create table c (id int);",
            "0002_stray.sql": "create table d (id int);",
        },
    )
    assert set(folder()) == {"0000_first.sql", "0001_second.sql"}
    assert "never runs it" in reported(document)["src/0002_stray.sql"]


def test_split_puts_each_statement_in_its_own_chunk() -> None:
    imported(
        "golang-migrate",
        {
            "1_a.up.sql": "create table a (id int);\ncreate table b (id int); -- note\n"
            "BEGIN;\ninsert into a values (1);\nCOMMIT;\n"
            "create index concurrently a_id on a (id);\n"
            "/* a block\ncomment */ create table c (id int);\nselect 1; select 2;\n",
        },
        "--split",
    )
    text = folder()["1_a.sql"]
    assert importer.unsplit(text) == Path("src/1_a.up.sql").read_text()
    file = sqlfile.read("public", "1_a.sql", "1_a.sql", text.encode())
    chunks = [chunk.sql.strip() for chunk in sqlfile.parse(file).chunks]
    assert chunks == [
        "create table a (id int);",
        "create table b (id int); -- note",
        "BEGIN;\ninsert into a values (1);\nCOMMIT;",
        "create index concurrently a_id on a (id);",
        "/* a block\ncomment */ create table c (id int);",
        "select 1; select 2;",  # one line: no place for a marker line between them
    ]


def test_without_split_the_text_is_untouched_and_what_migrator_refuses_is_reported() -> None:
    source = "create table a (id int);\ncreate index concurrently a_id on a (id);\n"
    document = imported(
        "golang-migrate",
        {"1_a.up.sql": source, "2_b.up.sql": "select 2;\r\n", "3_c.up.sql": "\\set x 1\n"},
    )
    assert folder() == {"2_b.sql": "select 2;\n"}  # read back with LF; written as it was
    assert Path("sql/public/2_b.sql").read_bytes() == b"select 2;\r\n"
    reasons = reported(document)
    assert "import with --split" in reasons["src/1_a.up.sql"]
    assert "fix it in the source" in reasons["src/3_c.up.sql"]
    assert cli("import", "golang-migrate", "src", "--split").exit_code == 0
    assert set(folder()) == {"1_a.sql", "2_b.sql"}


def test_split_leaves_transaction_scoped_statements_with_what_follows() -> None:
    document = imported(
        "golang-migrate",
        {
            "1_a.up.sql": "create schema other;\nset local search_path = other;\n"
            "create table t (id int);\n",
            "2_b.up.sql": "create temp table ids on commit drop as select 1 as id;\n"
            "create table c as select * from ids;\n",
            "3_c.up.sql": "set constraints all deferred;\nselect 1;\n",
            "4_d.up.sql": "select 1;\nselect 2;\n",
        },
        "--split",
    )
    files = folder()
    assert MARKER not in files["1_a.sql"] + files["2_b.sql"] + files["3_c.sql"]
    assert MARKER in files["4_d.sql"]
    warnings = {item["path"]: item["reason"] for item in document["warnings"]}
    assert "SET LOCAL" in warnings["src/1_a.up.sql"]
    assert "temporary table ON COMMIT" in warnings["src/2_b.up.sql"]
    assert "SET CONSTRAINTS" in warnings["src/3_c.up.sql"]


def test_goose_refusals_and_names() -> None:
    document = imported(
        "goose",
        {
            "1_nosemi.sql": "-- +goose Up\nselect 1\n",
            "2_instring.sql": "-- +goose Up\ninsert into t values ('\n-- +goose Down\n');\n",
            "3_drop_old.down.sql": "-- +goose Up\nselect 3;\n",
            "4_docs.sql": "-- see the +Goose docs\n-- +goose Up\nselect 4;\n",
            "5_many.sql": "-- +goose NO TRANSACTION\n-- +goose Up\ncreate table g (id int);\n"
            "create index concurrently g_id on g (id);\n-- +goose Down\ndrop table g;\n",
        },
    )
    files = folder()
    assert files["3_drop_old_down.sql"] == "select 3;\n"
    assert files["4_docs.sql"] == "-- see the +Goose docs\nselect 4;\n"
    # goose sends each statement alone; without a transaction each commits: one chunk each
    assert files["5_many.sql"] == (
        "-- migrator: no-transaction\ncreate table g (id int);\n"
        f"{MARKER}\ncreate index concurrently g_id on g (id);\n"
    )
    reasons = reported(document)
    assert "no semicolon" in reasons["src/1_nosemi.sql"]
    assert "without its semicolon" in reasons["src/2_instring.sql"]


def test_reimport_is_unchanged_and_a_clash_writes_nothing() -> None:
    source = {"1_a.up.sql": "select 1;\n", "2_b.up.sql": "select 2;\n"}
    imported("golang-migrate", source)
    again = imported("golang-migrate", source)
    assert [f["unchanged"] for f in again["imported"]] == [True, True]
    text = cli("import", "golang-migrate", "src")
    assert "imported 0 migrations (0 down files) from golang-migrate src into public, 2 " in (
        text.stdout
    )
    write(Path("sql/public"), {"2_other.sql": "select 'mine';\n"})
    Path("sql/public/1_a.sql").write_text("select 'edited';\n")
    write(Path("src"), {"3_c.up.sql": "select 3;\n"})
    result = cli("import", "golang-migrate", "src")
    assert result.exit_code == 2, result.output
    assert "2 files to import clash" in result.output
    assert "version 2 is sql/public/2_other.sql there" in result.output
    assert not Path("sql/public/3_c.sql").exists()
    assert Path("sql/public/1_a.sql").read_text() == "select 'edited';\n"


def test_dry_run_writes_nothing() -> None:
    write(Path("src"), {"1_a.up.sql": "select 1;\n"})
    result = cli("import", "golang-migrate", "src", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would write sql/public/1_a.sql" in result.stdout
    assert not Path("sql").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import", "liquibase", "src"), "liquibase"),
        (("import", "dbmate", "missing"), "is not a folder"),
        (("import", "dbmate", "src", "--schema", "../x"), "not a schema folder name"),
    ],
)
def test_bad_imports_are_clear_errors(args: tuple[str, ...], message: str) -> None:
    write(Path("src"), {"1_a.sql": "-- migrate:up\nselect 1;\n-- migrate:down\n"})
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_an_empty_source_says_so() -> None:
    Path("src").mkdir()
    result = cli("import", "goose", "src")
    assert result.exit_code == 2
    assert "no goose migrations in src" in result.output


@pytest.mark.parametrize(
    ("text", "markers"),
    [
        ("select 1;\nselect 2;\n", 1),
        ("select 1;\r\nselect 2;\r\n", 1),
        ("\ufeffselect 1;\n-- c\nselect 2", 1),
        ("select $$;\n$$;\nselect ';\n';\nselect 3;", 2),
        ("begin;\nselect 1;\nend;\nselect 2;\n", 1),
        ("select 1; /* x\n*/\nselect 2;\n", 1),
        ("select 1; select 2;", 0),
        ("select 1 /* never closed", 0),
    ],
)
def test_unsplit_gives_the_text_back(text: str, markers: int) -> None:
    split = importer.split_text(text)
    assert importer.unsplit(split) == text
    assert split.count(MARKER) == markers


def test_checksums_as_the_tools_compute_them() -> None:
    # Flyway: CRC32 of the lines without line breaks; the same for LF and CRLF, and a BOM.
    lf = importer.flyway_checksum(b"select 1;\nselect 2;\n")
    assert lf == importer.flyway_checksum(b"\xef\xbb\xbfselect 1;\r\nselect 2;")
    assert lf == __import__("zlib").crc32(b"select 1;select 2;") - (1 << 32) * (
        __import__("zlib").crc32(b"select 1;select 2;") >= 1 << 31
    )
    # Prisma: sha256 hex, also with line ends swapped; old rows without zero padding.
    assert importer.prisma_agrees(
        b"hello", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    assert importer.prisma_agrees(b"a\r\nb", __import__("hashlib").sha256(b"a\nb").hexdigest())
    digest = __import__("hashlib").sha256(b"x").digest()
    assert importer.prisma_agrees(b"x", "".join(f"{byte:x}" for byte in digest))
    assert not importer.prisma_agrees(b"y", digest.hex())


def test_history_rows_as_each_tool_reads_them() -> None:
    goose = importer.goose_entries([(1, 0, True), (2, 1, True), (3, 2, True), (4, 2, False)])
    assert [e.key for e in goose] == ["1"]  # version 2's newest row says not applied
    prisma = importer.prisma_entries(
        [
            ("1_a", "s1", False, True),  # failed, then resolved rolled back ...
            ("1_a", "s2", True, False),  # ... and applied again
            ("2_b", "s3", False, False),  # failed
            ("3_c", "s4", False, True),  # rolled back, not applied since
        ]
    )
    assert [(e.key, e.state, e.checksum) for e in prisma] == [
        ("1_a", "applied", "s2"),
        ("2_b", "failed", None),
        ("3_c", "rolled back", None),
    ]
    flyway = importer.flyway_entries(
        [
            (0, None, "<< Flyway Schema Creation >>", "SCHEMA", '"public"', None, True),
            (1, "1.1", "<< Flyway Baseline >>", "BASELINE", "<< Flyway Baseline >>", None, True),
            (2, "2", "b", "SQL", "V2__b.sql", 5, True),
            (3, None, "v", "SQL", "R__v.sql", 6, True),
            (4, "3", "c", "SQL", "V3__c.sql", 7, True),
            (5, "3", "c", "DELETE", "V3__c.sql", 7, True),
        ],
        [(1,), (1, 1), (2,), (3,)],
    )
    assert [(e.key, e.checksum, e.repeatable) for e in flyway] == [
        ("1", None, False),
        ("1.1", None, False),
        ("2", "5", False),
        ("v", "6", True),  # the repeatable's newest run
    ]
    entries, top = importer.golang_entries((3, False), [1, 2, 3, 4])
    assert [e.key for e in entries] == ["1", "2", "3"] and top is not None
    entries, top = importer.golang_entries((3, True), [1, 2, 3])
    assert [e.state for e in entries] == ["dirty"]
    assert importer.golang_entries(None, [1]) == ([], None)


def test_plan_is_pure_data() -> None:
    found = importer.plan("goose", [SourceFile("1_a.sql", b"-- +goose Up\nselect 1;\n")])
    assert found.migrations[0].name == "1_a.sql"
    assert found.migrations[0].up == b"select 1;\n"


def test_golang_migrate_version_clash_reports_every_file_of_it() -> None:
    document = imported(
        "golang-migrate",
        {
            "1_a.up.sql": "select 1;\n",
            "1_a.down.sql": "select 1;\n",
            "001_b.down.sql": "select 1;\n",
            "2_c.up.sql": "select 2;\n",
        },
    )
    assert set(reported(document)) == {"src/1_a.up.sql", "src/1_a.down.sql", "src/001_b.down.sql"}
    assert set(folder()) == {"2_c.sql"}


def test_names_migrator_would_refuse_are_reported_not_written() -> None:
    write(Path("src"), {"1_b.sql": "-- migrate:up\nselect 1;\n-- migrate:down\n"})
    Path(b"src/2_caf\xe9.sql".decode("utf-8", "surrogateescape")).write_bytes(
        b"-- migrate:up\nselect 2;\n-- migrate:down\n"
    )
    result = cli("import", "dbmate", "src", "--json")
    assert result.exit_code == 0, result.output
    reasons = reported(json.loads(result.stdout))
    assert any("not UTF-8" in reason for reason in reasons.values())
    assert set(folder()) == {"1_b.sql"}


def test_prisma_sorts_folder_names_as_localecompare_does() -> None:
    document = imported(
        "prisma", {"1_b/migration.sql": "select 1;\n", "10_a/migration.sql": "select 10;\n"}
    )
    assert document["reported"] == []
    assert set(folder()) == {"1_b.sql", "10_a.sql"}
    # prisma/ holding schema/*.prisma (no schema.prisma) and migrations/
    write(Path("app/prisma"), {"schema/a.prisma": "", "migrations/2_c/migration.sql": "select 2;"})
    result = cli("import", "prisma", "app/prisma", "--schema", "other")
    assert result.exit_code == 0, result.output
    assert set(folder("other")) == {"2_c.sql"}


def test_dbmate_keeps_every_byte_but_the_marker_lines() -> None:
    source = "-- migrate:up\n\n\nselect 1;\r\n-- migrate:down \n\n\nselect 2;\n"
    imported("dbmate", {"1_a.sql": source})
    assert Path("sql/public/1_a.sql").read_bytes() == b"\n\nselect 1;\r\n"
    assert Path("sql/public/1_a.down.sql").read_bytes() == b"\n\nselect 2;\n"
    document = imported(
        "dbmate", {"2_b.sql": "-- migrate:up\nselect 1;\n-- migrate:down\n-- migrate:down\n"}
    )
    assert "two '-- migrate:down' lines" in reported(document)["src/2_b.sql"]


def test_split_of_a_file_with_cr_line_ends() -> None:
    text = "create table a (id int);\rcreate table b (id int);\r"
    split = importer.split_text(text)
    assert split == f"create table a (id int);\r{MARKER}\rcreate table b (id int);\r"
    assert importer.unsplit(split) == text


def test_diesel_metadata_of_another_type_means_a_transaction() -> None:
    imported(
        "diesel",
        {
            "2024-01-01-000000_a/up.sql": "select 1;\n",
            "2024-01-01-000000_a/metadata.toml": 'run_in_transaction = "false"\n',
        },
    )
    assert folder() == {"20240101000000_a.sql": "select 1;\n"}


def test_fifos_and_dangling_links_are_reported() -> None:
    import os

    Path("src").mkdir()
    os.mkfifo("src/1_a.up.sql")
    os.symlink("nowhere.sql", "src/2_b.up.sql")
    write(Path("src"), {"3_c.up.sql": "select 3;\n"})
    document = imported("golang-migrate", {})
    reasons = reported(document)
    assert "not a regular file" in reasons["src/1_a.up.sql"]
    assert "a link to nowhere" in reasons["src/2_b.up.sql"]
    assert set(folder()) == {"3_c.sql"}


def test_a_stale_down_file_and_an_unwritable_folder_write_nothing() -> None:
    write(Path("sql/public"), {"1_a.down.sql": "select 'old down';\n"})
    write(Path("src"), {"1_a.up.sql": "select 1;\n"})
    stale = cli("import", "golang-migrate", "src")
    assert stale.exit_code == 2, stale.output
    assert "the source has no down part for it" in stale.output
    assert not Path("sql/public/1_a.sql").exists()
    Path("sql/public/1_a.down.sql").unlink()
    Path("sql/public").rmdir()
    Path("sql/public").write_text("a file, not a folder")
    blocked = cli("--json", "import", "golang-migrate", "src")
    assert blocked.exit_code == 2, blocked.output
    assert "cannot write sql/public" in json.loads(blocked.stdout)["error"]["message"]


def test_split_leaves_deferred_checks_and_transaction_locks_in_one_chunk() -> None:
    document = imported(
        "golang-migrate",
        {
            "1_a.up.sql": "create table p (id int primary key);\n"
            "create table c (pid int references p deferrable initially deferred);\n"
            "insert into c values (1);\ninsert into p values (1);\n",
            "2_b.up.sql": "select pg_advisory_xact_lock(42);\nupdate t set x = 1;\n",
        },
        "--split",
    )
    assert MARKER not in folder()["1_a.sql"] + folder()["2_b.sql"]
    warnings = {item["path"]: item["reason"] for item in document["warnings"]}
    assert "INITIALLY DEFERRED" in warnings["src/1_a.up.sql"]
    assert "transaction advisory lock" in warnings["src/2_b.up.sql"]


def test_a_source_overlapping_the_migrations_folder_is_refused() -> None:
    write(Path("sql"), {"V1__a.sql": "select 1;\n"})
    for source in ("sql", ".", "sql/public"):
        result = cli("import", "flyway", source)
        assert result.exit_code == 2, result.output
        assert "overlap: nothing was written" in result.output
    assert not Path("sql/public").exists()


def test_the_summary_counts_files_and_linked_folders_are_reported(tmp_path: Path) -> None:
    write(
        Path("src"),
        {"0003_d.sql": "-- migrate:up\nselect 1;\n-- migrate:down\n",
         "3-c.sql": "-- migrate:up\nselect 1;\n-- migrate:down\n"},
    )  # fmt: skip
    result = cli("import", "dbmate", "src")
    assert "; 2 files not imported" in result.stdout, result.output
    write(tmp_path / "elsewhere/20240103000000_linked", {"migration.sql": "select 1;\n"})
    write(Path("prisma"), {"20240101000000init/migration.sql": "select 2;\n"})
    (Path("prisma") / "20240103000000_linked").symlink_to(
        tmp_path / "elsewhere/20240103000000_linked"
    )
    linked = cli("import", "prisma", "prisma", "--schema", "p", "--json")
    assert linked.exit_code == 0, linked.output
    assert (
        "a link to a folder" in reported(json.loads(linked.stdout))["prisma/20240103000000_linked"]
    )
    assert set(folder("p")) == {"20240101000000_init.sql"}


def test_import_refuses_all_databases_and_warns_on_stderr() -> None:
    Path("pyproject.toml").write_text(
        '[tool.migrator.databases.core]\nsql_dir = "db/core"\nurl = "postgresql://x@h/core"\n'
        '[tool.migrator.databases.iam]\nsql_dir = "db/iam"\nurl = "postgresql://x@h/iam"\n'
    )
    write(Path("src"), {"1_a.sql": "-- migrate:up\nselect 1;\n-- migrate:down\n", "x.sql": ""})
    every = cli("import", "dbmate", "src", "--all-databases")
    assert every.exit_code == 2 and "--db NAME" in every.output
    assert not Path("db").exists()
    one = cli("import", "dbmate", "src", "--db", "core", "--schema", "Sales")
    assert one.exit_code == 0, one.output
    assert Path("db/core/Sales/1_a.sql").is_file()
    assert "not imported: src/x.sql" in one.stderr and "not imported:" not in one.stdout
    assert "is not lower case" in one.stderr


def test_the_python_api_imports() -> None:
    import migrator

    write(Path("src"), {"1_a.sql": "-- migrate:up\nselect 1;\n-- migrate:down\n"})
    result = migrator.import_(kind="dbmate", source="src")
    assert isinstance(result, migrator.ImportResult)
    assert [file.path for file in result.files] == ["sql/public/1_a.sql"]
    with pytest.raises(migrator.ConfigError):
        migrator.import_(kind="dbmate", source="missing")
