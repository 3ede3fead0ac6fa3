"""The malformed-input catalogue: every kind of bad input is refused with one line naming the
file or setting (exit 2, nothing applied), or has a defined behaviour; each case checks the
database afterwards."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import Database, Result, cli, write
from psycopg import sql

from migrator import __version__

GOOD = {"sql/public/0001_t.sql": "CREATE TABLE t (id int);\n"}
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def problem_lines(result: Result) -> list[str]:
    """The error's lines, one per problem, after checking that stderr holds nothing else but a
    hint: `error: <problem>`, or `error: N problems ...` followed by one indented line each."""
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), result.output
    hints = [index for index, line in enumerate(lines) if line.startswith("hint: ")]
    assert hints in ([], [len(lines) - 1]), result.output
    body = lines[: hints[0]] if hints else lines
    headline = body[0].removeprefix("error: ")
    if len(body) == 1:
        return [headline]
    assert headline.split()[0].isdigit(), result.output  # "N problems in the files"
    assert all(line.startswith("  ") for line in body[1:]), result.output
    assert int(headline.split()[0]) == len(body) - 1
    return [line.strip() for line in body[1:]]


def refused(result: Result, *expected: str) -> list[str]:
    """Exit 2, and each expected text on a line of its own; returns the lines."""
    assert result.exit_code == 2, result.output
    lines = problem_lines(result)
    for text in expected:
        assert [line for line in lines if text in line], (text, lines)
    return lines


def user_relations(database: Database) -> list[tuple[str, str]]:
    """Every table, view and sequence outside the system schemas."""
    return database.query(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"
        " ORDER BY 1, 2"
    )


def user_schemas(database: Database) -> list[str]:
    return [
        name
        for (name,) in database.query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'"
            " AND nspname <> 'information_schema' ORDER BY 1"
        )
    ]


def assert_nothing_applied(database: Database) -> None:
    """No journal, no table, no schema but public."""
    assert user_relations(database) == []
    assert user_schemas(database) == ["public"]


def journal_rows(database: Database, schema: str) -> list[tuple[object, ...]]:
    query = sql.SQL(
        "SELECT version, status, chunks_done, chunks_total FROM {} ORDER BY version"
    ).format(sql.Identifier(schema, "__migrations"))
    return database.query(query.as_string())


# --- empty and comment-only files ---------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="0 bytes"),
        pytest.param(b"\xef\xbb\xbf", id="a BOM only"),
        pytest.param(b" \n\t\r\n\n", id="whitespace only"),
        pytest.param(b"-- nothing to do yet\n", id="a line comment"),
        pytest.param(b"-- no newline at the end", id="a comment without a newline"),
        pytest.param(b"/* a /* nested */ block\n comment */\n", id="a nested block comment"),
        pytest.param(
            b"-- a\n--> statement-breakpoint\n/* b */\n--> statement-breakpoint\n", id="markers"
        ),
        pytest.param(b";\n ; ;\n", id="empty statements"),
        pytest.param(b"-- migrator: single-transaction\n-- nothing\n", id="a directive only"),
        pytest.param(b"-- migrator: no-transaction\n", id="no-transaction only"),
    ],
)
def test_empty_and_comment_only_files_are_journaled_as_applied_with_zero_chunks(
    database: Database, tmp_path: Path, content: bytes
) -> None:
    write(
        tmp_path,
        {
            **GOOD,
            "sql/public/0002_nothing.sql": content,
            "sql/public/0003_after.sql": "INSERT INTO t VALUES (3);\n",
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.journal() == [(1, "applied", 1, 1), (2, "applied", 0, 0), (3, "applied", 1, 1)]
    text = content.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n").decode()
    assert database.query(
        "SELECT hash, content, chunk_hashes, error FROM __migrations WHERE version = 2"
    ) == [(hashlib.sha256(text.encode()).hexdigest(), text, [], None)]
    assert database.query("SELECT id FROM t") == [(3,)]
    again = cli("migrate", url=database.url)
    assert again.exit_code == 0 and "nothing to do" in again.stdout, again.output
    assert cli("validate", url=database.url).exit_code == 0
    assert cli("status", "--check", url=database.url).exit_code == 0


# --- big inputs -----------------------------------------------------------------------------

ROWS = 90_000


def test_a_10_mb_insert_values_file_applies(database: Database, tmp_path: Path) -> None:
    """One INSERT ... VALUES list of 10 MB whose literals hold every quoting form and fake
    markers and semicolons: a splitter that looked inside them would break the statement."""
    rows = ",\n".join(
        f"({i}, 'it''s row {i} --> statement-breakpoint', E'tab\\t{i}\\'s', $q${i};$q$,"
        " /* ; --> statement-breakpoint */ U&'\\0041')"
        for i in range(ROWS)
    )
    text = (
        'CREATE TABLE big (id int PRIMARY KEY, a text, b text, "c;--> statement-breakpoint" text,'
        " d text);\n--> statement-breakpoint\n"
        'INSERT INTO big (id, a, b, "c;--> statement-breakpoint", d) VALUES\n' + rows + ";\n"
    )
    assert len(text.encode()) > 10_000_000
    write(tmp_path, {"sql/public/0001_big.sql": text})
    started = time.perf_counter()
    result = cli("migrate", url=database.url)
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output[-2000:]
    assert database.journal() == [(1, "applied", 2, 2)]
    assert database.query(
        "SELECT count(*), sum(id), count(DISTINCT a), min(b),"
        " max(replace(\"c;--> statement-breakpoint\", ';', '')::int), min(d), max(d) FROM big"
    ) == [(ROWS, ROWS * (ROWS - 1) // 2, ROWS, "tab\t0's", ROWS - 1, "A", "A")]
    assert database.scalar("SELECT a FROM big WHERE id = 42") == (
        "it's row 42 --> statement-breakpoint"
    )
    assert database.scalar("SELECT length(content) FROM __migrations") == len(text)
    assert elapsed < 30, f"{elapsed:.1f}s for a 10 MB file: the lexer has become slow"


STATEMENTS = 160_000


def test_a_10_mb_file_of_many_statements_in_few_chunks_applies(
    database: Database, tmp_path: Path
) -> None:
    lines = ["CREATE TABLE many (id int, note text);\n--> statement-breakpoint\n"]
    for i in range(STATEMENTS):
        lines.append(f"INSERT INTO many VALUES ({i}, 'a; b -- c /* d'); -- row {i}\n")
        if i % 20_000 == 19_999:
            lines.append("--> statement-breakpoint\n")
    text = "".join(lines)
    assert len(text.encode()) > 10_000_000
    write(tmp_path, {"sql/public/0001_many.sql": text})
    started = time.perf_counter()
    result = cli("migrate", url=database.url)
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output[-2000:]
    assert database.journal() == [(1, "applied", 9, 9)]
    assert database.query("SELECT count(*), sum(id), min(note), max(note) FROM many") == [
        (STATEMENTS, STATEMENTS * (STATEMENTS - 1) // 2, "a; b -- c /* d", "a; b -- c /* d")
    ]
    assert elapsed < 30, f"{elapsed:.1f}s for a 10 MB file: the lexer has become slow"


FILES = 10_000


def test_ten_thousand_files_in_one_schema(database: Database, tmp_path: Path) -> None:
    folder = tmp_path / "sql" / "public"
    folder.mkdir(parents=True)
    (folder / "00001_t.sql").write_text("CREATE TABLE t (id int);\n")
    for version in range(2, FILES + 1):
        (folder / f"{version:05d}_row.sql").write_text(f"INSERT INTO t VALUES ({version});\n")
    started = time.perf_counter()
    result = cli("migrate", url=database.url)
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output[-2000:]
    assert f"applied {FILES} files" in result.stdout
    assert database.query(
        "SELECT count(*), count(*) FILTER (WHERE status = 'applied' AND chunks_done = 1),"
        " min(version), max(version) FROM __migrations"
    ) == [(FILES, FILES, 1, FILES)]
    assert database.query("SELECT count(*), sum(id) FROM t") == [
        (FILES - 1, FILES * (FILES + 1) // 2 - 1)
    ]
    for command in ("status", "validate"):
        checked = cli(command, url=database.url)
        assert checked.exit_code == 0, checked.output[-2000:]
    assert elapsed < 60, f"{elapsed:.1f}s for {FILES} files"


# --- bytes PostgreSQL cannot take, and bytes that are not UTF-8 -----------------------------


@pytest.mark.parametrize(
    ("content", "where"),
    [
        pytest.param(b"SELECT '\x00';\n", ":1:9:", id="in a string"),
        pytest.param(b"SELECT 1;\n-- a \x00 in a comment\n", ":2:6:", id="in a comment"),
        pytest.param(b"\x00", ":1:1:", id="the only byte"),
        pytest.param(b"\xef\xbb\xbfSELECT 1;\r\n\r\n\x00", ":3:1:", id="after a BOM and CRLFs"),
    ],
)
def test_a_nul_byte_is_refused_naming_file_line_and_column(
    database: Database, tmp_path: Path, content: bytes, where: str
) -> None:
    write(tmp_path, {**GOOD, "sql/public/0002_nul.sql": content})
    (line,) = refused(cli("migrate", url=database.url), "sql/public/0002_nul.sql" + where)
    assert "NUL byte" in line
    assert_nothing_applied(database)


@pytest.mark.parametrize(
    ("content", "offset"),
    [
        pytest.param(b"SELECT 1;\n-- caf\xe9\n", 16, id="latin-1"),
        pytest.param(b"\xef\xbb\xbfSELECT '\xff';", 11, id="after a BOM"),
        pytest.param("SELECT 1;".encode("utf-16"), 0, id="UTF-16"),
        pytest.param(b"SELECT '\xe2\x82';", 8, id="a truncated sequence"),
        pytest.param(b"SELECT 1; -- \xe2\x82", 13, id="truncated at the end"),
        pytest.param(b"SELECT '\xed\xa0\x80';", 8, id="an encoded surrogate"),
        pytest.param(b"SELECT '\xc0\xaf';", 8, id="an overlong encoding"),
    ],
)
def test_invalid_utf8_is_refused_naming_the_byte_offset(
    database: Database, tmp_path: Path, content: bytes, offset: int
) -> None:
    write(tmp_path, {**GOOD, "sql/public/0002_bytes.sql": content})
    refused(
        cli("migrate", url=database.url),
        f"sql/public/0002_bytes.sql: invalid UTF-8 at byte offset {offset}",
    )
    assert_nothing_applied(database)


# --- files that cannot be read --------------------------------------------------------------


def test_a_dangling_symlink_named_like_a_migration_cannot_be_read(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, GOOD)
    (tmp_path / "sql/public/0002_gone.sql").symlink_to("0002_renamed.sql")
    refused(
        cli("migrate", url=database.url),
        "sql/public/0002_gone.sql: a symbolic link to 0002_renamed.sql, which does not exist",
    )
    assert_nothing_applied(database)


def test_a_fifo_named_like_a_migration_is_refused_without_waiting_for_a_writer(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, GOOD)
    fifo = tmp_path / "sql/public/0002_pipe.sql"
    os.mkfifo(fifo)

    def unblock() -> None:  # should the runner open the FIFO, end its wait with an empty read
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(10, unblock)
    timer.daemon = True
    timer.start()
    try:
        result = cli("migrate", url=database.url)
    finally:
        timer.cancel()
    refused(result, "sql/public/0002_pipe.sql: not a regular file")
    assert_nothing_applied(database)


@pytest.mark.skipif(ROOT, reason="root reads a chmod 000 file: see the symlink and FIFO cases")
def test_a_file_without_read_permission_is_refused(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {**GOOD, "sql/public/0002_secret.sql": "SELECT 1;\n"})
    (tmp_path / "sql/public/0002_secret.sql").chmod(0)
    refused(
        cli("migrate", url=database.url),
        "sql/public/0002_secret.sql: cannot read (Permission denied)",
    )
    assert_nothing_applied(database)


@pytest.mark.skipif(ROOT, reason="root lists a chmod 000 folder")
def test_a_schema_folder_without_read_permission_is_refused(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {**GOOD, "sql/sales/0001_x.sql": "CREATE TABLE x ();\n"})
    (tmp_path / "sql/sales").chmod(0)
    try:
        refused(
            cli("migrate", url=database.url),
            "sql/sales: cannot list the folder (Permission denied)",
        )
    finally:
        (tmp_path / "sql/sales").chmod(0o755)
    assert_nothing_applied(database)


# --- symbolic link loops and folders named like files --------------------------------------


def test_a_symlink_loop_between_two_migration_names_names_both(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, GOOD)
    (tmp_path / "sql/public/0002_a.sql").symlink_to("0003_b.sql")
    (tmp_path / "sql/public/0003_b.sql").symlink_to("0002_a.sql")
    lines = refused(
        cli("migrate", url=database.url),
        "sql/public/0002_a.sql: a symbolic link loop",
        "sql/public/0003_b.sql: a symbolic link loop",
    )
    assert len(lines) == 2
    assert_nothing_applied(database)


@pytest.mark.parametrize(
    ("link", "target", "expected"),
    [
        pytest.param(
            "sql/public/0002_self.sql",
            "0002_self.sql",
            "sql/public/0002_self.sql: a symbolic link loop",
            id="a file linked to itself",
        ),
        pytest.param("sql/sales", "sales", "sql/sales: a symbolic link loop", id="schema folder"),
        pytest.param(
            "sql/sales",
            "../elsewhere",
            "sql/sales: a symbolic link to ../elsewhere, which does not exist",
            id="dangling schema folder",
        ),
        pytest.param(
            "sql/public/0002_here.sql",
            ".",
            "sql/public/0002_here.sql: a folder named like a migration file",
            id="a folder link named like a migration",
        ),
    ],
)
def test_links_that_cannot_be_followed_are_refused(
    database: Database, tmp_path: Path, link: str, target: str, expected: str
) -> None:
    write(tmp_path, GOOD)
    (tmp_path / link).symlink_to(target)
    for command in ("migrate", "status", "validate"):
        refused(cli(command, url=database.url), expected)
    assert_nothing_applied(database)


def test_folder_symlink_loops_inside_sql_are_not_followed(
    database: Database, tmp_path: Path
) -> None:
    """Discovery reads sql/<schema>/*.sql and nothing deeper, so a loop below a schema folder
    (meta/ or any other subfolder) is never walked; a schema folder that links back to sql/
    holds no .sql file of its own and so adds nothing."""
    write(tmp_path, {**GOOD, "sql/public/meta/notes.json": "{}"})
    (tmp_path / "sql/public/meta/up").symlink_to("..")
    (tmp_path / "sql/public/meta/loop").symlink_to("loop")
    (tmp_path / "sql/public/around").symlink_to("../public")
    (tmp_path / "sql/mirror").symlink_to(".")
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.journal() == [(1, "applied", 1, 1)]
    assert user_relations(database) == [("public", "__migrations"), ("public", "t")]
    assert user_schemas(database) == ["public"]
    assert cli("validate", url=database.url).exit_code == 0


@pytest.mark.parametrize("inside", [{}, {"keep": "folder"}, {"0001_x.sql": "SELECT 1;"}])
def test_a_folder_named_like_a_migration_is_refused(
    database: Database, tmp_path: Path, inside: dict[str, str]
) -> None:
    write(tmp_path, {**GOOD, **{f"sql/public/0002_x.sql/{k}": v for k, v in inside.items()}})
    (tmp_path / "sql/public/0002_x.sql").mkdir(exist_ok=True)
    refused(
        cli("migrate", url=database.url),
        "sql/public/0002_x.sql: a folder named like a migration file",
    )
    assert_nothing_applied(database)


# --- journal tables that migrator did not write, or that a newer migrator wrote -------------

OTHER_TOOLS = [
    pytest.param(
        "CREATE TABLE {t} (id serial PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp);"
        " INSERT INTO {t} (name, run_on) VALUES ('/20200101-init', now())",
        "it has no column version, hash, chunk_hashes, content, status, chunks_total,"
        " chunks_done, error, started_at, finished_at, duration_ms, applied_by,"
        " migrator_version, note",
        id="db-migrate's table",
    ),
    pytest.param(
        "CREATE TABLE {t} (version bigint PRIMARY KEY, dirty boolean NOT NULL);"
        " INSERT INTO {t} VALUES (20200101, false)",
        "it has no column name, hash,",
        id="golang-migrate's table",
    ),
    pytest.param("CREATE TABLE {t} ()", "it has no column version, name,", id="no columns"),
    pytest.param(
        "CREATE VIEW {t} AS SELECT 1 AS version", "is a view, not a table", id="a view of it"
    ),
    pytest.param(
        "CREATE TABLE {t} (LIKE public.model); ALTER TABLE {t} DROP COLUMN chunk_hashes",
        "it has no column chunk_hashes",
        id="one column missing",
    ),
    pytest.param(
        "CREATE TABLE {t} (LIKE public.model INCLUDING ALL);"
        " ALTER TABLE {t} ALTER version TYPE text",
        "version is not a number",
        id="a column of another type",
    ),
    pytest.param(
        "CREATE TABLE {t} (LIKE public.model INCLUDING DEFAULTS)",
        "version has no unique index or primary key",
        id="no primary key",
    ),
    pytest.param(
        "CREATE TABLE {t} (LIKE public.model INCLUDING ALL, owner_team text NOT NULL)",
        "NOT NULL columns without a default that migrator does not fill: owner_team",
        id="a NOT NULL column migrator does not know",
    ),
]


def model_journal(database: Database) -> None:
    """public.model: a journal as migrator creates it, to copy with LIKE."""
    database.query(
        "CREATE TABLE public.model (version bigint PRIMARY KEY, name text NOT NULL,"
        " hash text NOT NULL, chunk_hashes text[] NOT NULL DEFAULT '{}',"
        " content text NOT NULL DEFAULT '', status text NOT NULL, chunks_total integer NOT NULL"
        " DEFAULT 0, chunks_done integer NOT NULL DEFAULT 0, error text, started_at timestamptz"
        " NOT NULL DEFAULT clock_timestamp(), finished_at timestamptz, duration_ms bigint,"
        " applied_by text NOT NULL DEFAULT current_user, migrator_version text NOT NULL, note text)"
    )


@pytest.mark.parametrize("schema", ["public", "Sales Dept"])
@pytest.mark.parametrize(("ddl", "expected"), OTHER_TOOLS)
def test_a_journal_table_of_the_wrong_shape_is_refused_naming_it(
    database: Database, tmp_path: Path, schema: str, ddl: str, expected: str
) -> None:
    model_journal(database)
    database.query(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    qualified = sql.Identifier(schema, "__migrations").as_string()
    database.query(ddl.replace("{t}", qualified))
    before = user_relations(database)
    contents = database.query(f"SELECT * FROM {qualified}")
    write(
        tmp_path,
        {
            f"sql/{schema}/0001_t.sql": "CREATE TABLE t (id int);\n",
            "sql/zeta/0001_z.sql": "CREATE TABLE z (id int);\n",
        },
    )
    for command in ("migrate", "status", "validate"):
        assert len(refused(cli(command, url=database.url), f"journal {qualified} ", expected)) == 1
    assert user_relations(database) == before
    assert database.query(f"SELECT * FROM {qualified}") == contents
    assert "zeta" not in user_schemas(database)


def test_a_seed_journal_of_the_wrong_shape_is_refused_naming_it(
    database: Database, tmp_path: Path
) -> None:
    database.query("CREATE TABLE public.__seeds (id serial PRIMARY KEY, seeded_at timestamptz)")
    write(tmp_path, {"sql/public/.keep": "", "seeds/1_x.sql": "CREATE TABLE public.x ();\n"})
    for command in ("seed", "status"):
        refused(
            cli(command, url=database.url),
            'seed journal "public"."__seeds" does not have the shape migrator needs: it has no'
            " column name, status, hash, always_run, runs, error",
        )
    assert user_relations(database) == [("public", "__seeds"), ("public", "__seeds_id_seq")]


@pytest.fixture
def applied(database: Database, tmp_path: Path) -> Database:
    """A journal with 0001 applied by this migrator, and 0002 pending."""
    write(tmp_path, GOOD)
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0002_u.sql": "CREATE TABLE u (id int);\n"})
    return database


NEWER = [
    pytest.param(
        "ALTER TABLE __migrations DROP CONSTRAINT __migrations_status_check;"
        " INSERT INTO __migrations (version, name, hash, status, migrator_version)"
        " VALUES (9, '0009_gone.sql', 'x', 'archived', '9.1.0')",
        "9.1.0",
        "status 'archived' for version 9",
        id="a status this version does not know",
    ),
    pytest.param(
        "ALTER TABLE __migrations ADD COLUMN checksum_algorithm text;"
        " UPDATE __migrations SET migrator_version = '1.0.0', checksum_algorithm = 'sha256'",
        "1.0.0",
        "columns this version does not know: checksum_algorithm",
        id="a column this version does not know",
    ),
    pytest.param(
        "ALTER TABLE __migrations ADD COLUMN tenant text NOT NULL DEFAULT 'a';"
        " ALTER TABLE __migrations DROP CONSTRAINT __migrations_status_check;"
        " UPDATE __migrations SET migrator_version = '0.10.0', status = 'verified'",
        "0.10.0",
        "columns this version does not know: tenant",
        id="both",
    ),
]


@pytest.mark.parametrize(("change", "version", "what"), NEWER)
def test_a_journal_written_by_a_newer_migrator_is_refused(
    applied: Database, change: str, version: str, what: str
) -> None:
    applied.query(change)
    before = applied.query("SELECT * FROM __migrations ORDER BY version")
    for command in ("migrate", "status", "validate"):
        (line,) = refused(
            cli(command, url=applied.url),
            f'journal "public"."__migrations" was written by a newer migrator ({version}): upgrade',
        )
        assert what in line and f"(this is {__version__})" in line
    assert applied.query("SELECT * FROM __migrations ORDER BY version") == before
    assert applied.scalar("SELECT to_regclass('public.u')") is None


def test_an_unknown_status_from_this_version_is_refused_as_a_hand_edit(applied: Database) -> None:
    applied.query(
        "ALTER TABLE __migrations DROP CONSTRAINT __migrations_status_check;"
        " UPDATE __migrations SET status = 'done'"
    )
    (line,) = refused(cli("migrate", url=applied.url), "status 'done' for version 1")
    assert "does not know" in line and "newer" not in line
    assert applied.scalar("SELECT to_regclass('public.u')") is None
    assert applied.query("SELECT status FROM __migrations") == [("done",)]


@pytest.mark.parametrize(
    ("change", "written_by"),
    [
        pytest.param(
            "ALTER TABLE __migrations ADD COLUMN ticket text,"
            " ADD COLUMN reviewed boolean NOT NULL DEFAULT false",
            __version__,
            id="columns a DBA added",
        ),
        pytest.param(
            "UPDATE __migrations SET migrator_version = '0.2.0'",
            "0.2.0",
            id="rows of a newer release in the same shape",
        ),
    ],
)
def test_journals_this_version_can_read_are_used(
    applied: Database, change: str, written_by: str
) -> None:
    """Defined: a nullable (or defaulted) column that a DBA added is left alone, and rows that a
    newer release wrote in this shape, with statuses this version knows, are read as usual."""
    applied.query(change)
    result = cli("migrate", url=applied.url)
    assert result.exit_code == 0, result.output
    assert applied.journal() == [(1, "applied", 1, 1), (2, "applied", 1, 1)]
    assert applied.query("SELECT migrator_version FROM __migrations ORDER BY version") == [
        (written_by,),
        (__version__,),
    ]
    assert applied.scalar("SELECT to_regclass('public.u')") is not None


# --- schema names ---------------------------------------------------------------------------

QUOTED = ["Sales Dept", "select", 'we"ird', "Ünïcode", "1st", "a.b", "x" * 63, "€" * 21]


def test_schema_names_that_need_quoting_work(database: Database, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {}
    for schema in QUOTED:
        files[f"sql/{schema}/0001_t.sql"] = (
            "CREATE TABLE t (id int, s text DEFAULT current_schema);\n--> statement-breakpoint\n"
            "INSERT INTO t (id) VALUES (1);\n"
        )
    write(tmp_path, files)
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert sorted(user_schemas(database)) == sorted(["public", *QUOTED])
    for schema in QUOTED:
        assert journal_rows(database, schema) == [(1, "applied", 2, 2)]
        table = sql.Identifier(schema, "t").as_string()
        assert database.query(f"SELECT id, s FROM {table}") == [(1, schema)]
    status = cli("status", url=database.url)
    assert status.exit_code == 0, status.output
    assert all(schema in status.stdout for schema in QUOTED)
    assert f"{len(QUOTED)} applied" in status.stdout
    assert cli("validate", url=database.url).exit_code == 0
    again = cli("migrate", "select", 'we"ird', url=database.url)
    assert again.exit_code == 0 and "nothing to do" in again.stdout, again.output


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param("x" * 64, "the schema name is 64 bytes long", id="64 ASCII bytes"),
        pytest.param("é" * 32, "the schema name is 64 bytes long", id="32 two-byte letters"),
        pytest.param("s" * 200, "the schema name is 200 bytes long", id="200 bytes"),
        pytest.param("pg_stuff", "PostgreSQL reserves schema names starting with pg_", id="pg_"),
    ],
)
def test_schema_names_postgresql_would_change_or_refuse_are_refused(
    database: Database, tmp_path: Path, schema: str, expected: str
) -> None:
    write(tmp_path, {**GOOD, f"sql/{schema}/0001_x.sql": "CREATE TABLE x (id int);\n"})
    for command in ("migrate", "status", "validate"):
        assert len(refused(cli(command, url=database.url), f"sql/{schema}: {expected}")) == 1
    assert_nothing_applied(database)
    assert len(refused(cli("new", schema, "more"), f"'{schema}': {expected}")) == 1
    assert not (tmp_path / f"sql/{schema}/0002_more.sql").exists()


# --- database URLs that are not URLs --------------------------------------------------------

NOT_URLS = [
    pytest.param("not a url", "the database URL is not valid", id="words"),
    pytest.param("http://x", "the database URL is not valid", id="http"),
    pytest.param("postgres://u:s3cr3t@[::1/db", "the database URL is not valid", id="open ["),
    pytest.param(
        "postgresql://u:s3cr3t@h:notaport/db", "postgresql://u:***@h:notaport/db", id="port"
    ),
    pytest.param("postgresql://u:p@h:notaport/db", "postgresql://u:***@h:notaport/db", id="u:p"),
    pytest.param(
        "postgresql://u:s3cr3t@127.0.0.1:99999/db", "invalid port number", id="port too big"
    ),
    pytest.param(
        "postgresql://u:s3cr3t@127.0.0.1/db?sslmode=sometimes",
        'invalid sslmode value: "sometimes"',
        id="a bad option value",
    ),
    pytest.param(
        "postgresql://u:s3cr3t@127.0.0.1/db?colour=blue",
        "the database URL is not valid",
        id="an unknown option",
    ),
    pytest.param(
        "postgresql://",
        "the database URL names no host, database or user",
        id="nothing after the scheme",
    ),
]


@pytest.mark.parametrize("how", ["flag", "environment"])
@pytest.mark.parametrize(("url", "expected"), NOT_URLS)
def test_a_database_url_that_is_not_a_url_is_one_line_without_the_password(
    database: Database, tmp_path: Path, url: str, expected: str, how: str
) -> None:
    write(tmp_path, GOOD)
    # Should a URL fall through to libpq's defaults, they lead nowhere, not to a real server.
    env = {"PGHOST": str(tmp_path / "no-socket-here"), "PGCONNECT_TIMEOUT": "2"}
    for command in ("migrate", "status"):
        if how == "flag":
            result = cli("--database-url", url, command, env=env)
        else:
            result = cli(command, env={**env, "MIGRATOR_DATABASE_URL": url})
        (line,) = refused(result, expected)
        assert "cannot connect to" not in line or url.startswith("postgresql://u:")
        assert "s3cr3t" not in result.output and "u:p@" not in result.output
    assert not (tmp_path / ".migrator").exists()  # no fall back to the embedded server
    assert_nothing_applied(database)


@pytest.mark.parametrize(
    ("older", "newer"),
    [("0.1.0", "0.1.1"), ("0.9.9", "0.10.0"), ("0.1.0", "1.0"), ("1.2", "v1.2.1"), ("", "0.0.1")],
)
def test_release_versions_compare_as_numbers(older: str, newer: str) -> None:
    from migrator.journal import version_key

    assert version_key(older) < version_key(newer)
