"""Operators and CI: production confirmation (a real pty, and off a terminal), guards, dry-run,
--json, --only/--force/--to, repair, baseline, reset, settings precedence, no password in any
output, --wait-for-db. Every test asserts what is in the database afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pgserver
import pytest
from conftest import PYTHON, Database, Result, cli, subprocess_env, write
from psycopg.conninfo import conninfo_to_dict

from migrator import settings

MARK = "--> statement-breakpoint"
PG_DUMP = Path(pgserver.__file__).parent / "pginstall/bin/pg_dump"
PROD = {"MIGRATOR_ENV": "production"}
PROJECT = {"sql/public/0001_x.sql": "CREATE TABLE x (id int);\n"}
SEED = {"seeds/1_s.sql": "CREATE TABLE s (id int);\nINSERT INTO s VALUES (1);\n"}
PASSWORD = "s3cr3t-pw"


def chunks(*statements: str) -> str:
    return f"\n{MARK}\n".join(statements) + "\n"


def dump(database: Database, *options: str) -> str:
    """pg_dump's text of the database (data included unless --schema-only is given)."""
    completed = subprocess.run(
        [str(PG_DUMP), *options, "-d", database.url],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    # Newer pg_dump releases write a random \restrict key per dump; it is not the database.
    lines = completed.stdout.splitlines()
    return "\n".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))


def journals(database: Database) -> int:
    """How many migration or seed journal tables exist, in any schema."""
    return int(
        database.scalar(
            "SELECT count(*) FROM pg_class WHERE relname IN ('__migrations', '__seeds')"
        )
    )


def exists(database: Database, relation: str) -> bool:
    return bool(database.scalar("SELECT to_regclass(%s) IS NOT NULL", (relation,)))


def untouched(database: Database) -> None:
    assert journals(database) == 0
    assert not exists(database, "public.x")
    assert not exists(database, "public.s")


def with_password(database: Database) -> str:
    """The test database as a URL with a password (trust auth ignores it)."""
    parts = conninfo_to_dict(database.url)
    user, host, dbname = parts["user"], str(parts["host"]), parts["dbname"]
    if host.startswith("/"):  # the embedded server listens on a socket only
        return f"postgresql://{user}:{PASSWORD}@/{dbname}?host={host}"
    return f"postgresql://{user}:{PASSWORD}@{host}:{parts['port']}/{dbname}"


def document(result: Result) -> dict[str, Any]:
    """stdout is exactly one JSON document."""
    parsed = json.loads(result.stdout)
    assert isinstance(parsed, dict)
    assert parsed["exit_code"] == result.exit_code
    return parsed


# 1. Production confirmation through a real pseudo-terminal.


def run_on_a_terminal(tmp_path: Path, url: str, typed: str) -> tuple[int, str, str, str]:
    """`python -m migrator migrate` in production with stdin on a pty; type `typed`."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        [PYTHON, "-m", "migrator", "migrate"],
        cwd=tmp_path,
        env=subprocess_env(url, **PROD),
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    os.close(slave)
    assert process.stdout is not None and process.stderr is not None
    streams: dict[str, bytearray] = {"out": bytearray(), "err": bytearray()}
    prompted = threading.Event()
    prompt_text = ""

    def pump(name: str, stream: Any) -> None:
        nonlocal prompt_text
        for data in iter(lambda: stream.read1(4096), b""):
            streams[name].extend(data)
            text = streams[name].decode(errors="replace")
            if name == "err" and "Type the database name" in text and not prompted.is_set():
                prompt_text = text
                prompted.set()

    pumps = [
        threading.Thread(target=pump, args=("out", process.stdout), daemon=True),
        threading.Thread(target=pump, args=("err", process.stderr), daemon=True),
    ]
    for thread in pumps:
        thread.start()
    try:
        assert prompted.wait(20), f"no prompt; stderr: {streams['err'].decode()}"
        os.write(master, typed.encode())
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    for thread in pumps:
        thread.join(5)
    return code, prompt_text, streams["out"].decode(), streams["err"].decode()


def test_production_prompt_on_a_terminal_typed_right_applies(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, PROJECT)
    url = with_password(database)
    code, prompt, stdout, stderr = run_on_a_terminal(tmp_path, url, database.name + "\n")
    assert code == 0, stderr
    assert f"Type the database name ({database.name})" in prompt
    # The target (masked) and the plan come before the question.
    assert "production: postgresql://postgres:***@" in prompt
    assert f"(database {database.name}, user postgres)" in prompt
    assert "sql/public/0001_x.sql: 1 chunk, 1 statement" in stdout
    assert PASSWORD not in stdout + stderr
    assert database.journal() == [(1, "applied", 1, 1)]
    assert exists(database, "public.x")


def test_production_prompt_on_a_terminal_typed_wrong_changes_nothing(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, PROJECT)
    code, _, _, stderr = run_on_a_terminal(tmp_path, database.url, f"not_{database.name}\n")
    assert code == 4, stderr
    assert f"'not_{database.name}' is not the target database '{database.name}'" in stderr
    assert "nothing was changed" in stderr
    untouched(database)
    assert not exists(database, "public.__migrations")


def test_production_prompt_on_a_terminal_left_unanswered_changes_nothing(
    database: Database, tmp_path: Path
) -> None:
    """End of input (Ctrl-D) at the question is a refusal: exit 4, not a crash or exit 1."""
    write(tmp_path, PROJECT)
    code, _, _, stderr = run_on_a_terminal(tmp_path, database.url, "\x04")
    assert code == 4, stderr
    assert "nothing was changed" in stderr
    untouched(database)


# 1. Production confirmation off a terminal (CliRunner's stdin is no tty).


def test_production_migrate_off_a_terminal_needs_the_database_name(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, PROJECT)
    url = with_password(database)
    refused = cli("migrate", url=url, env=PROD)
    assert refused.exit_code == 4
    assert f"nobody confirmed the target '{database.name}'" in refused.stderr
    assert f"--confirm {database.name}" in refused.stderr
    assert "Type the database name" not in refused.output
    # The target and the plan were shown before refusing; never the password.
    assert "production: postgresql://postgres:***@" in refused.stderr
    assert f"(database {database.name}, user postgres)" in refused.stderr
    assert "sql/public/0001_x.sql: 1 chunk, 1 statement" in refused.stdout
    assert PASSWORD not in refused.output
    untouched(database)

    wrong = cli("migrate", "--confirm", "wrong", url=url, env=PROD)
    assert wrong.exit_code == 4
    assert f"'wrong' is not the target database '{database.name}'" in wrong.stderr
    assert PASSWORD not in wrong.output
    untouched(database)

    # --confirm wins over CONFIRM_PROD: a wrong flag is not rescued by a right variable.
    flag_wins = cli(
        "migrate", "--confirm", "wrong", url=url, env={**PROD, "CONFIRM_PROD": database.name}
    )
    assert flag_wins.exit_code == 4
    untouched(database)

    applied = cli("migrate", "--confirm", database.name, url=url, env=PROD)
    assert applied.exit_code == 0, applied.output
    assert database.journal() == [(1, "applied", 1, 1)]
    assert exists(database, "public.x")

    # Nothing pending: no question, no confirmation needed, nothing changes.
    finished = database.query("SELECT finished_at FROM public.__migrations")
    idle = cli("migrate", url=url, env=PROD)
    assert idle.exit_code == 0, idle.output
    assert "nothing to do" in idle.stdout
    assert "confirm" not in idle.output.lower()
    assert database.query("SELECT finished_at FROM public.__migrations") == finished


def test_production_migrate_confirmed_by_confirm_prod(database: Database, tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    wrong = cli("migrate", url=database.url, env={**PROD, "CONFIRM_PROD": "other_db"})
    assert wrong.exit_code == 4
    untouched(database)
    applied = cli("migrate", url=database.url, env={**PROD, "CONFIRM_PROD": database.name})
    assert applied.exit_code == 0, applied.output
    assert database.journal() == [(1, "applied", 1, 1)]
    assert exists(database, "public.x")


def test_production_seed_off_a_terminal(database: Database, tmp_path: Path) -> None:
    write(tmp_path, SEED)
    refused = cli("seed", url=database.url, env=PROD)
    assert refused.exit_code == 4
    assert "nobody confirmed" in refused.stderr and "1_s" in refused.stdout
    untouched(database)
    wrong = cli("seed", "--confirm", "wrong", url=database.url, env=PROD)
    assert wrong.exit_code == 4
    untouched(database)

    applied = cli("seed", "--confirm", database.name, url=database.url, env=PROD)
    assert applied.exit_code == 0, applied.output
    assert database.query("SELECT name, status, runs FROM public.__seeds") == [
        ("1_s", "SUCCESS", 1)
    ]
    assert database.query("SELECT id FROM s") == [(1,)]

    idle = cli("seed", url=database.url, env=PROD)
    assert idle.exit_code == 0, idle.output
    assert database.query("SELECT name, status, runs FROM public.__seeds") == [
        ("1_s", "SUCCESS", 1)
    ]
    assert database.query("SELECT id FROM s") == [(1,)]


def test_production_seed_confirmed_by_confirm_prod(database: Database, tmp_path: Path) -> None:
    write(tmp_path, SEED)
    applied = cli("seed", url=database.url, env={**PROD, "CONFIRM_PROD": database.name})
    assert applied.exit_code == 0, applied.output
    assert database.query("SELECT id FROM s") == [(1,)]


def test_production_with_nothing_due_asks_nothing_and_writes_nothing(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/README.md": "no migrations yet", "seeds/README.md": "none"})
    before = dump(database)
    for command in ("migrate", "seed"):
        result = cli(command, url=database.url, env=PROD)
        assert result.exit_code == 0, result.output
        assert "confirm" not in result.output.lower()
    assert journals(database) == 0
    assert dump(database) == before


def test_production_baseline_off_a_terminal(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {**PROJECT, "sql/public/0002_y.sql": "CREATE TABLE y (id int);\n"})
    refused = cli("baseline", "public", "--version", "1", url=database.url, env=PROD)
    assert refused.exit_code == 4
    assert "baseline sql/public/0001_x.sql" in refused.stdout
    untouched(database)
    wrong = cli(
        "baseline", "public", "--version", "1", "--confirm", "wrong", url=database.url, env=PROD
    )
    assert wrong.exit_code == 4
    untouched(database)

    env = {**PROD, "CONFIRM_PROD": database.name}
    applied = cli("baseline", "public", "--version", "1", url=database.url, env=env)
    assert applied.exit_code == 0, applied.output
    assert database.journal() == [(1, "baseline", 1, 1)]
    assert not exists(database, "public.x")

    idle = cli("baseline", "public", "--version", "1", url=database.url, env=PROD)
    assert idle.exit_code == 0, idle.output
    assert database.journal() == [(1, "baseline", 1, 1)]


def test_production_repair_off_a_terminal(database: Database, tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0001_x.sql": "CREATE TABLE x (id bigint);\n"})
    old = database.scalar("SELECT hash FROM public.__migrations")
    refused = cli("repair", "--reason", "widen", url=database.url, env=PROD)
    assert refused.exit_code == 4
    assert database.scalar("SELECT hash FROM public.__migrations") == old
    confirmed = cli(
        "repair", "--reason", "widen", "--confirm", database.name, url=database.url, env=PROD
    )
    assert confirmed.exit_code == 0, confirmed.output
    new = hashlib.sha256(b"CREATE TABLE x (id bigint);\n").hexdigest()
    assert database.scalar("SELECT hash FROM public.__migrations") == new


# 2. Guards.

GUARDED = {"MIGRATOR_REQUIRE_RUN_MODE": "true"}
GUARD_MESSAGE = "MIGRATOR_REQUIRE_RUN_MODE is on and RUN_MODE is not 'migrate'"


def _prepare_applied(database: Database, tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    assert cli("migrate", url=database.url).exit_code == 0
    database.query("INSERT INTO x VALUES (42)")


def _prepare_edited(database: Database, tmp_path: Path) -> None:
    _prepare_applied(database, tmp_path)
    write(tmp_path, {"sql/public/0001_x.sql": "CREATE TABLE x (id bigint);\n"})


@pytest.mark.parametrize(
    ("args", "prepare", "done"),
    [
        pytest.param(
            ("migrate",),
            lambda database, tmp_path: write(tmp_path, PROJECT),
            lambda database: database.journal() == [(1, "applied", 1, 1)],
            id="migrate",
        ),
        pytest.param(
            ("seed",),
            lambda database, tmp_path: write(tmp_path, SEED),
            lambda database: database.query("SELECT id FROM s") == [(1,)],
            id="seed",
        ),
        pytest.param(
            ("repair", "--reason", "widen", "--yes"),
            _prepare_edited,
            lambda database: database.scalar("SELECT note FROM public.__migrations") is not None,
            id="repair",
        ),
        pytest.param(
            ("baseline", "public", "--version", "1"),
            lambda database, tmp_path: write(tmp_path, PROJECT),
            lambda database: database.journal() == [(1, "baseline", 1, 1)],
            id="baseline",
        ),
        pytest.param(
            ("reset", "--confirm", "{database}"),
            _prepare_applied,
            lambda database: database.query("SELECT * FROM x") == [],
            id="reset",
        ),
    ],
)
def test_run_mode_guard_refuses_every_writing_command(
    database: Database, tmp_path: Path, args: tuple[str, ...], prepare: Any, done: Any
) -> None:
    prepare(database, tmp_path)
    args = tuple(arg.format(database=database.name) for arg in args)
    before = dump(database)
    for run_mode in ({}, {"RUN_MODE": "web"}):
        refused = cli(*args, url=database.url, env={**GUARDED, **run_mode})
        assert refused.exit_code == 4, refused.output
        assert GUARD_MESSAGE in refused.stderr and "RUN_MODE=migrate" in refused.stderr
        assert dump(database) == before
    allowed = cli(*args, url=database.url, env={**GUARDED, "RUN_MODE": "migrate"})
    assert allowed.exit_code == 0, allowed.output
    assert done(database)
    assert dump(database) != before


def test_dry_run_passes_the_run_mode_guard(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {**PROJECT, **SEED})
    before = dump(database)
    migrate = cli("migrate", "--dry-run", url=database.url, env=GUARDED)
    assert migrate.exit_code == 0, migrate.output
    assert "CREATE TABLE x (id int);" in migrate.stdout
    seed = cli("seed", "--dry-run", url=database.url, env=GUARDED)
    assert seed.exit_code == 0, seed.output
    assert dump(database) == before
    untouched(database)


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_reset_is_refused_outside_development(
    database: Database, tmp_path: Path, environment: str
) -> None:
    _prepare_applied(database, tmp_path)
    before = dump(database)
    for extra in ((), ("--json",)):
        refused = cli(
            *extra,
            "reset",
            url=database.url,
            env={"MIGRATOR_ENV": environment, "CONFIRM_PROD": database.name},
        )
        assert refused.exit_code == 4
        assert f"reset is only allowed in development; this is {environment}" in refused.stderr
    assert database.query("SELECT id FROM x") == [(42,)]
    assert database.journal() == [(1, "applied", 1, 1)]
    assert dump(database) == before


# 3. --dry-run.

DRY_PROJECT = {
    "sql/public/0001_accounts.sql": chunks(
        "CREATE TABLE accounts (id int PRIMARY KEY)",
        "INSERT INTO accounts VALUES (1), (2)",
    ),
    "sql/app/0001_orders.sql": chunks(
        "CREATE TABLE app.orders (id int, account int)",
        "CREATE INDEX CONCURRENTLY orders_account_idx ON app.orders (account)",
        "COMMENT ON TABLE app.orders IS 'dry'",
    ),
}
DRY_STATEMENTS = [
    "CREATE TABLE accounts (id int PRIMARY KEY)",
    "INSERT INTO accounts VALUES (1), (2)",
    "CREATE TABLE app.orders (id int, account int)",
    "CREATE INDEX CONCURRENTLY orders_account_idx ON app.orders (account)",
    "COMMENT ON TABLE app.orders IS 'dry'",
]


def advisory_locks(database: Database) -> int:
    return int(
        database.scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    )


def test_migrate_dry_run_prints_every_statement_and_changes_nothing(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, DRY_PROJECT)
    before = dump(database, "--schema-only")
    result = cli("migrate", "--dry-run", url=database.url)
    assert result.exit_code == 0, result.output
    for statement in DRY_STATEMENTS:
        assert statement in result.stdout
    assert "sql/app/0001_orders.sql: 3 chunks, 3 statements" in result.stdout
    assert "runs outside a transaction: CREATE INDEX CONCURRENTLY" in result.stdout
    assert dump(database, "--schema-only") == before
    assert journals(database) == 0
    assert database.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'app'") == 0
    assert advisory_locks(database) == 0
    # In production too: a dry run asks nothing and needs no confirmation.
    production = cli("migrate", "--dry-run", url=database.url, env=PROD)
    assert production.exit_code == 0, production.output
    assert dump(database, "--schema-only") == before
    # The comparison can see a change: the real run alters the dump.
    assert cli("migrate", url=database.url).exit_code == 0
    assert dump(database, "--schema-only") != before
    assert database.journal("app") == [(1, "applied", 3, 3)]


def test_seed_dry_run_lists_the_processes_and_changes_nothing(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            **SEED,
            "seeds/2_more.py": "def run(conn):\n    conn.execute('INSERT INTO s VALUES (2)')\n",
        },
    )
    before = dump(database)
    result = cli("seed", "--dry-run", url=database.url)
    assert result.exit_code == 0, result.output
    assert "run 1_s" in result.stdout and "INSERT INTO s VALUES (1);" in result.stdout
    assert "run 2_more" in result.stdout and "run(conn) in seeds/2_more.py" in result.stdout
    assert dump(database) == before
    assert not exists(database, "public.__seeds")
    assert advisory_locks(database) == 0
    assert cli("seed", url=database.url).exit_code == 0
    assert database.query("SELECT id FROM s ORDER BY id") == [(1,), (2,)]


# 4. --json for every command.


STATUS_KEYS = {
    "schema",
    "version",
    "name",
    "path",
    "state",
    "chunks_done",
    "chunks_total",
    "finished_at",
    "duration_ms",
    "detail",
    "has_down",
    "down_chunks_done",
}
STEP_KEYS = {
    "schema",
    "version",
    "path",
    "repeatable",
    "mode",
    "resume_at_chunk",
    "forced",
    "chunks",
}
APPLIED_KEYS = {
    "schema",
    "version",
    "name",
    "path",
    "chunks_run",
    "chunks_total",
    "duration_ms",
    "repeatable",
}


def test_json_for_every_command(database: Database, tmp_path: Path) -> None:
    url = database.url
    first = "sql/public/0001_x.sql"
    write(tmp_path, {first: chunks("CREATE TABLE x (id int)", "INSERT INTO x VALUES (1)"), **SEED})

    config = cli("--json", "config", url=url)
    settings_rows = {row["name"]: row for row in document(config)["settings"]}
    assert settings_rows["lock_timeout"] == {
        "name": "lock_timeout",
        "value": "10s",
        "source": "default",
    }
    assert settings_rows["database_url"]["source"] == "environment"

    status = cli("--json", "status", url=url)
    doc = document(status)
    assert [(m["path"], m["state"]) for m in doc["migrations"]] == [(first, "pending")]
    assert [(s["name"], s["state"]) for s in doc["seeds"]] == [("1_s", "pending")]
    assert set(doc) == {
        "target",
        "migrations",
        "repeatables",
        "seeds",
        "drift",
        "notices",
        "messages",
        "exit_code",
    }
    assert set(doc["migrations"][0]) == STATUS_KEYS
    assert set(doc["seeds"][0]) == {"name", "path", "state", "runs", "finished_at", "detail"}

    dry = cli("--json", "migrate", "--dry-run", url=url)
    doc = document(dry)
    assert [step["path"] for step in doc["plan"]] == [first]
    assert set(doc["plan"][0]) == STEP_KEYS
    assert set(doc["plan"][0]["chunks"][0]) == {"index", "line", "statements", "kind", "sql"}
    assert [chunk["sql"].strip() for chunk in doc["plan"][0]["chunks"]] == [
        "CREATE TABLE x (id int)",
        "INSERT INTO x VALUES (1)",
    ]
    assert journals(database) == 0

    migrate = cli("--json", "migrate", url=url)
    doc = document(migrate)
    assert [(a["path"], a["chunks_run"]) for a in doc["applied"]] == [(first, 2)]
    assert set(doc["applied"][0]) == APPLIED_KEYS
    assert "applied" in migrate.stderr  # the progress went to stderr
    assert database.journal() == [(1, "applied", 2, 2)]

    validate = cli("--json", "validate", url=url)
    assert document(validate)["valid"] is True and validate.exit_code == 0

    seed_dry = cli("--json", "seed", "--dry-run", url=url)
    assert [(p["name"], p["action"]) for p in document(seed_dry)["plan"]] == [("1_s", "run")]
    assert not exists(database, "public.__seeds")

    seed = cli("--json", "seed", url=url)
    doc = document(seed)
    assert [(s["name"], s["action"]) for s in doc["seeds"]] == [("1_s", "ran")]
    expected = {"name", "action", "duration_ms", "error", "ended_transaction", "detail"}
    assert set(doc["seeds"][0]) == expected
    assert database.query("SELECT id FROM s") == [(1,)]

    new = cli("--json", "new", "public", "add y", url=url)
    assert document(new) == {
        "created": "sql/public/0002_add_y.sql",
        "down": None,
        "notices": [],
        "messages": [],
        "exit_code": 0,
    }
    assert (tmp_path / "sql/public/0002_add_y.sql").is_file()
    write(tmp_path, {"sql/public/0002_add_y.sql": "CREATE TABLE y (id int);\n"})

    write(tmp_path, {first: chunks("CREATE TABLE x (id bigint)", "INSERT INTO x VALUES (1)")})
    drift = cli("--json", "validate", url=url)
    doc = document(drift)
    assert drift.exit_code == 3
    assert doc["error"]["type"] == "DriftError" and doc["error"]["message"]
    assert (
        doc["drift"][0]["path"] == first
        and "+CREATE TABLE x (id bigint)" in doc["drift"][0]["diff"]
    )

    repair = cli("--json", "repair", "--reason", "widen", "--yes", url=url)
    assert document(repair)["repaired"] == [
        {"path": first, "version": 1, "action": "accept the edit"}
    ]
    assert database.scalar("SELECT note LIKE 'repaired: widen%' FROM public.__migrations")

    baseline = cli("--json", "baseline", "public", "--version", "2", url=url)
    assert document(baseline)["baselined"] == ["sql/public/0002_add_y.sql"]
    assert database.journal() == [(1, "applied", 2, 2), (2, "baseline", 1, 1)]

    reset = cli("--json", "reset", "--confirm", database.name, url=url)
    doc = document(reset)
    assert doc["reset"] == ["public"]
    assert [a["path"] for a in doc["applied"]] == [first, "sql/public/0002_add_y.sql"]
    assert database.journal() == [(1, "applied", 2, 2), (2, "applied", 1, 1)]
    assert exists(database, "public.y")

    write(tmp_path, {"sql/public/0003_bad.sql": "SELECT 'never closed;\n"})
    bad = cli("--json", "migrate", url=url)
    doc = document(bad)
    assert bad.exit_code == 2
    assert "sql/public/0003_bad.sql" in doc["error"]["message"]
    assert doc["error"]["type"] == "BadFile"
    assert set(doc["error"]) == {"type", "message", "problems", "hint"}
    assert "error" in bad.stderr  # the message goes to stderr as well
    assert database.journal() == [(1, "applied", 2, 2), (2, "applied", 1, 1)]


def test_json_of_a_failing_migration(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {"sql/public/0001_bad.sql": chunks("CREATE TABLE x (id int)", "SELEC 1")})
    result = cli("--json", "migrate", url=database.url)
    doc = document(result)
    assert result.exit_code == 1
    assert doc["error"]["type"] == "MigrationFailed"
    assert doc["error"]["sqlstate"] == "42601"
    assert doc["error"]["location"] == "sql/public/0001_bad.sql:3:1"
    assert database.journal() == [(1, "failed", 1, 2)]


# 5. Targeting.

TARGETS = {
    "sql/public/0001_alpha.sql": "CREATE TABLE IF NOT EXISTS runs (name text);\n"
    "INSERT INTO runs VALUES ('alpha');\n",
    "sql/public/0002_beta.sql": "CREATE TABLE beta (id int);\n",
    "sql/public/0003_beta_two.sql": "CREATE TABLE beta_two (id int);\n",
}


def test_only_by_version_and_by_name_fragment(database: Database, tmp_path: Path) -> None:
    write(tmp_path, TARGETS)
    by_version = cli("migrate", "--only", "0002", url=database.url)
    assert by_version.exit_code == 0, by_version.output
    assert database.journal() == [(2, "applied", 1, 1)]
    assert exists(database, "public.beta") and not exists(database, "public.runs")

    by_name = cli("migrate", "--only", "ALPH", url=database.url)
    assert by_name.exit_code == 0, by_name.output
    assert database.journal() == [(1, "applied", 1, 1), (2, "applied", 1, 1)]
    assert not exists(database, "public.beta_two")


@pytest.mark.parametrize(
    ("pattern", "message", "listed"),
    [
        pytest.param(
            "beta",
            "--only beta: several migrations match",
            ["Candidates:", "0002_beta.sql", "0003_beta_two.sql"],
            id="several",
        ),
        pytest.param(
            "gamma",
            "--only gamma: no migration matches",
            ["0001_alpha.sql", "0002_beta.sql", "0003_beta_two.sql"],
            id="none by name",
        ),
        pytest.param(
            "9", "--only 9: no migration matches", ["0001_alpha.sql"], id="none by version"
        ),
    ],
)
def test_only_matching_none_or_several_lists_the_candidates(
    database: Database, tmp_path: Path, pattern: str, message: str, listed: list[str]
) -> None:
    write(tmp_path, TARGETS)
    result = cli("migrate", "--only", pattern, url=database.url)
    assert result.exit_code == 2
    assert message in result.stderr
    for text in listed:
        assert text in result.stderr
    untouched(database)
    assert not exists(database, "public.beta")


def test_only_force_runs_an_applied_migration_again(database: Database, tmp_path: Path) -> None:
    write(tmp_path, TARGETS)
    assert cli("migrate", url=database.url).exit_code == 0
    assert database.query("SELECT name FROM runs") == [("alpha",)]

    unforced = cli("migrate", "--only", "alpha", url=database.url)
    assert unforced.exit_code == 2 and "already applied" in unforced.stderr
    assert database.query("SELECT name FROM runs") == [("alpha",)]

    bare = cli("migrate", "--force", url=database.url)
    assert bare.exit_code == 2 and "--force goes with --only" in bare.stderr
    assert database.query("SELECT name FROM runs") == [("alpha",)]

    forced = cli("migrate", "--only", "alpha", "--force", url=database.url)
    assert forced.exit_code == 0, forced.output
    assert database.query("SELECT name FROM runs") == [("alpha",), ("alpha",)]
    note = database.scalar("SELECT note FROM public.__migrations WHERE version = 1")
    assert "--force" in note and database.scalar("SELECT current_user") in note
    assert database.journal() == [(1, "applied", 1, 1), (2, "applied", 1, 1), (3, "applied", 1, 1)]
    assert database.scalar("SELECT note FROM public.__migrations WHERE version = 2") is None


def test_a_failed_forced_run_keeps_the_file_applied_with_the_failure_beside_it(
    database: Database, tmp_path: Path
) -> None:
    text = (
        "CREATE TABLE IF NOT EXISTS once (n int PRIMARY KEY);\n--> statement-breakpoint\n"
        "INSERT INTO once VALUES (1);\n"
    )
    write(tmp_path, {"sql/public/0001_once.sql": text, "sql/public/0002_next.sql": "SELECT 1;"})
    assert cli("migrate", url=database.url).exit_code == 0
    before = database.query(
        "SELECT hash, content, finished_at FROM public.__migrations ORDER BY version"
    )

    forced = cli("migrate", "--only", "1", "--force", url=database.url)  # chunk 2: duplicate key
    assert forced.exit_code == 1
    assert "chunk 2 of 2 failed: duplicate key" in forced.stderr
    assert "stays applied" in " ".join(forced.stderr.split())
    assert database.journal() == [(1, "applied", 2, 2), (2, "applied", 1, 1)]
    assert (
        database.query(
            "SELECT hash, content, finished_at FROM public.__migrations ORDER BY version"
        )
        == before
    )
    error, note = database.query("SELECT error, note FROM public.__migrations WHERE version = 1")[0]
    assert "duplicate key" in error and "the run again failed" in note
    assert database.scalar("SELECT count(*) FROM once") == 1
    after = cli("migrate", url=database.url)  # nothing is blocked by the failed re-run
    assert after.exit_code == 0 and "nothing to do" in after.output
    status = cli("status", "--check", url=database.url)
    assert status.exit_code == 0
    assert "a run again with --force failed: sql/public/0001_once.sql" in status.stdout


def test_to_stops_after_a_version(database: Database, tmp_path: Path) -> None:
    write(tmp_path, TARGETS)
    result = cli("migrate", "--to", "2", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.journal() == [(1, "applied", 1, 1), (2, "applied", 1, 1)]
    assert not exists(database, "public.beta_two")
    rest = cli("migrate", url=database.url)
    assert rest.exit_code == 0
    assert exists(database, "public.beta_two")


# 6. repair and drift display.


def test_repair_accepts_an_intended_edit_with_its_reason(
    database: Database, tmp_path: Path
) -> None:
    path = "sql/public/0001_x.sql"
    write(tmp_path, {path: "CREATE TABLE x (id int);\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    edited = "CREATE TABLE x (id int); -- the typo is fixed\n"
    write(tmp_path, {path: edited})
    old = database.scalar("SELECT hash FROM public.__migrations")

    status = cli("status", url=database.url)
    assert status.exit_code == 0
    assert "changed" in status.stdout
    assert "-CREATE TABLE x (id int);\n+CREATE TABLE x (id int); -- the typo is fixed" in (
        status.stdout
    )
    validate = cli("validate", url=database.url)
    assert validate.exit_code == 3
    assert "+CREATE TABLE x (id int); -- the typo is fixed" in validate.stdout
    assert f"{path}: changed since it was applied" in validate.stderr

    no_reason = cli("repair", "--yes", url=database.url)
    assert no_reason.exit_code == 2 and "repair needs --reason" in no_reason.stderr
    no_terminal = cli("repair", "--reason", "fix typo", url=database.url)
    assert no_terminal.exit_code == 2 and "pass --yes" in no_terminal.stderr
    assert "accept the edit: sql/public/0001_x.sql" in no_terminal.stdout
    assert database.scalar("SELECT hash FROM public.__migrations") == old
    assert database.scalar("SELECT note FROM public.__migrations") is None

    repaired = cli("repair", "--reason", "fix typo", "--yes", url=database.url)
    assert repaired.exit_code == 0, repaired.output
    row = database.query("SELECT hash, content, note, status FROM public.__migrations")[0]
    assert row[0] == hashlib.sha256(edited.encode()).hexdigest()
    assert row[1] == edited and row[3] == "applied"
    assert "repaired: fix typo" in row[2]
    assert f"by {database.scalar('SELECT current_user')} at " in row[2]
    assert cli("validate", url=database.url).exit_code == 0
    assert (
        cli("repair", "--reason", "again", "--yes", url=database.url)
        .stdout.strip()
        .endswith("nothing to repair")
    )


def test_validate_sees_edited_done_chunks_of_a_failed_file(
    database: Database, tmp_path: Path
) -> None:
    """migrate refuses to resume such a file (exit 3); validate must not call it ok."""
    path = "sql/public/0001_x.sql"
    write(tmp_path, {path: chunks("CREATE TABLE x (id int)", "SELEC 1")})
    assert cli("migrate", url=database.url).exit_code == 1
    write(tmp_path, {path: chunks("CREATE TABLE x (id bigint)", "SELECT 1")})
    migrate = cli("migrate", url=database.url)
    assert migrate.exit_code == 3 and "chunk 1 changed after it ran" in migrate.stderr
    validate = cli("validate", url=database.url)
    assert validate.exit_code == 3, validate.output
    assert f"{path}: chunk 1 changed after it ran" in validate.stderr
    assert database.journal() == [(1, "failed", 1, 2)]
    # Fixing only the chunk that failed is the intended edit: both agree it can resume.
    write(tmp_path, {path: chunks("CREATE TABLE x (id int)", "SELECT 1")})
    assert cli("validate", url=database.url).exit_code == 0
    assert cli("migrate", url=database.url).exit_code == 0
    assert database.journal() == [(1, "applied", 2, 2)]


def test_whitespace_only_drift_is_called_so(database: Database, tmp_path: Path) -> None:
    path = "sql/public/0001_x.sql"
    write(tmp_path, {path: "CREATE TABLE x (id int);\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {path: "CREATE TABLE x  (id int);\n\n"})
    validate = cli("validate", url=database.url)
    assert validate.exit_code == 3
    assert f"{path}: only whitespace differs from the applied text" in validate.stdout
    status = cli("status", url=database.url)
    assert "only whitespace differs" in status.stdout
    assert database.journal() == [(1, "applied", 1, 1)]


def test_repair_clears_a_failed_row_and_migrate_runs_it_again(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {**PROJECT, "sql/public/0002_fill.sql": "INSERT INTO later SELECT 1;\n"})
    failed = cli("migrate", url=database.url)
    assert failed.exit_code == 1
    assert database.journal() == [(1, "applied", 1, 1), (2, "failed", 0, 1)]

    refused = cli("repair", "--reason", "table comes later", url=database.url)
    assert refused.exit_code == 2
    assert database.journal() == [(1, "applied", 1, 1), (2, "failed", 0, 1)]

    cleared = cli("repair", "--reason", "table comes later", "--yes", url=database.url)
    assert cleared.exit_code == 0, cleared.output
    assert "clear the failed run: sql/public/0002_fill.sql" in cleared.stdout
    assert database.journal() == [(1, "applied", 1, 1)]

    database.query("CREATE TABLE later (id int)")
    again = cli("migrate", url=database.url)
    assert again.exit_code == 0, again.output
    assert database.journal() == [(1, "applied", 1, 1), (2, "applied", 1, 1)]
    assert database.query("SELECT id FROM later") == [(1,)]


def test_repair_after_committed_chunks_keeps_them_done_and_the_next_run_resumes(
    database: Database, tmp_path: Path
) -> None:
    path = "sql/public/0001_fill.sql"
    chunks = ["CREATE TABLE filled (n int)", "INSERT INTO filled VALUES (1)", "SELECT 1/0"]
    write(tmp_path, {path: "\n--> statement-breakpoint\n".join(chunks) + "\n"})
    assert cli("migrate", url=database.url).exit_code == 1
    assert database.journal() == [(1, "failed", 2, 3)]
    # The fix also touches a committed chunk, so a plain resume refuses: repair is the way.
    chunks = ["CREATE TABLE filled (n int);", "INSERT INTO filled VALUES (1);", "SELECT 2;"]
    write(tmp_path, {path: "\n--> statement-breakpoint\n".join(chunks) + "\n"})
    assert cli("migrate", url=database.url).exit_code == 3

    repaired = cli("repair", "--reason", "fixed chunk 3", "--yes", url=database.url)
    assert repaired.exit_code == 0, repaired.output
    text = " ".join(repaired.stdout.split())
    assert (
        f"keeping chunks 1-2 of 3 as done (they committed); the next run resumes at chunk 3: {path}"
        in text
    )
    assert database.journal() == [(1, "failed", 2, 3)]
    note = database.scalar("SELECT note FROM public.__migrations")
    assert "committed chunks kept: fixed chunk 3" in note
    again = cli("migrate", url=database.url)
    assert again.exit_code == 0, again.output  # no "relation already exists"
    assert database.journal() == [(1, "applied", 3, 3)]
    assert database.query("SELECT n FROM filled") == [(1,)]
    content = database.scalar("SELECT content FROM public.__migrations")
    assert content == (tmp_path / path).read_text()


def test_repair_refuses_to_keep_more_chunks_done_than_the_file_now_has(
    database: Database, tmp_path: Path
) -> None:
    path = "sql/public/0001_fill.sql"
    chunks = ["CREATE TABLE filled (n int);", "SELECT 1;", "SELECT 2;", "SELECT 1/0;"]
    write(tmp_path, {path: "\n--> statement-breakpoint\n".join(chunks) + "\n"})
    assert cli("migrate", url=database.url).exit_code == 1
    write(tmp_path, {path: "CREATE TABLE filled (n int);\n--> statement-breakpoint\nSELECT 3;\n"})
    refused = cli("repair", "--reason", "shrink", "--yes", url=database.url)
    assert refused.exit_code == 2
    assert f"{path} now has 2 chunks, but 3 of it committed: nothing was repaired" in refused.stderr
    assert database.journal() == [(1, "failed", 3, 4)]


def test_repair_restart_clears_a_run_with_committed_chunks_naming_them(
    database: Database, tmp_path: Path
) -> None:
    path = "sql/public/0001_fill.sql"
    write(tmp_path, {path: "CREATE TABLE filled (n int);\n--> statement-breakpoint\nSELECT 1/0;\n"})
    assert cli("migrate", url=database.url).exit_code == 1
    repaired = cli("repair", "--reason", "undone by hand", "--restart", "--yes", url=database.url)
    assert repaired.exit_code == 0, repaired.output
    text = " ".join(repaired.stdout.split())
    assert (
        "clear the failed run: chunk 1 of 2 committed and will run again (undo them first)" in text
    )
    assert database.journal() == []


# 7. baseline.


def test_baseline_journals_without_running_and_migrate_applies_the_rest(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": "CREATE TABLE a (id int);\n",
            "sql/public/0002_b.sql": "CREATE TABLE b (id int);\n",
            "sql/public/0003_c.sql": "CREATE TABLE c (id int);\n",
        },
    )
    result = cli("baseline", "public", "--version", "2", url=database.url)
    assert result.exit_code == 0, result.output
    assert "baselined 2 files of public up to version 2" in result.stdout
    assert database.journal() == [(1, "baseline", 1, 1), (2, "baseline", 1, 1)]
    assert not exists(database, "public.a") and not exists(database, "public.b")
    notes = database.query("SELECT note FROM public.__migrations ORDER BY version")
    assert all(note.startswith("baseline by ") for (note,) in notes)

    status = cli("--json", "status", url=database.url)
    assert [m["state"] for m in document(status)["migrations"]] == [
        "baseline",
        "baseline",
        "pending",
    ]

    migrate = cli("migrate", url=database.url)
    assert migrate.exit_code == 0, migrate.output
    assert database.journal() == [
        (1, "baseline", 1, 1),
        (2, "baseline", 1, 1),
        (3, "applied", 1, 1),
    ]
    assert exists(database, "public.c")
    assert not exists(database, "public.a") and not exists(database, "public.b")


# 8. reset.


def test_reset_drops_the_objects_and_applies_again(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {**PROJECT, "sql/app/0001_y.sql": "CREATE TABLE app.y (id int);\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    database.query("INSERT INTO x VALUES (1); INSERT INTO app.y VALUES (1)")
    database.query("CREATE TABLE app.stray (id int)")
    started = database.scalar("SELECT started_at FROM public.__migrations")

    # A configured server is not the embedded one: off a terminal the name must be given.
    for refusal in (("reset",), ("reset", "--confirm", "wrong")):
        refused = cli(*refusal, url=database.url)
        assert refused.exit_code == 4, refused.output
        assert "nothing was changed" in refused.stderr
        assert database.query("SELECT * FROM x") == [(1,)] and exists(database, "app.stray")
    assert f"--confirm {database.name}" in cli("reset", url=database.url).stderr

    result = cli("reset", "--confirm", database.name, url=database.url)
    assert result.exit_code == 0, result.output
    assert database.query("SELECT * FROM x") == []
    assert database.query("SELECT * FROM app.y") == []
    assert not exists(database, "app.stray")
    assert database.journal() == [(1, "applied", 1, 1)]
    assert database.journal("app") == [(1, "applied", 1, 1)]
    assert database.scalar("SELECT started_at FROM public.__migrations") > started


def test_reset_of_one_schema_leaves_the_others(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {**PROJECT, "sql/app/0001_y.sql": "CREATE TABLE app.y (id int);\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    database.query("INSERT INTO x VALUES (1); INSERT INTO app.y VALUES (1)")
    assert cli("reset", "app", "--confirm", database.name, url=database.url).exit_code == 0
    assert database.query("SELECT * FROM app.y") == []
    assert database.query("SELECT id FROM x") == [(1,)]


# 9. Configuration precedence.

LAYERS = [
    ("flag", "1s"),
    ("environment", "2s"),
    (".env.staging.local", "3s"),
    (".env.staging", "4s"),
    (".env.local", "5s"),
    (".env", "6s"),
    ("pyproject.toml [tool.migrator]", "7s"),
    ("default", "10s"),
]


@pytest.mark.parametrize("top", range(len(LAYERS)), ids=[label for label, _ in LAYERS])
def test_each_configuration_layer_wins_over_the_ones_below(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, top: int
) -> None:
    """Every layer from `top` down is set, each to its own value; `top`'s value wins."""
    label, expected = LAYERS[top]
    monkeypatch.setenv("MIGRATOR_ENV", "staging")  # selects the .env.staging* files
    flags: dict[str, str] = {}
    environment = {"MIGRATOR_ENV": "staging"}
    for layer, value in LAYERS[top:]:
        if layer == "flag":
            flags["lock_timeout"] = value
        elif layer == "environment":
            monkeypatch.setenv("MIGRATOR_LOCK_TIMEOUT", value)
            environment["MIGRATOR_LOCK_TIMEOUT"] = value
        elif layer.startswith(".env"):
            write(tmp_path, {layer: f"MIGRATOR_LOCK_TIMEOUT={value}\n"})
        elif layer.startswith("pyproject"):
            write(tmp_path, {"pyproject.toml": f'[tool.migrator]\nlock_timeout = "{value}"\n'})
    assert settings.load(**flags).lock_timeout == expected
    explained = {name: (value, source) for name, value, source in settings.explain(**flags)}
    assert explained["lock_timeout"] == (expected, label)
    assert explained["env"] == ("staging", "environment")
    if label != "flag":
        shown = cli("config", env=environment)
        assert shown.exit_code == 0, shown.output
        line = next(line for line in shown.stdout.splitlines() if line.startswith("lock_timeout"))
        assert line.split(None, 2) == ["lock_timeout", expected, label]


def test_config_masks_the_password_and_dotenv_flow_selects_the_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".env": f"DATABASE_URL=postgresql://u:{PASSWORD}@h/db\nMIGRATOR_LOCK_WAIT=7\n",
            ".env.local": "MIGRATOR_ENV=staging\n",
            ".env.staging": "MIGRATOR_LOCK_RETRIES=9\n",
            ".env.production": "MIGRATOR_LOCK_RETRIES=1\n",
        },
    )
    shown = cli("config")
    assert shown.exit_code == 0, shown.output
    assert PASSWORD not in shown.output
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines()[2:]}
    assert rows["database_url"] == ["postgresql://u:***@h/db", ".env"]
    assert rows["env"] == ["staging", ".env.local"]
    assert rows["lock_retries"] == ["9", ".env.staging"]
    assert rows["lock_wait"] == ["7.0", ".env"]
    loaded = settings.load()
    assert loaded.database_url is not None
    assert loaded.database_url.get_secret_value() == f"postgresql://u:{PASSWORD}@h/db"
    assert (loaded.env, loaded.lock_retries) == ("staging", 9)

    # MIGRATOR_DATABASE_URL wins over DATABASE_URL; a flag wins over both.
    env_url = cli("--json", "config", env={"MIGRATOR_DATABASE_URL": "postgresql://e:pw2@h2/db2"})
    rows_json = {row["name"]: row for row in document(env_url)["settings"]}
    assert rows_json["database_url"]["value"] == "postgresql://e:***@h2/db2"
    assert rows_json["database_url"]["source"] == "environment"
    assert "pw2" not in env_url.output
    flag = cli("--database-url", "postgresql://f:pw3@h3/db3", "config")
    assert "postgresql://f:***@h3/db3" in flag.stdout and "pw3" not in flag.output


def test_database_url_in_a_dotenv_file_is_used(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {**PROJECT, ".env": f"DATABASE_URL={with_password(database)}\n"})
    result = cli("migrate")
    assert result.exit_code == 0, result.output
    assert "embedded" not in result.output
    assert database.journal() == [(1, "applied", 1, 1)]


# 10. No password in any output, on every error path.


def _urls(how: str, url: str) -> tuple[tuple[str, ...], dict[str, str]]:
    if how == "flag":
        return ("--database-url", url), {}
    return (), {how: url}


@pytest.mark.parametrize("how", ["MIGRATOR_DATABASE_URL", "DATABASE_URL", "flag"])
def test_no_password_in_any_output(database: Database, tmp_path: Path, how: str) -> None:
    parts = conninfo_to_dict(database.url)
    good = with_password(database)
    wrong_host = f"postgresql://app:{PASSWORD}@no-such-host.invalid:5432/app"
    wrong_port = f"postgresql://app:{PASSWORD}@127.0.0.1:1/app"
    outputs: list[Result] = []

    def run(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
        prefix, environment = _urls(how, url)
        result = cli(*prefix, *args, env={**environment, **(env or {})})
        outputs.append(result)
        return result

    write(tmp_path, {"sql/public/0001_x.sql": chunks("CREATE TABLE x (id int)", "SELEC 1")})
    for json_flag in ((), ("--json",)):
        for url in (wrong_host, wrong_port):
            for command in ("migrate", "status", "validate"):
                result = run(url, *json_flag, command)
                assert result.exit_code == 2, result.output
                assert "cannot connect to postgresql://app:***@" in result.stderr
        assert journals(database) == 0

    # A failing statement, in production too (target and plan shown first).
    for json_flag in ((), ("--json",)):
        failed = run(good, *json_flag, "migrate")
        assert failed.exit_code == 1, failed.output
        assert database.journal() == [(1, "failed", 1, 2)]
    refused = run(good, "migrate", env=PROD)
    assert refused.exit_code == 4 and f"/{parts['dbname']}" in refused.stderr
    assert database.journal() == [(1, "failed", 1, 2)]

    # Drift.
    write(tmp_path, {"sql/public/0001_x.sql": chunks("CREATE TABLE x (id bigint)", "SELECT 1")})
    for json_flag in ((), ("--json",)):
        drifted = run(good, *json_flag, "migrate")
        assert drifted.exit_code == 3, drifted.output
        assert run(good, *json_flag, "validate").exit_code == 3
        assert run(good, *json_flag, "status").exit_code == 0
        assert run(good, *json_flag, "config").exit_code == 0
        assert run(good, *json_flag, "seed").exit_code == 0
    assert database.journal() == [(1, "failed", 1, 2)]

    assert len(outputs) > 20
    for result in outputs:
        assert PASSWORD not in result.output, result.output


# 11. --wait-for-db.


def test_wait_for_db_retries_for_the_given_time(database: Database, tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:1/app"
    started = time.monotonic()
    quick = cli("migrate", url=url)
    quick_took = time.monotonic() - started
    assert quick.exit_code == 2

    started = time.monotonic()
    waited = cli("--wait-for-db", "1", "migrate", url=url)
    took = time.monotonic() - started
    assert waited.exit_code == 2
    assert 0.9 <= took < 5, took
    assert quick_took < 0.9
    assert "cannot connect to postgresql://app:***@127.0.0.1:1/app" in waited.stderr
    assert PASSWORD not in waited.output

    started = time.monotonic()
    by_env = cli("migrate", url=url, env={"MIGRATOR_WAIT_FOR_DB": "1"})
    assert by_env.exit_code == 2 and time.monotonic() - started >= 0.9

    # A server that answers is used at once.
    started = time.monotonic()
    ready = cli("--wait-for-db", "10", "migrate", url=database.url)
    assert ready.exit_code == 0, ready.output
    assert time.monotonic() - started < 5
    assert database.journal() == [(1, "applied", 1, 1)]
