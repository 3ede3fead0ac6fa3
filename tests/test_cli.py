"""Bad input of every kind: exit 2, a one-line reason naming the culprit, nothing applied."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer.core
import typer.main
from conftest import PYTHON, REPO, Database, cli, subprocess_env, write

from migrator import __version__
from migrator.cli import app
from migrator.sqlfile import MARKER


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
            {"sql/public/0002_x .sql": "SELECT 1;"},
            "sql/public/0002_x .sql: a space before .sql",
            id="a space before .sql",
        ),
        pytest.param(
            {"sql/pub\udcffic/0002_x.sql": "SELECT 1;"},
            "sql/pub\\udcffic: the folder name is not UTF-8",
            id="a schema folder name that is not UTF-8",
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


# `new` is findable as `create` (issue 14, item 10).


@pytest.mark.parametrize("command", ["new", "create"])
def test_create_makes_the_file_new_makes(tmp_path: Path, command: str) -> None:
    result = cli(command, "public", "add_thing")
    assert result.exit_code == 0, result.output
    assert "created sql/public/0001_add_thing.sql" in result.stdout
    assert sorted(path.name for path in (tmp_path / "sql/public").iterdir()) == [
        "0001_add_thing.sql"
    ]
    assert (tmp_path / "sql/public/0001_add_thing.sql").read_text() == HEADER.format(
        schema="public", name="add_thing"
    )


def test_the_command_list_shows_create_as_an_alias_of_new() -> None:
    listed = cli("--help").stdout
    assert re.search(r"^\s+new\s.*\(alias: create\)", listed, re.MULTILINE), listed
    assert not re.search(r"^\s+create\s", listed, re.MULTILINE)  # hidden: no second entry


# Global options after the command too; the one after it wins (issue 14, item 11).

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nowhere"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("migrate", "--database-url", "{url}"), id="after"),
        pytest.param(("migrate", "-v", "--database-url={url}"), id="after, with -v"),
        pytest.param(("migrate", "public", "--database-url", "{url}"), id="after a schema"),
        pytest.param(("--database-url", "{url}", "migrate"), id="before"),
        pytest.param(
            ("--database-url", UNREACHABLE, "migrate", "--database-url", "{url}"),
            id="both: the one after wins",
        ),
    ],
)
def test_the_database_url_before_or_after_the_command(
    database: Database, tmp_path: Path, args: tuple[str, ...]
) -> None:
    write(tmp_path, GOOD)
    result = cli(*(arg.format(url=database.url) for arg in args), url=UNREACHABLE)
    assert result.exit_code == 0, result.output
    assert database.journal() == [(1, "applied", 1, 1)]
    assert ("connected to" in result.stderr) == ("-v" in args)


@pytest.mark.parametrize(
    ("args", "key", "expected"),
    [
        pytest.param(("status", "--json"), "migrations", "sql/public/0001_t.sql", id="status"),
        pytest.param(("validate", "--json"), "files", 1, id="validate"),
        pytest.param(("migrate", "-q", "--json"), "applied", "sql/public/0001_t.sql", id="migrate"),
        pytest.param(("seed", "--json"), "seeds", [], id="seed"),
        pytest.param(
            ("new", "public", "x", "--json"), "created", "sql/public/0002_x.sql", id="new"
        ),
        pytest.param(
            ("create", "public", "x", "--json"), "created", "sql/public/0002_x.sql", id="create"
        ),
        pytest.param(("-q", "status", "--json"), "migrations", "sql/public/0001_t.sql", id="mixed"),
        pytest.param(
            ("--json", "status", "--json"), "migrations", "sql/public/0001_t.sql", id="both"
        ),
    ],
)
def test_json_after_the_command(
    database: Database, tmp_path: Path, args: tuple[str, ...], key: str, expected: object
) -> None:
    write(tmp_path, GOOD)
    result = cli(*args, url=database.url)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # exactly one document
    found = document[key]
    if isinstance(found, list) and found:
        found = found[0]["path"]
    assert found == expected
    assert document["exit_code"] == 0
    applied = database.scalar("SELECT to_regclass('public.t')") is not None
    assert applied == (args[0] == "migrate")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("config", "--env", "staging"), {"env": "staging"}, id="--env"),
        pytest.param(
            ("--env", "production", "config", "--env", "staging"),
            {"env": "staging"},
            id="both: the one after wins",
        ),
        pytest.param(
            ("--sql-dir", "a", "config", "--seeds-dir", "s", "--wait-for-db", "5"),
            {"sql_dir": "a", "seeds_dir": "s", "wait_for_db": "5.0"},
            id="some before, some after",
        ),
    ],
)
def test_settings_after_the_command(args: tuple[str, ...], expected: dict[str, str]) -> None:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["settings"]}
    assert {name: rows[name]["value"] for name in expected} == expected
    assert {rows[name]["source"] for name in expected} == {"flag"}


def test_sql_dir_and_quiet_after_the_command(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {"db/public/0001_t.sql": "CREATE TABLE t (id int);\n"})
    result = cli("migrate", "--sql-dir", "db", "-q", url=database.url)
    assert result.exit_code == 0, result.output
    assert "applying" not in result.stderr  # -q
    assert "applied 1 file" in result.stdout
    assert database.journal() == [(1, "applied", 1, 1)]
    made = cli("new", "--sql-dir", "db", "public", "u")
    assert made.exit_code == 0, made.output
    assert (tmp_path / "db/public/0002_u.sql").is_file()


# `new`: names slugified, mixed-case schema folders warned of, timestamp versions (item 12).

HEADER = "-- {schema}: {name}\n-- One statement per chunk; end each chunk with " + MARKER + "\n\n"


@pytest.mark.parametrize(
    ("name", "file", "shown"),
    [
        ("Add Invoice Status!", "0002_add_invoice_status.sql", "Add Invoice Status!"),
        ("drop table; --", "0002_drop_table.sql", "drop table; --"),
        ("  add--orders__v2 ", "0002_add_orders_v2.sql", "add--orders__v2"),
        ("Café crème", "0002_cafe_creme.sql", "Café crème"),
        ("x\nDROP TABLE users;", "0002_x_drop_table_users.sql", "x DROP TABLE users;"),
    ],
)
def test_new_slugifies_the_name(tmp_path: Path, name: str, file: str, shown: str) -> None:
    write(tmp_path, {"sql/public/0001_a.sql": "SELECT 1;"})
    result = cli("new", "public", name)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"created sql/public/{file}\n"
    assert sorted(path.name for path in (tmp_path / "sql/public").iterdir()) == [
        "0001_a.sql",
        file,
    ]
    # The name in the header comment is one line: nothing of it can become SQL.
    assert (tmp_path / "sql/public" / file).read_text() == HEADER.format(
        schema="public", name=shown
    )


@pytest.mark.parametrize("name", ["!!!", "///", "  ", "日本語", "_-_"])
def test_new_refuses_a_name_with_nothing_to_slugify(tmp_path: Path, name: str) -> None:
    result = cli("new", "public", name)
    assert result.exit_code == 2
    assert "no letters or digits" in result.stderr
    assert not (tmp_path / "sql/public").exists() or not any((tmp_path / "sql/public").iterdir())


@pytest.mark.parametrize(
    ("schema", "warned"), [("Sales", True), ("SALES", True), ("sales", False), ("sales_2", False)]
)
def test_new_warns_of_a_mixed_case_schema_folder(tmp_path: Path, schema: str, warned: bool) -> None:
    result = cli("--json", "new", schema, "x")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["created"] == f"sql/{schema}/0001_x.sql"
    assert (tmp_path / "sql" / schema / "0001_x.sql").read_text() == HEADER.format(
        schema=schema, name="x"
    )
    warning = f'schema folder {schema} is not lower case: its migrations run in schema "{schema}"'
    assert any(warning in notice for notice in document["notices"]) == warned
    assert (warning in result.stderr) == warned


def _utc_stamp() -> int:
    return int(datetime.now(UTC).strftime("%Y%m%d%H%M%S"))


@pytest.mark.parametrize(
    ("files", "args"),
    [
        pytest.param({}, ("--timestamp",), id="--timestamp in a new folder"),
        pytest.param({"0001_a.sql": "SELECT 1;"}, ("--timestamp",), id="--timestamp after 0001"),
        pytest.param(
            {"0001_a.sql": "SELECT 1;", "20250101000000_b.sql": "SELECT 1;"},
            (),
            id="automatic: the folder's newest file has one",
        ),
    ],
)
def test_new_with_a_timestamp_version(
    tmp_path: Path, files: dict[str, str], args: tuple[str, ...]
) -> None:
    write(tmp_path, {f"sql/public/{name}": text for name, text in files.items()})
    before = _utc_stamp()
    result = cli("new", "public", "Add X", *args)
    after = _utc_stamp()
    assert result.exit_code == 0, result.output
    created = sorted(set(path.name for path in (tmp_path / "sql/public").iterdir()) - set(files))
    assert len(created) == 1 and result.stdout == f"created sql/public/{created[0]}\n"
    version, name = created[0].split("_", 1)
    assert name == "add_x.sql" and len(version) == 14
    assert before <= int(version) <= after
    assert (tmp_path / "sql/public" / created[0]).read_text() == HEADER.format(
        schema="public", name="Add X"
    )


def test_timestamp_versions_never_collide_or_go_back(tmp_path: Path) -> None:
    write(tmp_path, {"sql/public/29991231235959_later.sql": "SELECT 1;"})
    assert cli("new", "public", "a").exit_code == 0
    assert cli("new", "public", "b", "--timestamp").exit_code == 0
    assert sorted(path.name for path in (tmp_path / "sql/public").iterdir()) == [
        "29991231235959_later.sql",
        "29991231235960_a.sql",
        "29991231235961_b.sql",
    ]


def test_new_without_timestamps_keeps_numbering(tmp_path: Path) -> None:
    write(tmp_path, {"sql/public/001_a.sql": "SELECT 1;"})
    assert cli("new", "public", "b").stdout == "created sql/public/002_b.sql\n"


# Usage errors as JSON with --json; signals while starting (item 13).

MIGRATE_LISTS = ("applied", "pending", "unlisted")


@pytest.mark.parametrize(
    ("args", "message", "lists"),
    [
        pytest.param(
            ("--json", "migrate", "--bogus"), "No such option: --bogus", MIGRATE_LISTS, id="option"
        ),
        pytest.param(
            ("migrate", "--bogus", "--json"), "No such option: --bogus", MIGRATE_LISTS, id="after"
        ),
        pytest.param(("--json", "bogus"), "No such command 'bogus'", (), id="command"),
        pytest.param(("--json", "--bogus", "status"), "No such option: --bogus", (), id="global"),
        pytest.param(
            ("--json", "migrate", "--to", "soon"),
            "Invalid value for '--to'",
            MIGRATE_LISTS,
            id="value",
        ),
        pytest.param(
            ("--json", "baseline", "public"),
            "Missing option '--version'",
            ("baselined",),
            id="missing",
        ),
        pytest.param(
            ("status", "--wait-for-db", "later", "--json"),
            "Invalid value for '--wait-for-db'",
            ("migrations", "seeds", "drift"),
            id="a global option's value after the command",
        ),
    ],
)
def test_usage_errors_with_json_are_one_json_document(
    args: tuple[str, ...], message: str, lists: tuple[str, ...]
) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)  # exactly one document
    assert document["exit_code"] == 2
    error = document["error"]
    assert set(error) == {"type", "message", "problems", "hint"}
    assert error["type"] == "UsageError" and message in error["message"]
    assert error["problems"] == [] and "--help" in error["hint"]
    assert {name: document[name] for name in lists} == {name: [] for name in lists}
    assert (document["notices"], document["messages"]) == ([], [])
    assert message in result.stderr


def test_usage_errors_without_json_are_clicks() -> None:
    result = cli("migrate", "--bogus")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "No such option: --bogus" in result.stderr and "Usage: migrator migrate" in result.stderr


def _sigint_default() -> None:  # a child of a shell's background job may ignore SIGINT
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("signum", "code", "by"),
    [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")],
    ids=["SIGINT", "SIGTERM"],
)
@pytest.mark.parametrize(
    ("stage", "json_flag"),
    [
        pytest.param("typer._adapters", True, id="while typer parses the options"),
        pytest.param("migrator.commands", False, id="while the command imports its modules"),
        pytest.param("migrator.commands", True, id="while the command imports its modules, json"),
        pytest.param("", False, id="while it waits for the database"),
    ],
)
def test_a_signal_while_starting_exits_with_its_code(
    tmp_path: Path, signum: int, code: int, by: str, stage: str, json_flag: bool
) -> None:
    """The signal is sent once the child is at the stage: an import it finished (reported by
    -X importtime on stderr), or its connection attempt accepted by a server that never answers."""
    write(tmp_path, GOOD)
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        url = f"postgresql://nobody@127.0.0.1:{server.getsockname()[1]}/nowhere"
        flags = ["--json"] if json_flag else []
        child = subprocess.Popen(
            [
                PYTHON,
                "-X",
                "importtime",
                "-m",
                "migrator",
                *flags,
                "--wait-for-db",
                "30",
                "migrate",
            ],
            cwd=tmp_path,
            env=subprocess_env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_sigint_default,
        )
        assert child.stderr is not None and child.stdout is not None
        try:
            if stage:
                seen = ""
                while not seen.rstrip().endswith(f"| {stage}"):
                    seen = child.stderr.readline()
                    assert seen, f"the child ended before importing {stage}"
            else:
                server.accept()[0].close()
            child.send_signal(signum)
            err = child.stderr.read()
            out = child.stdout.read()
            assert child.wait(timeout=30) == code, err
        finally:
            if child.poll() is None:
                child.kill()
    err = "\n".join(line for line in err.splitlines() if not line.startswith("import time:"))
    assert "Aborted!" not in err and "Traceback" not in err, err
    assert f"interrupted ({by}) before connecting to the database: nothing was done" in err
    if json_flag:
        document = json.loads(out)
        assert document["exit_code"] == code
        assert any(f"interrupted ({by})" in notice for notice in document["notices"])
    else:
        assert out == ""


def test_no_command_has_an_option_of_the_global_ones() -> None:
    """Each command takes the global options after it: none may declare one of its own."""
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    for name, command in group.commands.items():
        spelled = [opt for param in command.params for opt in (*param.opts, *param.secondary_opts)]
        assert len(spelled) == len(set(spelled)), name
