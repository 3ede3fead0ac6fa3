"""`migrate`, `status` and `validate` against a real database: journal rows and data asserted."""

from __future__ import annotations

import shutil
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, Database, cli, write
from psycopg.conninfo import make_conninfo

MARK = "--> statement-breakpoint"


def chunks(*statements: str) -> str:
    return f"\n{MARK}\n".join(statements) + "\n"


def test_example_project_applies_once_and_then_has_nothing_to_do(
    database: Database, tmp_path: Path
) -> None:
    shutil.copytree(REPO / "sql", tmp_path / "sql")
    first = cli("migrate", url=database.url)
    assert first.exit_code == 0, first.output
    for schema, files in (("public", 4), ("pricing", 4), ("sale", 2)):
        rows = database.journal(schema)
        assert len(rows) == files
        assert all(status == "applied" and done == total for _, status, done, total in rows)
    assert database.scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
    assert database.scalar("SELECT to_regclass('sale.order_line_product_id_idx') IS NOT NULL")
    labels = database.query("SELECT unnest(enum_range(NULL::pricing.price_kind))::text")
    assert [label for (label,) in labels] == ["list", "sale", "promo"]
    finished = database.query("SELECT finished_at FROM sale.__migrations ORDER BY version")

    second = cli("migrate", url=database.url)
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.stdout
    assert database.query("SELECT finished_at FROM sale.__migrations ORDER BY version") == finished


def test_failing_chunk_is_journaled_and_the_fixed_file_resumes_there(
    database: Database, tmp_path: Path
) -> None:
    path = "sql/public/0001_items.sql"
    write(
        tmp_path,
        {
            path: chunks(
                "CREATE TABLE item (id int PRIMARY KEY)",
                "INSERT INTO item VALUES (1)",
                "INSERT INTO item\nSELECT id FROM no_such_table",
                "INSERT INTO item VALUES (4)",
            )
        },
    )
    failed = cli("migrate", url=database.url)
    assert failed.exit_code == 1
    assert f"{path}:6:16: chunk 3 of 4 failed" in failed.stderr
    assert "42P01" in failed.stderr
    assert database.journal() == [(1, "failed", 2, 4)]
    assert "no_such_table" in database.scalar("SELECT error FROM public.__migrations")
    assert database.query("SELECT id FROM item") == [(1,)]

    write(
        tmp_path,
        {
            path: chunks(
                "CREATE TABLE item (id int PRIMARY KEY)",
                "INSERT INTO item VALUES (1)",
                "INSERT INTO item VALUES (3)",
                "INSERT INTO item VALUES (4)",
            )
        },
    )
    fixed = cli("migrate", url=database.url)
    assert fixed.exit_code == 0, fixed.output
    assert "resumed at chunk 3" in fixed.stderr
    assert database.query("SELECT id FROM item ORDER BY id") == [(1,), (3,), (4,)]
    assert database.journal() == [(1, "applied", 4, 4)]
    stored = database.scalar("SELECT hash FROM public.__migrations")
    assert stored == __import__("hashlib").sha256((tmp_path / path).read_bytes()).hexdigest()


def test_editing_a_chunk_that_already_ran_refuses_to_resume(
    database: Database, tmp_path: Path
) -> None:
    path = "sql/public/0001_items.sql"
    write(tmp_path, {path: chunks("CREATE TABLE item (id int)", "SELECT 1/0")})
    assert cli("migrate", url=database.url).exit_code == 1
    write(tmp_path, {path: chunks("CREATE TABLE item (id bigint)", "SELECT 1")})
    refused = cli("migrate", url=database.url)
    assert refused.exit_code == 3
    assert "chunk 1 changed after it ran" in refused.stderr
    assert database.journal() == [(1, "failed", 1, 2)]
    assert (
        database.scalar(
            "SELECT format_type(atttypid, NULL) FROM pg_attribute "
            "WHERE attrelid = 'item'::regclass AND attname = 'id'"
        )
        == "integer"
    )


def test_drift_changed_and_missing_files_refuse_and_show(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": "CREATE TABLE a (id int);\n",
            "sql/public/0002_b.sql": "CREATE TABLE b (id int);\n",
        },
    )
    assert cli("migrate", url=database.url).exit_code == 0
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": "CREATE TABLE a (id bigint);\n",
            "sql/public/0003_c.sql": "CREATE TABLE c (id int);\n",
        },
    )
    (tmp_path / "sql/public/0002_b.sql").unlink()

    refused = cli("migrate", url=database.url)
    assert refused.exit_code == 3
    assert "sql/public/0001_a.sql: changed since it was applied on 20" in refused.stderr
    assert "0002_b.sql: journaled as applied, but the file is gone" in refused.stderr
    assert database.scalar("SELECT to_regclass('c')") is None

    status = cli("status", url=database.url)
    assert status.exit_code == 0
    rows = [line.split() for line in status.stdout.splitlines() if line.startswith("public ")]
    states = {row[2]: row[3] for row in rows}
    assert states == {"0001_a.sql": "changed", "0002_b.sql": "missing", "0003_c.sql": "pending"}
    assert "-CREATE TABLE a (id int);\n+CREATE TABLE a (id bigint);" in status.stdout
    assert cli("status", "--check", url=database.url).exit_code == 3
    assert cli("validate", url=database.url).exit_code == 3


def test_crlf_checkout_of_an_applied_file_is_not_drift(database: Database, tmp_path: Path) -> None:
    text = "CREATE TABLE a (id int);\n--> statement-breakpoint\nINSERT INTO a VALUES (1);\n"
    write(tmp_path, {"sql/public/0001_a.sql": text})
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0001_a.sql": "\ufeff" + text.replace("\n", "\r\n")})
    again = cli("migrate", url=database.url)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    assert cli("validate", url=database.url).exit_code == 0
    assert database.query("SELECT id FROM a") == [(1,)]


def test_concurrently_chunk_runs_outside_a_transaction(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": chunks(
                "CREATE TABLE a (id int)",
                "INSERT INTO a SELECT generate_series(1, 100)",
                "CREATE INDEX CONCURRENTLY a_id_idx ON a (id)",
                "DROP INDEX CONCURRENTLY a_id_idx;--> statement-breakpoint\n"
                "CREATE UNIQUE INDEX CONCURRENTLY a_id_key ON a (id)",
            )
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.scalar(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_id_key'::regclass"
    )
    assert database.journal() == [(1, "applied", 5, 5)]


def test_chunk_with_its_own_begin_commit_runs_unwrapped(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_mood.sql": chunks(
                "CREATE TYPE mood AS ENUM ('sad', 'ok');\nCREATE TABLE person (m mood)",
                "BEGIN;\nALTER TYPE mood RENAME TO mood_old;\nCREATE TYPE mood AS ENUM "
                "('sad', 'ok', 'happy');\nALTER TABLE person ALTER COLUMN m TYPE mood USING "
                "m::text::mood;\nDROP TYPE mood_old;\nCOMMIT;",
                "INSERT INTO person VALUES ('happy')",
            )
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.query("SELECT m::text FROM person") == [("happy",)]
    assert database.journal() == [(1, "applied", 3, 3)]


def test_failing_self_managed_chunk_rolls_back_and_is_journaled(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": chunks(
                "CREATE TABLE a (id int)",
                "BEGIN;\nINSERT INTO a VALUES (1);\nINSERT INTO nope VALUES (2);\nCOMMIT;",
            )
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 1
    assert "sql/public/0001_a.sql:5:13" in result.stderr
    assert database.query("SELECT * FROM a") == []
    assert database.journal() == [(1, "failed", 1, 2)]


def test_enum_value_added_in_one_chunk_is_usable_in_the_next(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_kind.sql": chunks(
                "CREATE TYPE kind AS ENUM ('a')", "CREATE TABLE thing (k kind)"
            ),
            "sql/public/0002_kind_b.sql": chunks(
                "ALTER TYPE kind ADD VALUE 'b'", "INSERT INTO thing VALUES ('b')"
            ),
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.query("SELECT k::text FROM thing") == [("b",)]


def test_single_transaction_file_is_all_or_nothing(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": "-- migrator: single-transaction\n"
            + chunks("CREATE TABLE a (id int)", "INSERT INTO a VALUES (1)", "SELECT 1/0")
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 1
    assert "chunk 3 of 3 failed: division by zero" in result.stderr
    assert database.scalar("SELECT to_regclass('a')") is None
    assert database.journal() == [(1, "failed", 0, 3)]


def test_no_transaction_file_keeps_chunks_before_the_failure(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": "-- migrator: no-transaction\n"
            + chunks("CREATE TABLE a (id int)", "VACUUM a", "SELECT 1/0")
        },
    )
    assert cli("migrate", url=database.url).exit_code == 1
    assert database.scalar("SELECT to_regclass('a') IS NOT NULL")
    assert database.journal() == [(1, "failed", 2, 3)]


def test_comment_only_file_is_journaled_with_zero_chunks(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0001_note.sql": "-- nothing yet\n/* really */\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    assert database.journal() == [(1, "applied", 0, 0)]


def test_each_file_starts_from_a_clean_session(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_style.sql": "SET datestyle TO 'German';\n",
            "sql/public/0002_dates.sql": "CREATE TABLE d AS SELECT DATE '2020-01-02'::text AS v;\n",
        },
    )
    assert cli("migrate", url=database.url).exit_code == 0
    assert database.query("SELECT v FROM d") == [("2020-01-02",)]


def test_to_stops_after_the_given_version(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {f"sql/public/000{n}_t{n}.sql": f"CREATE TABLE t{n} (id int);\n" for n in (1, 2, 3)},
    )
    assert cli("migrate", "--to", "2", url=database.url).exit_code == 0
    assert [row[0] for row in database.journal()] == [1, 2]
    assert cli("migrate", url=database.url).exit_code == 0
    assert [row[0] for row in database.journal()] == [1, 2, 3]


def test_pending_version_below_an_applied_one_is_refused(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0003_c.sql": "CREATE TABLE c (id int);\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0002_b.sql": "CREATE TABLE b (id int);\n"})
    refused = cli("migrate", url=database.url)
    assert refused.exit_code == 3
    assert "0002_b.sql: pending, but version 3 is already applied" in refused.stderr
    assert database.scalar("SELECT to_regclass('b')") is None


def test_schemas_run_public_first_and_names_that_need_quoting_work(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_base.sql": "CREATE TABLE public.base (id int PRIMARY KEY);\n",
            "sql/Sales Dept/0001_ref.sql": "CREATE TABLE ref (id int REFERENCES public.base);\n",
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.scalar("""SELECT to_regclass('"Sales Dept".ref') IS NOT NULL""")
    assert database.journal("Sales Dept") == [(1, "applied", 1, 1)]


def test_schema_argument_limits_the_run(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {"sql/a/0001_x.sql": "CREATE TABLE x ();\n", "sql/b/0001_y.sql": "CREATE TABLE y ();\n"},
    )
    assert cli("migrate", "b", url=database.url).exit_code == 0
    assert database.scalar("SELECT to_regclass('a.__migrations')") is None
    assert database.journal("b") == [(1, "applied", 1, 1)]


def test_lock_timeout_is_retried_then_fails_with_the_journal_intact(
    database: Database, tmp_path: Path
) -> None:
    database.query("CREATE TABLE busy (id int)")
    write(tmp_path, {"sql/public/0001_alter.sql": "ALTER TABLE busy ADD COLUMN x int;\n"})
    with psycopg.connect(database.url) as blocker:
        blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        result = cli(
            "migrate",
            url=database.url,
            env={"MIGRATOR_LOCK_TIMEOUT": "100ms", "MIGRATOR_LOCK_RETRIES": "1"},
        )
    assert result.exit_code == 1
    assert "retry 1" in result.stderr
    assert "55P03" in result.stderr
    assert database.journal() == [(1, "failed", 0, 1)]
    assert "55P03" in database.scalar("SELECT error FROM public.__migrations")
    assert cli("migrate", url=database.url).exit_code == 0
    assert database.journal() == [(1, "applied", 1, 1)]


@pytest.mark.parametrize("directive", ["lock-timeout=100ms"])
def test_lock_timeout_directive_applies_to_its_file(
    database: Database, tmp_path: Path, directive: str
) -> None:
    database.query("CREATE TABLE busy (id int)")
    write(
        tmp_path,
        {"sql/public/0001_alter.sql": f"-- migrator: {directive}\nALTER TABLE busy ADD x int;\n"},
    )
    with psycopg.connect(database.url) as blocker:
        blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        result = cli(
            "migrate",
            url=database.url,
            env={"MIGRATOR_LOCK_TIMEOUT": "1h", "MIGRATOR_LOCK_RETRIES": "0"},
        )
    assert result.exit_code == 1
    assert database.journal() == [(1, "failed", 0, 1)]


def test_a_deferred_constraint_failing_at_commit_is_the_chunks_failure(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_fk.sql": chunks(
                "CREATE TABLE parent (id int PRIMARY KEY)",
                "CREATE TABLE child (pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)",
                "INSERT INTO child VALUES (42)",
            )
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 1
    assert "sql/public/0001_fk.sql:5:1: chunk 3 of 3 failed" in result.stderr
    assert "23503" in result.stderr
    assert database.journal() == [(1, "failed", 2, 3)]
    assert database.query("SELECT * FROM child") == []


def test_a_failed_file_whose_failing_chunk_was_removed_ends_applied(
    database: Database, tmp_path: Path
) -> None:
    path = "sql/public/0001_a.sql"
    write(tmp_path, {path: chunks("CREATE TABLE a (id int)", "SELECT 1/0")})
    assert cli("migrate", url=database.url).exit_code == 1
    write(tmp_path, {path: chunks("CREATE TABLE a (id int)")})
    assert cli("migrate", url=database.url).exit_code == 0
    assert database.journal() == [(1, "applied", 1, 1)]
    assert cli("status", "--check", url=database.url).exit_code == 0


@pytest.mark.parametrize(
    "switch",
    [
        'SET ROLE "{role}"',
        'SET SESSION AUTHORIZATION "{role}"',
        "SELECT set_config('role', '{role}', false)",
        "SELECT 1 FROM (SELECT set_config('role', '{role}', false)) AS switched",
    ],
    ids=["set role", "session authorization", "set_config", "set_config in a subquery"],
)
def test_a_file_that_switches_the_user_still_writes_its_journal_and_the_next_file_does_not(
    database: Database, tmp_path: Path, switch: str
) -> None:
    role = f"owner_{database.name}"
    database.query(f'CREATE ROLE "{role}"')  # with no rights on the journal
    try:
        database.query(f'GRANT CREATE ON SCHEMA public TO "{role}"')
        write(
            tmp_path,
            {
                "sql/public/0001_owned.sql": chunks(
                    switch.format(role=role), "CREATE TABLE owned (x int)"
                ),
                "sql/public/0002_who.sql": "CREATE TABLE who AS SELECT current_user::text AS u;\n",
            },
        )
        result = cli("migrate", url=database.url)
        assert result.exit_code == 0, result.output
        assert database.journal() == [(1, "applied", 2, 2), (2, "applied", 1, 1)]
        assert database.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'owned'") == role
        assert database.scalar("SELECT u FROM who") == database.scalar("SELECT current_user")
    finally:
        database.query("DROP TABLE IF EXISTS owned")
        database.query(f'DROP OWNED BY "{role}"')
        database.query(f'DROP ROLE "{role}"')


def test_set_role_in_a_sql_seed_still_records_it(database: Database, tmp_path: Path) -> None:
    role = f"seeder_{database.name}"
    database.query(f'CREATE ROLE "{role}"; CREATE TABLE log (n int)')
    try:
        database.query(f'GRANT INSERT ON log TO "{role}"')  # and nothing on the seed journal
        write(
            tmp_path,
            {
                "sql/public/0001_a.sql": "SELECT 1;\n",
                "seeds/1_as_role.sql": f'SET ROLE "{role}";\nINSERT INTO log VALUES (1);\n',
                "seeds/2_who.sql": "INSERT INTO log SELECT 2 WHERE current_user = session_user;\n",
            },
        )
        assert cli("migrate", url=database.url).exit_code == 0
        result = cli("seed", url=database.url)
        assert result.exit_code == 0, result.output
        assert database.query("SELECT name, status FROM public.__seeds ORDER BY name") == [
            ("1_as_role", "SUCCESS"),
            ("2_who", "SUCCESS"),
        ]
        assert database.query("SELECT n FROM log ORDER BY n") == [(1,), (2,)]
    finally:
        database.query(f'DROP OWNED BY "{role}"')
        database.query(f'DROP ROLE "{role}"')


def test_pgclientencoding_does_not_change_what_the_runner_sends(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path, {"sql/public/0001_euro.sql": "CREATE TABLE price AS SELECT '€ 5'::text AS p;\n"}
    )
    result = cli("migrate", url=database.url, env={"PGCLIENTENCODING": "LATIN1"})
    assert result.exit_code == 0, result.output
    assert database.scalar("SELECT p FROM price") == "€ 5"
    assert database.journal() == [(1, "applied", 1, 1)]


def test_allow_out_of_order_applies_a_file_merged_from_a_branch(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0003_c.sql": "CREATE TABLE c (id int);\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0002_b.sql": "CREATE TABLE b (id int);\n"})
    assert cli("migrate", url=database.url).exit_code == 3
    allowed = cli("migrate", "--allow-out-of-order", url=database.url)
    assert allowed.exit_code == 0, allowed.output
    assert database.journal() == [(2, "applied", 1, 1), (3, "applied", 1, 1)]


# A file's transactional chunks go to the server as one batch (each chunk in its own
# transaction with its journal update); a failure anywhere in it must still name the right
# chunk and position, and leave exactly the chunks before it applied, each once.
BATCH_FAILURES = [
    pytest.param(
        [
            "INSERT INTO log VALUES (3)",
            "INSERT INTO log VALUES (4) oops",
            "INSERT INTO log VALUES (5)",
        ],
        "8:28: chunk 4 of 5",
        "42601",
        3,
        id="syntax error in a later chunk: the server parses the batch before running any of it",
    ),
    pytest.param(
        ["SELECT 1/0", "INSERT INTO log VALUES (4)", "INSERT INTO log VALUES (5)"],
        "6:1: chunk 3 of 5",
        "22012",
        2,
        id="runtime error without a position",
    ),
    pytest.param(
        [
            "INSERT INTO log VALUES (3) -- ünïcödé ✓ before the error",
            "INSERT INTO log\nSELECT 4 FROM nowhere",
            "INSERT INTO log VALUES (5)",
        ],
        "9:15: chunk 4 of 5",
        "42P01",
        3,
        id="runtime error with a position after multibyte characters",
    ),
    pytest.param(
        [
            "INSERT INTO log VALUES (3)",
            "INSERT INTO log VALUES (4)",
            "INSERT INTO nowhere VALUES (5)",
        ],
        "10:13: chunk 5 of 5",
        "42P01",
        4,
        id="the last chunk",
    ),
]


@pytest.mark.parametrize(("tail", "location", "sqlstate", "done"), BATCH_FAILURES)
def test_a_failure_inside_a_batch_names_its_chunk_and_keeps_the_chunks_before_it(
    database: Database, tmp_path: Path, tail: list[str], location: str, sqlstate: str, done: int
) -> None:
    path = "sql/public/0001_log.sql"
    database.query("CREATE TABLE log (n int)")
    head = ["INSERT INTO log VALUES (1)", "SELECT 'é' AS x;\nINSERT INTO log VALUES (2)"]
    write(tmp_path, {path: chunks(*head, *tail)})
    failed = cli("migrate", url=database.url)
    assert failed.exit_code == 1, failed.output
    assert f"{path}:{location} failed" in failed.stderr
    assert sqlstate in failed.stderr
    assert database.journal() == [(1, "failed", done, 5)]
    assert database.query("SELECT n FROM log ORDER BY n") == [(n,) for n in range(1, done + 1)]

    fixes = {" oops": "", " FROM nowhere": "", "INTO nowhere": "INTO log", "SELECT 1/0": ""}
    fixed = list(tail)
    for wrong, right in fixes.items():
        fixed = [statement.replace(wrong, right) for statement in fixed]
    fixed = [statement or "INSERT INTO log VALUES (3)" for statement in fixed]
    write(tmp_path, {path: chunks(*head, *fixed)})
    resumed = cli("migrate", url=database.url)
    assert resumed.exit_code == 0, resumed.output
    assert database.journal() == [(1, "applied", 5, 5)]
    assert database.query("SELECT n FROM log ORDER BY n") == [(n,) for n in range(1, 6)]


def test_chunks_that_return_rows_do_not_confuse_the_batch(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_rows.sql": chunks(
                "CREATE TABLE t (n int)",
                "SELECT generate_series(1, 3) AS n",
                'SELECT 7 AS "migrator.elapsed_ms"',  # the column the journal update returns
                "SELECT pg_sleep(0.3); INSERT INTO t VALUES (1)",
                "CREATE INDEX CONCURRENTLY t_n ON t (n)",
                "INSERT INTO t VALUES (2)",
            )
        },
    )
    result = cli("-v", "migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.journal() == [(1, "applied", 6, 6)]
    assert database.query("SELECT n FROM t ORDER BY n") == [(1,), (2,)]
    lines = [line for line in result.stderr.splitlines() if line.strip().startswith("chunk ")]
    assert [line.split()[1] for line in lines] == [f"{i}/6" for i in range(1, 7)]


def test_chunk_durations_come_from_the_journal_updates(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {"sql/public/0001_slow.sql": chunks("SELECT 1", "SELECT pg_sleep(0.4)", "SELECT 1")},
    )
    result = cli("-v", "migrate", url=database.url)
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stderr.splitlines() if "chunk " in line]
    durations = {line[1]: int(line[-2]) for line in lines if line[-1] == "ms"}
    assert durations["2/3"] >= 400, result.stderr
    assert durations["1/3"] < 400 and durations["3/3"] < 400, result.stderr
    assert database.journal() == [(1, "applied", 3, 3)]


def test_lock_timeout_inside_a_batch_retries_from_the_blocked_chunk(
    database: Database, tmp_path: Path
) -> None:
    database.query("CREATE TABLE busy (id int); CREATE TABLE log (n int)")
    write(
        tmp_path,
        {
            "sql/public/0001_batch.sql": chunks(
                "INSERT INTO log VALUES (1)",
                "INSERT INTO log VALUES (2)",
                "ALTER TABLE busy ADD COLUMN x int",
                "INSERT INTO log VALUES (4)",
            )
        },
    )
    blocker = psycopg.connect(database.url)
    blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
    release = threading.Timer(0.6, blocker.commit)
    release.start()
    try:
        result = cli(
            "migrate",
            url=database.url,
            env={"MIGRATOR_LOCK_TIMEOUT": "200ms", "MIGRATOR_LOCK_RETRIES": "5"},
        )
    finally:
        release.join()
        blocker.close()
    assert result.exit_code == 0, result.output
    assert "chunk 3 hit lock_timeout; retry 1" in result.stderr
    assert "chunk 1 hit" not in result.stderr
    assert database.journal() == [(1, "applied", 4, 4)]
    assert database.query("SELECT n FROM log ORDER BY n") == [(1,), (2,), (4,)]
    assert (
        database.scalar(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'busy'::regclass AND attname = 'x'"
        )
        == 1
    )


def test_a_file_of_many_chunks_goes_in_several_batches(database: Database, tmp_path: Path) -> None:
    from migrator import batch as runner

    count = runner.BATCH_CHUNKS * 2 + 7
    statements = ["CREATE TABLE n (i int PRIMARY KEY)"]
    statements += [f"INSERT INTO n VALUES ({i})" for i in range(1, count)]
    statements[runner.BATCH_CHUNKS + 3] = "INSERT INTO n VALUES (1)"  # a duplicate key
    write(tmp_path, {"sql/public/0001_many.sql": chunks(*statements)})
    failed = cli("migrate", url=database.url)
    assert failed.exit_code == 1, failed.output
    assert f"chunk {runner.BATCH_CHUNKS + 4} of {count} failed" in failed.stderr
    assert database.journal() == [(1, "failed", runner.BATCH_CHUNKS + 3, count)]
    assert database.scalar("SELECT count(*) FROM n") == runner.BATCH_CHUNKS + 2

    statements[runner.BATCH_CHUNKS + 3] = f"INSERT INTO n VALUES ({runner.BATCH_CHUNKS + 3})"
    write(tmp_path, {"sql/public/0001_many.sql": chunks(*statements)})
    assert (
        cli("repair", "--reason", "fixed the duplicate", "--yes", url=database.url).exit_code == 0
    )


def test_a_position_further_on_does_not_rerun_committed_chunks(
    database: Database, tmp_path: Path
) -> None:
    """PostgreSQL points a SQL function body's error at wherever that text appears first in the
    whole query, which can be a later chunk: only chunks that did not commit may run again."""
    database.query("CREATE TABLE log (n int)")
    write(
        tmp_path,
        {
            "sql/public/0001_f.sql": chunks(
                "INSERT INTO log VALUES (1)",
                "INSERT INTO log VALUES (2)",
                "CREATE FUNCTION g() RETURNS bigint LANGUAGE sql AS E'SELECT count(*)\\nFROM logs'",
                "CREATE FUNCTION g2() RETURNS bigint LANGUAGE sql"
                " AS $$SELECT count(*)\nFROM logs$$",
            )
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 1, result.output
    assert "chunk 3 of 4 failed" in result.stderr
    assert database.journal() == [(1, "failed", 2, 4)]
    assert database.query("SELECT n FROM log ORDER BY n") == [(1,), (2,)]


def test_a_syntax_error_at_the_end_of_a_chunk_is_that_chunks(
    database: Database, tmp_path: Path
) -> None:
    database.query("CREATE TABLE log (n int)")
    path = "sql/public/0001_a.sql"
    write(
        tmp_path,
        {
            path: chunks(
                "INSERT INTO log VALUES (1);",
                "INSERT INTO log VALUES (2);",
                "INSERT INTO log VALUES (3",  # the parser stops at the ';' the runner adds
                "INSERT INTO log VALUES (4);",
            )
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 1, result.output
    assert f"{path}:5:1: chunk 3 of 4 failed" in result.stderr
    assert database.journal() == [(1, "failed", 2, 4)]
    assert database.query("SELECT n FROM log ORDER BY n") == [(1,), (2,)]


def test_a_failure_after_set_role_is_journaled_as_the_session_user(
    database: Database, tmp_path: Path
) -> None:
    role = f"app_{database.name}"
    database.query(f'CREATE ROLE "{role}"; CREATE TABLE log (n int)')
    try:
        database.query(f'GRANT INSERT ON log TO "{role}"')  # and nothing on the journal
        write(
            tmp_path,
            {
                "sql/public/0001_as_app.sql": chunks(
                    "INSERT INTO log VALUES (1)",
                    f'SET ROLE "{role}"',
                    "INSERT INTO log VALUES (3)",
                    "SELECT 1/0",
                )
            },
        )
        result = cli("migrate", url=database.url)
        assert result.exit_code == 1, result.output
        assert "chunk 4 of 4 failed: division by zero" in result.stderr
        assert database.journal() == [(1, "failed", 3, 4)]
        assert "division by zero" in database.scalar("SELECT error FROM public.__migrations")
        assert database.query("SELECT n FROM log ORDER BY n") == [(1,), (3,)]
    finally:
        database.query(f'DROP OWNED BY "{role}"')
        database.query(f'DROP ROLE "{role}"')


@pytest.mark.parametrize(
    "statement",
    ["COPY log FROM STDIN", "COPY log (n) FROM stdin WITH (FORMAT csv)", "COPY log TO STDOUT"],
)
def test_copy_with_the_client_is_refused_before_anything_runs(
    database: Database, tmp_path: Path, statement: str
) -> None:
    database.query("CREATE TABLE log (n int)")
    write(
        tmp_path,
        {"sql/public/0001_copy.sql": chunks("INSERT INTO log VALUES (1)", statement)},
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 2, result.output
    assert "COPY ... FROM STDIN / TO STDOUT needs a client that streams the data" in result.stderr
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None
    assert database.query("SELECT n FROM log") == []


def test_verbose_shows_the_chunks_a_failed_batch_committed(
    database: Database, tmp_path: Path
) -> None:
    database.query("CREATE TABLE log (n int)")
    write(
        tmp_path,
        {
            "sql/public/0001_v.sql": chunks(
                "INSERT INTO log VALUES (1)",
                "INSERT INTO log VALUES (2)",
                "SELECT 1/0",
                "INSERT INTO log VALUES (4)",
            )
        },
    )
    result = cli("-v", "migrate", url=database.url)
    assert result.exit_code == 1, result.output
    lines = [line.strip() for line in result.stderr.splitlines() if line.startswith("  chunk ")]
    assert lines == ["chunk 1/4 line 1", "chunk 2/4 line 3"]
    assert database.journal() == [(1, "failed", 2, 4)]


def test_a_migration_that_deallocates_the_journal_statements_is_journaled_all_the_same(
    database: Database, tmp_path: Path
) -> None:
    # The journal writes are prepared statements of the runner's session; DEALLOCATE in a
    # batch, in an autocommit chunk (dynamic SQL too) or a single-transaction file drops them.
    database.query("CREATE TABLE log (n int)")
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": chunks(
                "INSERT INTO log VALUES (1)", "DEALLOCATE ALL", "INSERT INTO log VALUES (3)"
            ),
            "sql/public/0002_b.sql": "-- migrator: no-transaction\n"
            + chunks("INSERT INTO log VALUES (4)", "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$"),
            "sql/public/0003_c.sql": "-- migrator: single-transaction\n"
            + chunks("INSERT INTO log VALUES (6)", "DEALLOCATE ALL", "INSERT INTO log VALUES (8)"),
            "sql/public/0004_d.sql": chunks(
                "INSERT INTO log VALUES (9)", "INSERT INTO log VALUES (10)"
            ),
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.journal() == [
        (1, "applied", 3, 3),
        (2, "applied", 2, 2),
        (3, "applied", 3, 3),
        (4, "applied", 2, 2),
    ]
    assert database.query("SELECT n FROM log ORDER BY n") == [(n,) for n in (1, 3, 4, 6, 8, 9, 10)]


def test_a_missing_prepared_statement_of_the_migrations_own_is_its_failure(
    database: Database, tmp_path: Path
) -> None:
    database.query("CREATE TABLE log (n int)")
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": chunks(
                "INSERT INTO log VALUES (1)",
                "EXECUTE not_prepared (2)",
                "INSERT INTO log VALUES (3)",
            )
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 1, result.output
    assert "chunk 2 of 3 failed" in result.stderr and "26000" in result.stderr
    assert database.journal() == [(1, "failed", 1, 3)]
    assert database.query("SELECT n FROM log") == [(1,)]


def test_a_role_left_set_by_a_file_does_not_prepare_or_create_the_next_journal(
    database: Database, tmp_path: Path
) -> None:
    # The next schema's journal is created, and its writes prepared, as the session user.
    role = f"app_{database.name}"
    database.query(
        f'CREATE ROLE "{role}"; CREATE SCHEMA a; GRANT USAGE, CREATE ON SCHEMA a TO "{role}"'
    )
    try:
        last = f'CREATE TABLE a.t (id int);\n{MARK}\nSET ROLE "{role}";\n'
        write(
            tmp_path,
            {
                "sql/a/0001_x.sql": "CREATE TABLE a.s (id int);\n",
                "sql/b/0001_x.sql": "CREATE TABLE b.s (id int);\n",
                "sql/a/0002_role.sql": "-- migrator: no-transaction\n" + last,
                "sql/b/0002_y.sql": "CREATE TABLE b.t (id int);\n",
                "sql/c/0001_z.sql": "CREATE TABLE c.t (id int);\n",
            },
        )
        result = cli("migrate", "a", "b", url=database.url)  # both journals exist before the role
        assert result.exit_code == 0, result.output
        result = cli("migrate", url=database.url)
        assert result.exit_code == 0, result.output
        assert database.journal("a") == [(1, "applied", 1, 1), (2, "applied", 2, 2)]
        assert database.journal("b") == [(1, "applied", 1, 1), (2, "applied", 1, 1)]
        assert database.journal("c") == [(1, "applied", 1, 1)]
        assert database.scalar(
            "SELECT to_regclass('b.t') IS NOT NULL AND to_regclass('c.t') IS NOT NULL"
        )
    finally:
        database.query(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


def test_a_latin1_database_gets_the_file_text_as_written(server_url: str, tmp_path: Path) -> None:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'LATIN1' TEMPLATE template0"  # type: ignore[arg-type]
            " LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    try:
        database = Database(make_conninfo(server_url, dbname=name), name)
        text = "CREATE TABLE t (v text DEFAULT 'café');\n"
        write(tmp_path, {"sql/public/0001_x.sql": text})
        result = cli("migrate", url=database.url)
        assert result.exit_code == 0, result.output
        assert database.journal() == [(1, "applied", 1, 1)]
        assert database.scalar("SELECT content FROM public.__migrations") == text
        database.query("INSERT INTO t DEFAULT VALUES")
        assert database.scalar("SELECT v FROM t") == "café"
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def test_the_session_reads_strings_as_the_lexer_does_whatever_the_database_default(
    database: Database, tmp_path: Path
) -> None:
    """With standard_conforming_strings off on the database, the server would read the
    backslash as an escape and run `COMMIT; SELECT 1/0` as statements of their own; the runner
    sets it on, so the chunk is the one statement the lexer counted."""
    database.query(f'ALTER DATABASE "{database.name}" SET standard_conforming_strings = off')
    tricky = r"INSERT INTO t VALUES ('x\' || ' ; COMMIT; SELECT 1/0; -- ')"
    write(tmp_path, {"sql/public/0001_t.sql": chunks("CREATE TABLE t (v text)", tricky)})
    write(tmp_path, {"seeds/1_t.sql": tricky + ";\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    assert cli("seed", url=database.url).exit_code == 0
    value = "x\\ ; COMMIT; SELECT 1/0; -- "
    assert database.query("SELECT v FROM t") == [(value,), (value,)]
    assert database.journal() == [(1, "applied", 2, 2)]
    assert database.query("SELECT name, status FROM public.__seeds") == [("1_t", "SUCCESS")]


def test_savepoints_in_an_ordinary_chunk_run_inside_its_transaction(
    database: Database, tmp_path: Path
) -> None:
    savepoints = (
        "INSERT INTO t VALUES (1); SAVEPOINT s; INSERT INTO t VALUES (2);"
        " ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s; INSERT INTO t VALUES (3)"
    )
    write(tmp_path, {"sql/public/0001_t.sql": chunks("CREATE TABLE t (id int)", savepoints)})
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.query("SELECT id FROM t ORDER BY id") == [(1,), (3,)]
    assert database.journal() == [(1, "applied", 2, 2)]


def test_reindex_with_the_concurrently_option_runs_outside_a_transaction(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_t.sql": chunks(
                "CREATE TABLE t (id int)",
                "CREATE INDEX t_id ON t (id)",
                "REINDEX (CONCURRENTLY) TABLE t",
            )
        },
    )
    result = cli("migrate", url=database.url)
    assert result.exit_code == 0, result.output
    assert database.journal() == [(1, "applied", 3, 3)]
    assert database.scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass")
