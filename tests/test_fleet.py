"""Many databases: named ones in pyproject.toml (--db, --all-databases) and fleets of targets
or tenant schemas, run in parallel."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import Database, cli, write
from psycopg.conninfo import make_conninfo

import migrator
from migrator import db
from migrator.fleets import Target, shard

BREAK = "--> statement-breakpoint\n"
FILES = {
    "sql/public/0001_item.sql": "CREATE TABLE item (id int);\n"
    + BREAK
    + "INSERT INTO item VALUES (1);\n",
    "sql/public/0002_tag.sql": "CREATE TABLE tag (name text);\n",
}


class Fleet:
    """Databases of a test's own on the test server, dropped afterwards."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.names: list[str] = []

    def create(self, count: int) -> list[str]:
        prefix = f"fleet_{uuid.uuid4().hex[:8]}"
        names = [f"{prefix}_{i:02d}" for i in range(1, count + 1)]
        with psycopg.connect(self.server_url, autocommit=True) as admin:
            for name in names:
                admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        self.names.extend(names)
        return names

    def url(self, name: str) -> str:
        return make_conninfo(self.server_url, dbname=name)

    def query(self, name: str, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url(name), autocommit=True) as conn:
            cursor = conn.execute(query)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def journal(self, name: str) -> list[tuple[Any, ...]]:
        if not self.query(name, "SELECT to_regclass('public.__migrations')")[0][0]:
            return []
        return self.query(name, "SELECT version, status FROM public.__migrations ORDER BY 1")

    def targets_file(self, root: Path, names: list[str]) -> Path:
        path = root / "targets.txt"
        lines = ["# the fleet", *(f"{name}={self.url(name)}" for name in names)]
        path.write_text("\n".join(lines) + "\n")
        return path

    def drop(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as admin:
            for name in self.names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


@pytest.fixture
def fleet(server_url: str) -> Iterator[Fleet]:
    made = Fleet(server_url)
    yield made
    made.drop()


APPLIED = [(1, "applied"), (2, "applied")]


def test_a_fleet_from_a_targets_file_is_applied_in_parallel(fleet: Fleet, tmp_path: Path) -> None:
    names = fleet.create(10)
    write(tmp_path, FILES)
    targets = fleet.targets_file(tmp_path, names)
    result = cli("fleet", "migrate", "--targets", str(targets), "--parallel", "4")
    assert result.exit_code == 0, result.output
    assert "10 done" in result.stdout
    for name in names:
        assert fleet.journal(name) == APPLIED, name
        assert fleet.query(name, "SELECT id FROM item") == [(1,)]
    again = json.loads(cli("--json", "fleet", "status", "--targets", str(targets)).stdout)
    assert [(t["target"], t["state"], t["left"]) for t in again["targets"]] == [
        (name, "done", 0) for name in names
    ]
    assert again["summary"] == {"done": 10} and again["exit_code"] == 0


def test_a_failing_target_is_named_stops_the_fleet_and_resumes_after_a_fix(
    fleet: Fleet, tmp_path: Path
) -> None:
    names = fleet.create(5)
    write(tmp_path, FILES)
    targets = fleet.targets_file(tmp_path, names)
    fleet.query(names[1], "CREATE TABLE tag (x int)")  # 0002 fails there
    stopped = cli("--json", "fleet", "migrate", "--targets", str(targets), "--parallel", "1")
    assert stopped.exit_code == 1
    document = json.loads(stopped.stdout)
    states = [(t["target"], t["state"]) for t in document["targets"]]
    assert states == [
        (names[0], "done"),
        (names[1], "failed"),
        *((name, "skipped") for name in names[2:]),
    ]
    assert 'relation "tag" already exists' in document["targets"][1]["error"]
    assert f"failed: {names[1]}" in document["error"]["message"]
    assert fleet.journal(names[0]) == APPLIED
    assert fleet.journal(names[1]) == [(1, "applied"), (2, "failed")]
    assert all(fleet.journal(name) == [] for name in names[2:])  # never started
    going = cli("fleet", "migrate", "--targets", str(targets), "--parallel", "2", "--keep-going")
    assert going.exit_code == 1
    assert f"{names[1]}: failed" in going.stderr
    assert all(fleet.journal(name) == APPLIED for name in names if name != names[1])
    fleet.query(names[1], "DROP TABLE tag")
    fixed = cli("fleet", "migrate", "--targets", str(targets))
    assert fixed.exit_code == 0, fixed.output
    assert all(fleet.journal(name) == APPLIED for name in names)


def test_a_failing_canary_stops_the_fleet(fleet: Fleet, tmp_path: Path) -> None:
    names = fleet.create(4)
    write(tmp_path, FILES)
    targets = fleet.targets_file(tmp_path, names)
    fleet.query(names[0], "CREATE TABLE tag (x int)")
    result = cli("fleet", "migrate", "--targets", str(targets), "--canary", "1", "--keep-going")
    assert result.exit_code == 1
    assert fleet.journal(names[0]) == [(1, "applied"), (2, "failed")]
    assert all(fleet.journal(name) == [] for name in names[1:])
    assert "not started: a canary failed" in result.stdout


def test_shards_split_the_fleet_exactly(fleet: Fleet, tmp_path: Path) -> None:
    names = fleet.create(9)
    write(tmp_path, FILES)
    targets = fleet.targets_file(tmp_path, names)
    share = {t.name for t in shard([Target(name) for name in names], 1, 3)}
    assert 0 < len(share) < len(names)
    result = cli("fleet", "migrate", "--targets", str(targets), "--shard", "1/3")
    assert result.exit_code == 0, result.output
    touched = {name for name in names if fleet.journal(name)}
    assert touched == share
    for index in (2, 3):
        assert (
            cli("fleet", "migrate", "--targets", str(targets), "--shard", f"{index}/3").exit_code
            == 0
        )
    assert all(fleet.journal(name) == APPLIED for name in names)
    assert cli("fleet", "status", "--targets", str(targets), "--shard", "4/3").exit_code == 2


def test_tenant_schemas_from_a_query_each_get_the_template_and_a_journal(
    database: Database, tmp_path: Path
) -> None:
    database.query(
        "CREATE TABLE public.tenant (schema_name text); "
        "INSERT INTO public.tenant VALUES ('acme'), ('globex'), ('initech')"
    )
    write(
        tmp_path,
        {
            "sql/tenant/0001_note.sql": "CREATE TABLE note (id int);\n",
            "sql/tenant/0002_note_text.sql": "ALTER TABLE note ADD body text;\n",
            "pyproject.toml": "[tool.migrator]\ntenant_template = 'tenant'\n",
        },
    )
    query = "SELECT schema_name FROM public.tenant ORDER BY 1"
    result = cli("fleet", "migrate", "--tenant-schemas", query, url=database.url)
    assert result.exit_code == 0, result.output
    for schema in ("acme", "globex", "initech"):
        assert database.journal(schema) == [(1, "applied", 1, 1), (2, "applied", 1, 1)]
        assert database.scalar(f"SELECT to_regclass('{schema}.note')") == f"{schema}.note"
    # The template folder is no schema of its own.
    assert database.scalar("SELECT to_regnamespace('tenant')") is None
    plain = cli("migrate", url=database.url)
    assert plain.exit_code == 0 and database.scalar("SELECT to_regnamespace('tenant')") is None
    status = json.loads(
        cli("--json", "fleet", "status", "--tenant-schemas", query, url=database.url).stdout
    )
    assert [(t["target"], t["left"]) for t in status["targets"]] == [
        ("acme", 0),
        ("globex", 0),
        ("initech", 0),
    ]


def test_targets_from_a_query_of_database_names(
    fleet: Fleet, database: Database, tmp_path: Path
) -> None:
    names = fleet.create(3)
    database.query("CREATE TABLE public.customer_db (name text)")
    for name in names:
        database.query("INSERT INTO public.customer_db VALUES (%s)", (name,))
    write(tmp_path, FILES)
    query = "SELECT name FROM public.customer_db ORDER BY 1"
    result = cli("fleet", "migrate", "--targets-query", query, url=database.url)
    assert result.exit_code == 0, result.output
    assert all(fleet.journal(name) == APPLIED for name in names)


def test_a_target_whose_lock_is_held_exits_5(fleet: Fleet, tmp_path: Path) -> None:
    names = fleet.create(2)
    write(tmp_path, FILES)
    targets = fleet.targets_file(tmp_path, names)
    with psycopg.connect(fleet.url(names[0]), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (db.LOCK_KEY,))
        env = {"MIGRATOR_LOCK_WAIT": "0.5"}
        result = cli("fleet", "migrate", "--targets", str(targets), "--keep-going", env=env)
    assert result.exit_code == 5
    assert f"{names[0]}: locked" in result.stderr
    assert fleet.journal(names[0]) == [] and fleet.journal(names[1]) == APPLIED


def test_production_confirms_the_fleet_once_with_the_number_of_targets(
    fleet: Fleet, tmp_path: Path
) -> None:
    names = fleet.create(3)
    write(tmp_path, FILES)
    targets = fleet.targets_file(tmp_path, names)
    env = {"MIGRATOR_ENV": "production"}
    refused = cli("fleet", "migrate", "--targets", str(targets), env=env)
    assert refused.exit_code == 4
    assert f"{names[0]}: 2 to run" in refused.stdout
    assert all(fleet.journal(name) == [] for name in names)
    wrong = cli("fleet", "migrate", "--targets", str(targets), "--confirm", "2", env=env)
    assert wrong.exit_code == 4
    done = cli("fleet", "migrate", "--targets", str(targets), "--confirm", "3", env=env)
    assert done.exit_code == 0, done.output
    assert all(fleet.journal(name) == APPLIED for name in names)


def test_a_targets_file_expands_variables_and_hides_passwords(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = fleet.create(1)
    write(tmp_path, FILES)
    url = fleet.url(names[0])
    secret = make_conninfo(url, password="s3cret-pw")  # trust auth ignores it
    monkeypatch.setenv("FLEET_URL", secret)
    (tmp_path / "targets.txt").write_text("${FLEET_URL}  # one, unnamed\n")
    result = cli("fleet", "migrate", "--targets", "targets.txt")
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    assert fleet.journal(names[0]) == APPLIED
    (tmp_path / "targets.txt").write_text("${NOT_SET_ANYWHERE}\n")
    missing = cli("fleet", "migrate", "--targets", "targets.txt")
    assert (
        missing.exit_code == 2 and "targets.txt:1: ${NOT_SET_ANYWHERE} is not set" in missing.stderr
    )


def test_the_python_api_returns_every_targets_outcome(fleet: Fleet, tmp_path: Path) -> None:
    names = fleet.create(2)
    write(tmp_path, FILES)
    result = migrator.fleet(
        command="migrate", targets=[f"{name}={fleet.url(name)}" for name in names], parallel=2
    )
    assert [(o.target, o.state, o.applied) for o in result.outcomes] == [
        (name, "done", 2) for name in names
    ]


def test_named_databases_with_their_own_folders(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core, iam = fleet.create(2)
    monkeypatch.setenv("CORE_URL", fleet.url(core))
    monkeypatch.setenv("IAM_URL", fleet.url(iam))
    write(
        tmp_path,
        {
            "db/core/public/0001_order.sql": "CREATE TABLE orders (id int);\n",
            "db/iam/public/0001_user.sql": "CREATE TABLE app_user (id int);\n",
            "pyproject.toml": "[tool.migrator.databases.core]\nurl_env = 'CORE_URL'\n"
            "sql_dir = 'db/core'\n\n[tool.migrator.databases.iam]\nurl_env = 'IAM_URL'\n"
            "sql_dir = 'db/iam'\n",
        },
    )
    one = cli("--db", "iam", "migrate")
    assert one.exit_code == 0, one.output
    assert fleet.journal(iam) == [(1, "applied")] and fleet.journal(core) == []
    both = cli("migrate", "--all-databases")
    assert both.exit_code == 0, both.output
    assert "== database core ==" in both.stderr and "== database iam ==" in both.stderr
    assert fleet.query(core, "SELECT to_regclass('public.orders')") == [("orders",)]
    assert fleet.query(iam, "SELECT to_regclass('public.orders')") == [(None,)]
    document = json.loads(cli("--json", "--all-databases", "status").stdout)
    assert [(d["database"], len(d["migrations"])) for d in document["databases"]] == [
        ("core", 1),
        ("iam", 1),
    ]
    assert cli("--db", "nope", "status").exit_code == 2
    monkeypatch.delenv("IAM_URL")
    unset = cli("--db", "iam", "status")
    assert unset.exit_code == 2 and "IAM_URL is not set" in unset.stderr
    # --all-databases stops at the first database that fails.
    fleet.query(core, "DROP TABLE orders")
    write(tmp_path, {"db/core/public/0002_bad.sql": "SELECT 1/0;\n"})
    monkeypatch.setenv("IAM_URL", fleet.url(iam))
    write(tmp_path, {"db/iam/public/0002_more.sql": "CREATE TABLE more (id int);\n"})
    stopped = cli("migrate", "--all-databases")
    assert stopped.exit_code == 1
    assert "== database iam ==" not in stopped.stderr
    assert fleet.journal(iam) == [(1, "applied")]


def test_ctrl_c_stops_launching_and_the_running_targets_at_their_next_chunk(
    fleet: Fleet, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import time

    from conftest import PYTHON, subprocess_env

    names = fleet.create(4)
    for name in names:  # each target's gate, where its second chunk waits
        fleet.query(name, "CREATE TABLE gate (open boolean); INSERT INTO gate VALUES (false)")
    slow = (
        "CREATE TABLE before_gate (id int);\n"
        + BREAK
        + "DO $$ BEGIN FOR i IN 1..600 LOOP EXIT WHEN (SELECT open FROM gate); "
        "PERFORM pg_sleep(0.05); END LOOP; END $$;\n"
        + BREAK
        + "CREATE TABLE after_gate (id int);\n"
    )
    write(tmp_path, {"sql/public/0001_slow.sql": slow, "sql/public/0002_tag.sql": "SELECT 1;\n"})
    targets = fleet.targets_file(tmp_path, names)
    child = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "migrator",
            "fleet",
            "migrate",
            "--targets",
            str(targets),
            "--parallel",
            "2",
        ],
        cwd=tmp_path,
        env=subprocess_env(fleet.url(names[0])),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)"
        " AND application_name = 'migrator' AND wait_event = 'PgSleep'"
    )
    try:
        deadline = time.monotonic() + 30
        with psycopg.connect(fleet.server_url, autocommit=True) as admin:
            while admin.execute(waiting, (names,)).fetchone() != (2,):  # two at the gate
                assert time.monotonic() < deadline, "the targets did not reach the gate"
                assert child.poll() is None, child.communicate()
                time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        time.sleep(0.5)
        for name in names:
            fleet.query(name, "UPDATE gate SET open = true")
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert "fleet: stopped by SIGINT" in err
    started = [n for n in names if fleet.journal(n)]
    assert len(started) == 2  # no new target started after Ctrl-C
    for name in started:
        # The chunks in flight finished and committed with their journal rows (one batch);
        # the next file never started.
        assert fleet.journal(name) == [(1, "applied")]
        assert fleet.query(name, "SELECT to_regclass('public.after_gate')") == [("after_gate",)]
    rerun = cli("fleet", "migrate", "--targets", str(targets))
    assert rerun.exit_code == 0, rerun.output
    assert all(fleet.journal(name) == APPLIED for name in names)


# Found by a review by reproduction; each failed before its fix.


def test_a_failure_stops_launching_but_the_running_targets_finish(
    fleet: Fleet, tmp_path: Path
) -> None:
    names = fleet.create(3)
    slow = "".join(f"SELECT pg_sleep(0.2);\n{BREAK}" for _ in range(3)) + "SELECT 1;\n"
    write(
        tmp_path,
        {
            "sql/public/0001_fails_on_one.sql": "DO $$ BEGIN IF current_database() = '"
            + names[0]
            + "' THEN RAISE EXCEPTION 'boom'; END IF; END $$;\n",
            "sql/public/0002_slow.sql": slow,
        },
    )
    targets = fleet.targets_file(tmp_path, names)
    result = cli("--json", "fleet", "migrate", "--targets", str(targets), "--parallel", "3")
    assert result.exit_code == 1
    states = [(t["target"], t["state"]) for t in json.loads(result.stdout)["targets"]]
    assert states == [(names[0], "failed"), (names[1], "done"), (names[2], "done")]
    assert json.loads(result.stdout)["targets"][0]["left"] == 2  # both files still to run
    assert fleet.journal(names[1]) == APPLIED and fleet.journal(names[2]) == APPLIED


def test_bad_tenant_rows_and_setups_are_refused_up_front(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, FILES)
    for query in ("SELECT ''", "SELECT NULL", "SELECT ' acme'", "SELECT 'information_schema'"):
        result = cli(
            "fleet",
            "migrate",
            "--tenant-schemas",
            query,
            url=database.url,
            env={"MIGRATOR_TENANT_TEMPLATE": "public"},
        )
        assert result.exit_code == 2, (query, result.output)
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None
    missing = cli("fleet", "migrate", "--tenant-schemas", "SELECT 'acme'", url=database.url)
    assert missing.exit_code == 2 and "tenant_template" in missing.stderr
    broken = cli("fleet", "status", "--targets-query", "SELECT 1/0", url=database.url)
    assert broken.exit_code == 2 and "--targets-query: the query failed" in broken.stderr


def test_production_asks_nothing_when_no_target_has_anything_to_run(
    fleet: Fleet, tmp_path: Path
) -> None:
    names = fleet.create(2)
    write(tmp_path, FILES)
    targets = fleet.targets_file(tmp_path, names)
    assert cli("fleet", "migrate", "--targets", str(targets)).exit_code == 0
    env = {"MIGRATOR_ENV": "production"}
    assert cli("fleet", "migrate", "--targets", str(targets), env=env).exit_code == 0


def test_a_password_in_the_query_string_is_masked_too() -> None:
    shown = db.mask("postgresql://u:first%40x@127.0.0.1/db?password=second")
    assert "first" not in shown and "second" not in shown


def test_targets_file_lines_are_checked_where_they_are_written() -> None:
    from migrator.errors import ConfigError
    from migrator.fleets import parse_targets

    (quoted,) = parse_targets("a=host=h password='x #y' dbname=d  # a comment\n", {}, "t")
    assert quoted.conninfo == "host=h password='x #y' dbname=d"
    for bad in ("bogus line one\n", "a = postgresql://h/d\n"):
        with pytest.raises(ConfigError, match="t:1: not a connection string"):
            parse_targets(bad, {}, "t")


def test_all_databases_refuses_new_and_a_db_beside_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.migrator.databases.core]\nsql_dir = "db/core"\nurl = "postgresql://x@h/core"\n'
        '[tool.migrator.databases.iam]\nsql_dir = "db/iam"\nurl = "postgresql://x@h/iam"\n'
    )
    made = cli("new", "public", "add x", "--all-databases")
    assert made.exit_code == 2, made.output
    assert "new writes into one database's migrations folder" in made.stderr
    assert not (tmp_path / "db").exists()
    both = cli("status", "--db", "core", "--all-databases")
    assert both.exit_code == 2 and "--db and --all-databases do not go together" in both.stderr
    # a schema named like a command is no command
    named = cli("--sql-dir", "new", "validate", "new", "--all-databases")
    assert "writes into one database" not in named.output
