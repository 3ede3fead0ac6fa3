"""The fault suite: the real CLI in child processes, killed, interrupted, cut off, started eight
at once and blocked by other sessions' locks. After every fault the journal and the tables are
checked: each chunk inserts a row of its own into public.applied, so "applied exactly once" is
"no id twice" and "nothing missing" is "every expected id there".

Long statements wait at a gate (public.gate) that the test opens, instead of sleeping for a
fixed time, and every wait is bounded, so nothing here can hang.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import PYTHON, Database, subprocess_env, write

DEADLINE = 30.0  # the longest any one wait in this file may take
BOUNDED = "-c lock_timeout=5s -c statement_timeout=20s"  # for the test's own queries
NOTICED = 10.0  # a killed runner's server session must be gone by then (check interval 2s)

SETUP = (
    "CREATE TABLE public.applied (id text NOT NULL);"  # no key: a duplicate must be visible
    "CREATE TABLE public.target (id text NOT NULL);"
    "CREATE TABLE public.gate (open boolean NOT NULL);"
    "INSERT INTO public.gate VALUES (false)"
)

# Waits until the test opens the gate (at most 30 s), as a PL/pgSQL loop of short sleeps.
WAIT_AT_GATE = (
    "FOR i IN 1..600 LOOP EXIT WHEN (SELECT open FROM public.gate); "
    "PERFORM pg_sleep(0.05); END LOOP;"
)


def insert(row: str) -> str:
    return f"INSERT INTO public.applied VALUES ('{row}');\n"


def gated(row: str) -> str:
    """A long statement: it waits at the gate, then inserts its row."""
    return f"DO $$ BEGIN {WAIT_AT_GATE} INSERT INTO public.applied VALUES ('{row}'); END $$;\n"


def migration(version: int, chunks: int, special: dict[int, str] | None = None) -> str:
    """A file whose chunk c inserts the row 'version.c' (or is special[c])."""
    special = special or {}
    return "--> statement-breakpoint\n".join(
        special.get(c, insert(f"{version}.{c}")) for c in range(1, chunks + 1)
    )


def rows(spec: dict[int, int]) -> list[str]:
    """The rows of {version: chunks done}."""
    return [f"{version}.{c}" for version, done in spec.items() for c in range(1, done + 1)]


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


def _sigint_default() -> None:  # a child of a shell's background job may ignore SIGINT
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Project:
    """A project folder, its database, and the runners started on it (killed at teardown)."""

    def __init__(self, root: Path, database: Database) -> None:
        self.root = root
        self.db = database
        self.children: list[subprocess.Popen[str]] = []
        self.query(SETUP)

    def query(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Like Database.query, but never waits long for a lock or a statement."""
        with psycopg.connect(self.db.url, autocommit=True, options=BOUNDED) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def scalar(self, query: str, params: Any = None) -> Any:
        found = self.query(query, params)
        return found[0][0] if found else None

    def journal(self) -> list[tuple[Any, ...]]:
        """(version, status, chunks_done, chunks_total) of every row of public.__migrations."""
        return self.query(
            "SELECT version, status, chunks_done, chunks_total FROM public.__migrations"
            " ORDER BY version"
        )

    def write(self, files: dict[str, str | bytes]) -> None:
        write(self.root, files)

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [PYTHON, "-m", "migrator", *args],
            cwd=self.root,
            env=subprocess_env(self.db.url, **{"MIGRATOR_LOCK_WAIT": "20", **env}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_sigint_default,
        )
        self.children.append(child)
        return child

    def finish(self, child: subprocess.Popen[str], timeout: float = DEADLINE) -> Finished:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
            raise AssertionError(
                f"the runner did not end within {timeout}s:\n{out}\n{err}"
            ) from None
        return Finished(child.returncode, out, err)

    def run(self, *args: str, timeout: float = DEADLINE, **env: str) -> Finished:
        return self.finish(self.start(*args, **env), timeout)

    def kill(self, child: subprocess.Popen[str]) -> Finished:
        child.kill()  # SIGKILL: no handler, no cleanup, the socket just closes
        return self.finish(child)

    def wait(
        self, check: Callable[[], Any], what: str, *, timeout: float = DEADLINE, watch: bool = True
    ) -> Any:
        """Poll `check` until it returns something true; fail if a runner ended meanwhile
        (unless not `watch`ing them)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            for child in self.children if watch else ():
                if child.returncode is None and child.poll() is not None:
                    out, err = child.communicate()
                    raise AssertionError(f"a runner ended early ({child.returncode}):\n{out}{err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout}s in vain for {what}")
            time.sleep(0.02)

    def sleeping(self, *, watch: bool = True) -> tuple[int, str]:
        """Wait for a runner's server session to sleep in pg_sleep; its (pid, query)."""
        return self.wait(  # type: ignore[no-any-return]
            lambda: self.query(
                "SELECT pid, query FROM pg_stat_activity WHERE datname = %s"
                " AND application_name = 'migrator' AND state = 'active'"
                " AND wait_event = 'PgSleep'",
                (self.db.name,),
            ),
            "a runner's statement to wait at the gate",
            watch=watch,
        )[0]

    def queued(self, count: int) -> None:
        """Wait until `count` runners poll for the advisory lock, the holder at the gate."""
        self.wait(
            lambda: (
                self.scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                    " AND application_name = 'migrator'"
                    " AND (query LIKE '%%pg_try_advisory_lock%%' OR query LIKE '%%pg_locks%%')",
                    (self.db.name,),
                )
                >= count
            ),
            f"{count} runners to wait for the lock",
            timeout=60,
        )

    def sessions(self) -> int:
        """The runners' server sessions in this database."""
        return int(
            self.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND application_name = 'migrator'",
                (self.db.name,),
            )
        )

    def wait_gone(self) -> None:
        """Wait until the server has noticed every dead runner and ended its session."""
        self.wait(
            lambda: self.sessions() == 0,
            "the server to end a dead runner's session",
            timeout=NOTICED,
        )

    def open_gate(self) -> None:
        self.query("UPDATE public.gate SET open = true")

    def advisory_locks(self) -> int:
        return int(
            self.scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
                (self.db.name,),
            )
        )

    def applied(self) -> list[str]:
        return sorted(row for (row,) in self.query("SELECT id FROM public.applied"))

    def assert_exactly_once(self, expected: Iterable[str]) -> None:
        twice = self.query(
            "SELECT id, count(*) FROM public.applied GROUP BY id HAVING count(*) > 1"
        )
        assert twice == [], f"applied more than once: {twice}"
        assert self.applied() == sorted(expected)

    def assert_journal_tells_the_truth(self) -> None:
        """Every file's chunks_done is exactly the number of its rows that committed."""
        journal = self.scalar("SELECT to_regclass('public.__migrations')")
        done = {version: n for version, _, n, _ in self.journal()} if journal else {}
        committed = dict(
            self.query(
                "SELECT split_part(id, '.', 1)::bigint, count(*) FROM public.applied GROUP BY 1"
            )
        )
        assert committed == {version: n for version, n in done.items() if n}, (committed, done)

    def slow_journal(self, condition: str) -> None:
        """A trigger that makes the journal write matching `condition` wait at the gate."""
        self.query(
            "CREATE FUNCTION public.slow_journal() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN IF {condition} THEN {WAIT_AT_GATE} END IF; RETURN NEW; END $$;"
            "CREATE TRIGGER slow_journal BEFORE INSERT OR UPDATE ON public.__migrations"
            " FOR EACH ROW EXECUTE FUNCTION public.slow_journal()"
        )


@pytest.fixture
def project(database: Database, tmp_path: Path) -> Iterator[Project]:
    project = Project(tmp_path, database)
    yield project
    for child in project.children:
        if child.poll() is None:
            child.kill()
            child.communicate()


# 1. SIGKILL: during a long statement, during a journal update, between files, anywhere.


def test_sigkill_during_a_long_statement(project: Project) -> None:
    project.write(
        {
            "sql/public/0001_a.sql": migration(1, 3),
            "sql/public/0002_b.sql": migration(2, 3, {2: gated("2.2")}),
            "sql/public/0003_c.sql": migration(3, 3),
        }
    )
    runner = project.start("migrate")
    _, query = project.sleeping()
    assert "public.gate" in query
    assert project.journal() == [(1, "applied", 3, 3), (2, "running", 1, 3)]
    assert project.kill(runner).code == -signal.SIGKILL
    # client_connection_check_interval: the server ends the session (its statement rolled
    # back, the lock released) within seconds, not when the statement would have finished.
    project.wait_gone()
    assert project.advisory_locks() == 0
    assert project.journal() == [(1, "applied", 3, 3), (2, "running", 1, 3)]
    project.assert_exactly_once(rows({1: 3, 2: 1}))
    project.open_gate()
    rerun = project.run("migrate")
    assert rerun.code == 0, rerun.stderr
    assert "0002_b.sql (2 chunks, resumed at chunk 2)" in rerun.stderr
    assert project.journal() == [(v, "applied", 3, 3) for v in (1, 2, 3)]
    project.assert_exactly_once(rows({1: 3, 2: 3, 3: 3}))


def test_sigkill_during_a_journal_update(project: Project) -> None:
    project.write({"sql/public/0001_a.sql": migration(1, 2)})
    assert project.run("migrate").code == 0
    # The journal update for chunk 2 of file 2 waits at the gate, in the chunk's transaction.
    project.slow_journal(
        "TG_OP = 'UPDATE' AND NEW.version = 2 AND NEW.chunks_done = 2 AND NEW.status <> 'failed'"
    )
    project.write(
        {"sql/public/0002_b.sql": migration(2, 3), "sql/public/0003_c.sql": migration(3, 2)}
    )
    runner = project.start("migrate")
    _, query = project.sleeping()
    # The chunk and its journal update travel as one query: the gate holds the UPDATE in it.
    assert 'EXECUTE "migrator_journal_advance_' in query, query
    assert '" (2, 2);\nCOMMIT;' in query, query
    project.kill(runner)
    project.wait_gone()
    # The chunk and its journal update commit together, so both are gone.
    assert project.journal() == [(1, "applied", 2, 2), (2, "running", 1, 3)]
    project.assert_exactly_once(rows({1: 2, 2: 1}))
    project.open_gate()
    rerun = project.run("migrate")
    assert rerun.code == 0, rerun.stderr
    assert project.journal() == [
        (1, "applied", 2, 2),
        (2, "applied", 3, 3),
        (3, "applied", 2, 2),
    ]
    project.assert_exactly_once(rows({1: 2, 2: 3, 3: 2}))


def test_sigkill_between_files(project: Project) -> None:
    project.write({"sql/public/0001_a.sql": migration(1, 2)})
    assert project.run("migrate").code == 0
    # File 2 done, file 3 about to start: its first journal write waits at the gate.
    project.slow_journal("TG_OP = 'INSERT' AND NEW.version = 3")
    project.write(
        {"sql/public/0002_b.sql": migration(2, 2), "sql/public/0003_c.sql": migration(3, 2)}
    )
    runner = project.start("migrate")
    _, query = project.sleeping()
    assert 'EXECUTE "migrator_journal_start_' in query and "(3, '0003_c.sql'" in query, query
    assert project.journal() == [(1, "applied", 2, 2), (2, "applied", 2, 2)]
    project.kill(runner)
    project.wait_gone()
    assert project.journal() == [(1, "applied", 2, 2), (2, "applied", 2, 2)]
    project.assert_exactly_once(rows({1: 2, 2: 2}))
    project.open_gate()
    rerun = project.run("migrate")
    assert rerun.code == 0, rerun.stderr
    assert "applied 1 file" in rerun.stdout
    assert project.journal() == [(v, "applied", 2, 2) for v in (1, 2, 3)]
    project.assert_exactly_once(rows({1: 2, 2: 2, 3: 2}))


def test_sigkill_at_random_moments_never_loses_or_repeats_a_statement(project: Project) -> None:
    files, chunks = 4, 10
    slow = "INSERT INTO public.applied SELECT '{}' FROM pg_sleep(0.01);\n"
    project.write(
        {
            f"sql/public/{v:04d}_f.sql": migration(
                v, chunks, {c: slow.format(f"{v}.{c}") for c in range(1, chunks + 1)}
            )
            for v in range(1, files + 1)
        }
    )
    chance = random.Random(5)
    cut_short = 0
    for attempt in range(6):
        runner = project.start("migrate")
        # Start-up takes about 0.3s and the run 0.5s: kill in start-up, a chunk, a journal
        # update, a commit, between files, later and later.
        time.sleep(chance.uniform(0.15, 0.3) + 0.15 * attempt)
        project.kill(runner)
        project.wait_gone()
        project.assert_journal_tells_the_truth()
        cut_short += len(project.applied()) < files * chunks
    assert cut_short, "no kill landed before the end of the run"
    final = project.run("migrate")
    assert final.code == 0, final.stderr
    assert project.journal() == [(v, "applied", chunks, chunks) for v in range(1, files + 1)]
    project.assert_exactly_once(rows(dict.fromkeys(range(1, files + 1), chunks)))


def down_progress(project: Project) -> dict[int, int | None]:
    """{version: down_chunks_done} of every journal row."""
    return dict(project.query("SELECT version, down_chunks_done FROM public.__migrations"))


def test_sigkill_during_a_down_chunk_then_rollback_loses_and_repeats_nothing(
    project: Project,
) -> None:
    down = migration(9, 3, {2: gated("9.2")})  # the down's rows: '9.1', '9.2', '9.3'
    project.write({"sql/public/0001_a.sql": migration(1, 2), "sql/public/0001_a.down.sql": down})
    assert project.run("migrate").code == 0
    runner = project.start("rollback")
    _, query = project.sleeping()
    assert "public.gate" in query
    assert down_progress(project) == {1: 1}
    project.kill(runner)
    project.wait_gone()
    assert project.advisory_locks() == 0
    assert down_progress(project) == {1: 1}  # chunk 1 committed with its progress, 2 did not
    project.assert_exactly_once(rows({1: 2, 9: 1}))
    assert "reverting" in project.run("status").stdout
    assert project.run("migrate").code == 3  # refused while the rollback is unfinished
    project.open_gate()
    rerun = project.run("rollback")
    assert rerun.code == 0, rerun.stderr
    assert "(2 down chunks, resumed at chunk 2)" in rerun.stderr
    assert project.journal() == []
    project.assert_exactly_once(rows({1: 2, 9: 3}))


def test_sigkill_as_the_last_down_chunk_deletes_the_row_keeps_both_or_neither(
    project: Project,
) -> None:
    project.write(
        {"sql/public/0001_a.sql": migration(1, 1), "sql/public/0001_a.down.sql": migration(9, 2)}
    )
    assert project.run("migrate").code == 0
    # The last chunk's journal write (the row's deletion) waits at the gate, in its transaction.
    project.query(
        "CREATE FUNCTION public.slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {WAIT_AT_GATE} RETURN OLD; END $$;"
        "CREATE TRIGGER slow_delete BEFORE DELETE ON public.__migrations"
        " FOR EACH ROW EXECUTE FUNCTION public.slow_delete()"
    )
    runner = project.start("rollback")
    _, query = project.sleeping()
    assert "DELETE FROM" in query, query
    project.kill(runner)
    project.wait_gone()
    assert down_progress(project) == {1: 1}
    assert project.scalar("SELECT count(*) FROM public.__migrations_history") == 0
    project.assert_exactly_once(rows({1: 1, 9: 1}))
    project.open_gate()
    rerun = project.run("rollback")
    assert rerun.code == 0, rerun.stderr
    assert project.journal() == []
    assert project.scalar("SELECT count(*) FROM public.__migrations_history") == 1
    project.assert_exactly_once(rows({1: 1, 9: 2}))


def test_sigkill_at_random_moments_in_a_rollback_never_loses_or_repeats_a_down_chunk(
    project: Project,
) -> None:
    files, chunks = 3, 10
    slow = "INSERT INTO public.applied SELECT '{}' FROM pg_sleep(0.01);\n"
    for v in range(1, files + 1):
        project.write(
            {
                f"sql/public/{v:04d}_f.sql": migration(v, 1),
                f"sql/public/{v:04d}_f.down.sql": migration(
                    10 + v, chunks, {c: slow.format(f"{10 + v}.{c}") for c in range(1, chunks + 1)}
                ),
            }
        )
    assert project.run("migrate").code == 0
    chance = random.Random(7)
    cut_short = 0
    for attempt in range(6):
        runner = project.start("rollback", "--to", "0")
        time.sleep(chance.uniform(0.15, 0.3) + 0.12 * attempt)
        project.kill(runner)
        project.wait_gone()
        # Every file's down progress is exactly the down chunks that committed.
        left = down_progress(project)
        committed = dict(
            project.query(
                "SELECT split_part(id, '.', 1)::bigint - 10, count(*) FROM public.applied"
                " WHERE id LIKE '1_.%' GROUP BY 1"
            )
        )
        for v in range(1, files + 1):
            expected = chunks if v not in left else left[v] or 0
            assert committed.get(v, 0) == expected, (v, committed, left)
        cut_short += bool(left)
    assert cut_short, "no kill landed before the end of the rollback"
    final = project.run("rollback", "--to", "0")
    assert final.code == 0, final.stderr
    assert project.journal() == []
    project.assert_exactly_once(
        rows({**dict.fromkeys(range(1, files + 1), 1), 11: chunks, 12: chunks, 13: chunks})
    )


# 2. The server connection terminated mid-run.


@pytest.mark.parametrize("where", ["statement", "between files"])
def test_a_terminated_connection_exits_1_with_a_clear_message_and_the_rerun_resumes(
    project: Project, where: str
) -> None:
    project.write({"sql/public/0001_a.sql": migration(1, 2)})
    assert project.run("migrate").code == 0
    if where == "between files":
        project.slow_journal("TG_OP = 'INSERT' AND NEW.version = 3")
        files = {2: migration(2, 2), 3: migration(3, 2)}
    else:
        files = {2: migration(2, 2), 3: migration(3, 2, {2: gated("3.2")})}
    project.write({f"sql/public/{v:04d}_x.sql": text for v, text in files.items()})
    runner = project.start("migrate")
    pid, _ = project.sleeping()
    project.query("SELECT pg_terminate_backend(%s)", (pid,))
    result = project.finish(runner)
    assert result.code == 1
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "error: the connection to the server was lost" in message
    assert "terminating connection due to administrator command" in message
    assert "the next run resumes" in message
    error = result.stderr[result.stderr.index("error:") :]
    assert len(error.strip().splitlines()) <= 4, result.stderr  # one short paragraph
    done = {"statement": {1: 2, 2: 2, 3: 1}, "between files": {1: 2, 2: 2}}[where]
    project.assert_exactly_once(rows(done))
    project.assert_journal_tells_the_truth()
    project.open_gate()
    rerun = project.run("migrate")
    assert rerun.code == 0, rerun.stderr
    assert project.journal() == [(v, "applied", 2, 2) for v in (1, 2, 3)]
    project.assert_exactly_once(rows({1: 2, 2: 2, 3: 2}))


# 3. SIGINT and SIGTERM: the statement cancelled and rolled back, the lock released at once.


@pytest.mark.parametrize(
    ("signum", "code", "name"),
    [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_signal_cancels_the_statement_releases_the_lock_and_the_rerun_resumes(
    project: Project, signum: int, code: int, name: str
) -> None:
    project.write(
        {
            "sql/public/0001_a.sql": migration(1, 2),
            "sql/public/0002_b.sql": migration(2, 3, {2: gated("2.2")}),
        }
    )
    runner = project.start("migrate")
    project.sleeping()
    assert project.advisory_locks() == 1
    sent = time.monotonic()
    runner.send_signal(signum)
    result = project.finish(runner, timeout=10)
    took = time.monotonic() - sent
    # Right after the exit, before the server could notice a closed socket: no statement
    # still running, no advisory lock left (the runner released it itself).
    assert project.advisory_locks() == 0
    assert not project.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
        " AND application_name = 'migrator'",
        (project.db.name,),
    )
    assert result.code == code, result.stderr
    assert took < 5, f"the statement was not cancelled: the runner took {took:.1f}s to exit"
    assert "Traceback" not in result.stderr
    assert f"interrupted ({name})" in result.stderr
    assert "run again to resume" in result.stderr
    assert project.journal() == [(1, "applied", 2, 2), (2, "running", 1, 3)]
    project.assert_exactly_once(rows({1: 2, 2: 1}))
    project.open_gate()
    rerun = project.run("migrate")
    assert rerun.code == 0, rerun.stderr
    assert project.journal() == [(1, "applied", 2, 2), (2, "applied", 3, 3)]
    project.assert_exactly_once(rows({1: 2, 2: 3}))


# 4. Eight runners at once on fifty files.


def test_eight_runners_on_fifty_files_apply_each_once_and_short_waits_exit_5(
    project: Project,
) -> None:
    # The first to get the lock waits at the gate in file 1 until the seven others have read
    # the journal (nothing applied) and queue for the lock; each must read it again after.
    project.write(
        {
            f"sql/public/{v:04d}_f.sql": migration(v, 2, {1: gated("1.1")} if v == 1 else {})
            for v in range(1, 51)
        }
    )
    runners = [project.start("--json", "migrate") for _ in range(8)]
    project.sleeping()
    project.queued(7)
    project.open_gate()
    results = [project.finish(runner, timeout=60) for runner in runners]
    assert [result.code for result in results] == [0] * 8, [r.stderr for r in results]
    applied = [len(json.loads(result.stdout)["applied"]) for result in results]
    assert sum(applied) == 50, applied
    assert project.journal() == [(v, "applied", 2, 2) for v in range(1, 51)]
    project.assert_exactly_once(rows(dict.fromkeys(range(1, 51), 2)))

    # Round two: one runner holds the lock in a slow file; the others give up after 0.2s.
    project.query("UPDATE public.gate SET open = false")
    project.write(
        {
            "sql/public/0051_f.sql": migration(51, 2),
            "sql/public/0052_slow.sql": migration(52, 2, {1: gated("52.1")}),
            "sql/public/0053_f.sql": migration(53, 2),
        }
    )
    runners = [project.start("migrate", MIGRATOR_LOCK_WAIT="0.2") for _ in range(8)]
    holder, _ = project.sleeping(watch=False)

    def ended() -> list[subprocess.Popen[str]]:
        return [runner for runner in runners if runner.poll() is not None]

    project.wait(lambda: len(ended()) == 7, "seven runners to give up", timeout=60, watch=False)
    gave_up = [project.finish(runner) for runner in ended()]
    assert [result.code for result in gave_up] == [5] * 7, [r.stderr for r in gave_up]
    for result in gave_up:
        assert f"the migration lock is held by pid {holder} (migrator" in result.stderr
    project.assert_exactly_once(rows({**dict.fromkeys(range(1, 51), 2), 51: 2}))
    project.open_gate()
    (winner,) = [runner for runner in runners if runner.returncode is None]
    won = project.finish(winner)
    assert won.code == 0, won.stderr
    assert project.journal() == [(v, "applied", 2, 2) for v in range(1, 54)]
    project.assert_exactly_once(rows(dict.fromkeys(range(1, 54), 2)))


# 5. Another session holding a conflicting table lock.


@pytest.fixture
def blocker(project: Project) -> Iterator[psycopg.Connection[Any]]:
    """A session that holds ACCESS EXCLUSIVE on public.target, idle in its transaction; and an
    older one, a decoy, idle in a transaction that only read another table."""
    with (
        psycopg.connect(project.db.url, application_name="reader") as reader,
        psycopg.connect(project.db.url, application_name="blocker") as conn,
    ):
        reader.execute("SELECT count(*) FROM public.gate")
        time.sleep(0.01)
        conn.execute("LOCK TABLE public.target IN ACCESS EXCLUSIVE MODE")
        yield conn
        conn.rollback()
        reader.rollback()


def test_a_table_lock_times_out_retries_with_backoff_then_names_the_blocking_pid(
    project: Project, blocker: psycopg.Connection[Any]
) -> None:
    project.write(
        {
            "sql/public/0001_a.sql": migration(1, 2),
            "sql/public/0002_b.sql": migration(
                2, 3, {2: "INSERT INTO public.target VALUES ('2.2');\n"}
            ),
        }
    )
    started = time.monotonic()
    result = project.run("migrate", MIGRATOR_LOCK_TIMEOUT="100ms", MIGRATOR_LOCK_RETRIES="2")
    took = time.monotonic() - started
    pid = blocker.info.backend_pid
    assert result.code == 1, result.stderr
    assert "chunk 2 hit lock_timeout; retry 1 in 0.5s" in result.stderr
    assert "chunk 2 hit lock_timeout; retry 2 in 1s" in result.stderr
    assert took > 1.5  # the backoff was slept
    message = " ".join(result.stderr.split())
    assert "canceling statement due to lock timeout (retried 2 times)" in message
    assert f"blocked by pid {pid} (blocker, idle in transaction since " in message
    assert "holding AccessExclusiveLock on target)" in message
    # The older reader is named too, but after the session holding the stronger lock.
    assert "; pid " in message and "(reader, idle in transaction since " in message
    assert message.index("(blocker,") < message.index("(reader,")
    assert "Traceback" not in result.stderr
    (error,) = project.query("SELECT error FROM public.__migrations WHERE version = 2")[0]
    assert f"blocked by pid {pid} (blocker, idle in transaction" in error
    assert "55P03" in error
    assert project.journal() == [(1, "applied", 2, 2), (2, "failed", 1, 3)]
    project.assert_exactly_once(rows({1: 2, 2: 1}))
    blocker.rollback()
    assert project.scalar("SELECT count(*) FROM public.target") == 0
    rerun = project.run("migrate")
    assert rerun.code == 0, rerun.stderr
    assert project.journal() == [(1, "applied", 2, 2), (2, "applied", 3, 3)]
    project.assert_exactly_once(["1.1", "1.2", "2.1", "2.3"])
    assert project.query("SELECT id FROM public.target") == [("2.2",)]


@pytest.mark.parametrize("command", ["migrate", "status", "seed"])
def test_a_lock_on_the_journal_table_is_waited_for_boundedly_naming_the_blocker(
    project: Project, command: str
) -> None:
    project.write({"sql/public/0001_a.sql": migration(1, 2), "seeds/1_s.sql": insert("s1")})
    assert project.run("migrate").code == 0
    assert project.run("seed").code == 0
    project.write({"sql/public/0002_b.sql": migration(2, 2), "seeds/2_s.sql": insert("s2")})
    table = "public.__seeds" if command == "seed" else "public.__migrations"
    with psycopg.connect(project.db.url, application_name="holder") as holder:
        holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = project.run(command, MIGRATOR_LOCK_TIMEOUT="200ms", timeout=10)
        took = time.monotonic() - started
        pid = holder.info.backend_pid
    assert result.code == 5, result.stderr
    assert took < 8
    message = " ".join(result.stderr.split())
    assert "the journal is locked by another session: gave up after lock_timeout (200ms)" in (
        message
    )
    assert f"blocked by pid {pid} (holder, idle in transaction since " in message
    assert "Traceback" not in result.stderr
    assert project.journal() == [(1, "applied", 2, 2)]
    project.assert_exactly_once(["s1", *rows({1: 2})])


# 6. The same for seeds.


def seed_journal(project: Project) -> list[tuple[Any, ...]]:
    return project.query("SELECT name, status, runs FROM public.__seeds ORDER BY name")


def test_sigkill_during_a_slow_seed_rolls_it_back_and_the_rerun_runs_it_once(
    project: Project,
) -> None:
    (project.root / "sql").mkdir()
    project.write(
        {
            "seeds/1_first.sql": insert("s1.1"),
            "seeds/2_slow.sql": insert("s2.1")
            + "--> statement-breakpoint\n"
            + gated("s2.2")
            + "--> statement-breakpoint\n"
            + insert("s2.3"),
            "seeds/3_last.py": "def run(conn):\n"
            "    conn.execute(\"INSERT INTO public.applied VALUES ('s3.1')\")\n",
        }
    )
    runner = project.start("seed")
    project.sleeping()
    assert seed_journal(project) == [("1_first", "SUCCESS", 1)]
    project.kill(runner)
    project.wait_gone()
    assert seed_journal(project) == [("1_first", "SUCCESS", 1)]
    project.assert_exactly_once(["s1.1"])  # s2.1 rolled back with the rest of its process
    project.open_gate()
    rerun = project.run("seed")
    assert rerun.code == 0, rerun.stderr
    assert "seeds: 1 skipped, 2 ran" in rerun.stdout
    assert seed_journal(project) == [
        ("1_first", "SUCCESS", 1),
        ("2_slow", "SUCCESS", 1),
        ("3_last", "SUCCESS", 1),
    ]
    project.assert_exactly_once(["s1.1", "s2.1", "s2.2", "s2.3", "s3.1"])


def test_a_seed_blocked_by_a_table_lock_retries_then_fails_naming_the_blocking_pid(
    project: Project, blocker: psycopg.Connection[Any]
) -> None:
    (project.root / "sql").mkdir()
    project.write(
        {
            "seeds/1_locked.sql": insert("s1.1")
            + "--> statement-breakpoint\n"
            + "INSERT INTO public.target VALUES ('s1.2');\n",
            "seeds/2_next.sql": insert("s2.1"),
        }
    )
    result = project.run("seed", MIGRATOR_LOCK_TIMEOUT="100ms", MIGRATOR_LOCK_RETRIES="1")
    pid = blocker.info.backend_pid
    assert result.code == 1, result.stderr
    assert "seed 1_locked hit lock_timeout; retry 1 in 0.5s" in result.stderr
    message = " ".join(result.stderr.split())
    assert "seed process 1_locked failed" in message
    assert f"blocked by pid {pid} (blocker, idle in transaction since " in message
    assert "Traceback" not in result.stderr
    assert seed_journal(project) == [("1_locked", "FAIL", 1)]
    error = project.scalar("SELECT error FROM public.__seeds")
    assert "canceling statement due to lock timeout (retried once)" in error
    assert f"blocked by pid {pid} (blocker" in error
    project.assert_exactly_once([])
    blocker.rollback()
    assert project.scalar("SELECT count(*) FROM public.target") == 0
    rerun = project.run("seed")
    assert rerun.code == 0, rerun.stderr
    assert seed_journal(project) == [("1_locked", "SUCCESS", 2), ("2_next", "SUCCESS", 1)]
    project.assert_exactly_once(["s1.1", "s2.1"])
    assert project.query("SELECT id FROM public.target") == [("s1.2",)]


def test_seed_runs_started_together_run_each_process_once(project: Project) -> None:
    (project.root / "sql").mkdir()
    project.write({f"seeds/{n}_p.sql": insert(f"s{n}") for n in range(2, 9)})
    project.write(
        {
            "seeds/1_p.sql": gated("s1"),
            "seeds/9_py.py": "def run(conn):\n"
            "    conn.execute(\"INSERT INTO public.applied VALUES ('s9')\")\n",
        }
    )
    runners = [project.start("--json", "seed") for _ in range(3)]
    project.sleeping()  # the first holds the lock at the gate until the two others queue
    project.queued(2)
    project.open_gate()
    results = [project.finish(runner) for runner in runners]
    assert [result.code for result in results] == [0, 0, 0], [r.stderr for r in results]
    ran = [
        sum(seed["action"] == "ran" for seed in json.loads(result.stdout)["seeds"])
        for result in results
    ]
    assert sum(ran) == 9, ran
    assert seed_journal(project) == [
        (f"{n}_{'py' if n == 9 else 'p'}", "SUCCESS", 1) for n in range(1, 10)
    ]
    project.assert_exactly_once([f"s{n}" for n in range(1, 10)])


# 7. A migration that releases the runner's lock, or removes its journal row or table.

# A release the file's text does not show (built at run time), so only the journal updates'
# own check can catch it.
RELEASE = "DO $$ BEGIN EXECUTE 'SELECT pg_advisory_' || 'unlock_all()'; {wait} END $$;\n"


def test_a_chunk_that_releases_the_lock_lets_no_chunk_run_twice(project: Project) -> None:
    released = RELEASE.format(wait=WAIT_AT_GATE + " INSERT INTO public.applied VALUES ('1.2');")
    project.write({"sql/public/0001_a.sql": migration(1, 10, {2: released})})
    first = project.start("migrate")
    project.sleeping()  # chunk 2 released the lock and waits at the gate
    assert project.advisory_locks() == 0
    second = project.start("migrate")
    # The second runner gets the lock, reads chunk 1 as done and runs chunk 2 too.
    project.wait(
        lambda: (
            len(
                project.query(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = %s AND wait_event = 'PgSleep'",
                    (project.db.name,),
                )
            )
            == 2
        ),
        "both runners to wait at the gate in chunk 2",
    )
    project.open_gate()
    results = [project.finish(first), project.finish(second)]
    assert [result.code for result in results] == [1, 1], [r.stderr for r in results]
    for result in results:
        assert "chunk 2 of 10 failed: the chunk released the runner's advisory lock" in (
            " ".join(result.stderr.split())
        )
        assert "Traceback" not in result.stderr
    # Neither chunk 2 committed, and nothing after it ran.
    assert project.journal() == [(1, "running", 1, 10)]
    project.assert_exactly_once(rows({1: 1}))
    project.assert_journal_tells_the_truth()
    project.write({"sql/public/0001_a.sql": migration(1, 10)})  # only chunk 2 fixed
    rerun = project.run("migrate")
    assert rerun.code == 0, rerun.stderr
    assert project.journal() == [(1, "applied", 10, 10)]
    project.assert_exactly_once(rows({1: 10}))


@pytest.mark.parametrize(
    "removal",
    [
        "DELETE FROM public.__migrations;\n",
        "TRUNCATE public.__migrations;\n",
        "DROP TABLE public.__migrations;\n",
    ],
    ids=["delete", "truncate", "drop"],
)
def test_a_chunk_that_removes_its_journal_row_rolls_back_and_stops(
    project: Project, removal: str
) -> None:
    project.write(
        {
            "sql/public/0001_a.sql": migration(1, 2),
            "sql/public/0002_b.sql": migration(2, 3, {2: removal}),
            "sql/public/0003_c.sql": migration(3, 2),
        }
    )
    result = project.run("migrate")
    assert result.code == 1, result.stderr
    gone = "dropped the journal table" if "DROP" in removal else "removed this file's journal row"
    assert f"chunk 2 of 3 failed: the chunk {gone}" in result.stderr
    assert "must not" in result.stderr and "Traceback" not in result.stderr
    assert project.journal() == [(1, "applied", 2, 2), (2, "failed", 1, 3)]
    project.assert_exactly_once(rows({1: 2, 2: 1}))
    project.assert_journal_tells_the_truth()
    again = project.run("migrate")  # the same chunk refuses the same way; nothing runs twice
    assert again.code == 1
    assert project.journal() == [(1, "applied", 2, 2), (2, "failed", 1, 3)]
    project.assert_exactly_once(rows({1: 2, 2: 1}))


def test_a_no_transaction_file_that_drops_the_journal_gets_it_back_and_nothing_runs_twice(
    project: Project,
) -> None:
    project.write(
        {
            "sql/public/0001_a.sql": migration(1, 2),
            "sql/public/0002_b.sql": "-- migrator: no-transaction\n"
            + migration(2, 3, {2: "DROP TABLE public.__migrations;\n"}),
            "sql/public/0003_c.sql": migration(3, 2),
        }
    )
    result = project.run("migrate")
    assert result.code == 1, result.stderr
    message = " ".join(result.stderr.split())
    assert "chunk 2 of 3 failed: the chunk dropped the journal table" in message
    assert "its change to the journal stayed" in message
    assert "put back the rows of public.__migrations" in message
    # The drop committed, so chunk 2 is done; the journal was put back with what was known.
    assert project.journal() == [(1, "applied", 2, 2), (2, "failed", 2, 3)]
    project.assert_exactly_once(rows({1: 2, 2: 1}))
    notes = project.query("SELECT note FROM public.__migrations")
    assert all("put back after sql/public/0002_b.sql chunk 2" in note for (note,) in notes)
    rerun = project.run("migrate")  # resumes after the drop: no file runs again from the start
    assert rerun.code == 0, rerun.stderr
    assert project.journal() == [(1, "applied", 2, 2), (2, "applied", 3, 3), (3, "applied", 2, 2)]
    project.assert_exactly_once([*rows({1: 2, 2: 1}), "2.3", *rows({3: 2})])


def test_a_chunk_that_lets_go_of_the_lock_and_takes_it_again_runs_nothing_twice(
    project: Project,
) -> None:
    # The first runner's chunk 1 releases the lock, waits at the gate, then takes the lock again.
    relocked = RELEASE.format(
        wait=WAIT_AT_GATE + " PERFORM pg_advisory_lock(7883946363647717234);"
        " INSERT INTO public.applied VALUES ('1.1');"
    )
    project.write({"sql/public/0001_a.sql": migration(1, 3, {1: relocked})})
    first = project.start("migrate")
    project.sleeping()
    project.write({"sql/public/0001_a.sql": migration(1, 3)})  # the second runner's text
    second = project.run("migrate")  # gets in and applies the whole file
    assert second.code == 0, second.stderr
    project.open_gate()
    result = project.finish(first)
    assert result.code == 1, result.stderr
    assert "another run recorded this chunk meanwhile" in result.stderr
    assert project.journal() == [(1, "applied", 3, 3)]
    project.assert_exactly_once(rows({1: 3}))


def test_a_no_transaction_file_that_empties_its_journal_gets_the_rows_back(
    project: Project,
) -> None:
    project.write(
        {
            "sql/public/0001_a.sql": migration(1, 2),
            "sql/public/0002_b.sql": "-- migrator: no-transaction\n"
            + migration(2, 3, {2: "TRUNCATE public.__migrations;\n"}),
        }
    )
    result = project.run("migrate")
    assert result.code == 1, result.stderr
    assert "its change to the journal stayed. migrator put back" in " ".join(result.stderr.split())
    assert project.journal() == [(1, "applied", 2, 2), (2, "failed", 2, 3)]
    rerun = project.run("migrate")
    assert rerun.code == 0, rerun.stderr
    assert project.journal() == [(1, "applied", 2, 2), (2, "applied", 3, 3)]
    project.assert_exactly_once([*rows({1: 2}), "2.1", "2.3"])


def test_a_migration_that_drops_another_schemas_journal_gets_it_put_back(
    project: Project,
) -> None:
    project.write(
        {"sql/public/0001_a.sql": migration(1, 1), "sql/sales/0005_s.sql": migration(5, 2)}
    )
    assert project.run("migrate").code == 0
    project.write({"sql/public/0002_b.sql": "DROP TABLE sales.__migrations;\n"})
    result = project.run("migrate")
    assert result.code == 1, result.stderr
    assert 'removed rows of the journal "sales"."__migrations"' in result.stderr
    assert project.query("SELECT version, status FROM sales.__migrations") == [(5, "applied")]
    rerun = project.run("migrate")
    assert rerun.code == 0, rerun.stderr
    project.assert_exactly_once(rows({1: 1, 5: 2}))


def test_a_journal_dropped_by_a_later_schema_keeps_the_rows_of_this_run(
    project: Project,
) -> None:
    project.write({"sql/public/0001_a.sql": migration(1, 1)})
    assert project.run("migrate").code == 0
    project.write(
        {
            "sql/public/0002_b.sql": migration(2, 2),  # applied in this run, before sales drops
            "sql/sales/0005_s.sql": "DROP TABLE public.__migrations;\n",
        }
    )
    result = project.run("migrate")
    assert result.code == 1, result.stderr
    assert 'removed rows of the journal "public"."__migrations"' in result.stderr
    assert project.journal() == [(1, "applied", 1, 1), (2, "applied", 2, 2)]
    assert project.run("migrate").code == 0
    project.assert_exactly_once(rows({1: 1, 2: 2}))
