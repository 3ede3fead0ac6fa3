"""The advisory lock: runners started together apply each file once; a held lock means exit 5."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
from conftest import PYTHON, REPO, Database, cli, subprocess_env, write

from migrator.db import LOCK_KEY


def test_two_runners_started_together_both_succeed_and_apply_each_file_once(
    database: Database, tmp_path: Path
) -> None:
    database.query("CREATE TABLE public.runs (file int)")
    write(
        tmp_path,
        {
            f"sql/public/{n:04d}_step.sql": f"INSERT INTO public.runs VALUES ({n});\n"
            "--> statement-breakpoint\nSELECT pg_sleep(0.05);\n"
            for n in range(1, 11)
        },
    )
    env = subprocess_env(database.url)
    runners = [
        subprocess.Popen(
            [PYTHON, "-m", "migrator", "migrate"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(runner.wait(timeout=60), runner.communicate()) for runner in runners]
    assert [code for code, _ in results] == [0, 0], results
    assert database.query("SELECT file, count(*) FROM public.runs GROUP BY file ORDER BY file") == [
        (n, 1) for n in range(1, 11)
    ]
    assert database.journal() == [(n, "applied", 2, 2) for n in range(1, 11)]
    assert sum("nothing to do" in out for _, (out, _) in results) == 1


def documented_key() -> int:
    """The advisory-lock key the README tells other tools to take."""
    (key,) = set(re.findall(r"pg_advisory_lock\(([0-9]+)\)", (REPO / "README.md").read_text()))
    return int(key)


def test_the_documented_key_is_the_bytes_migrator_and_the_one_taken() -> None:
    assert documented_key() == int.from_bytes(b"migrator", "big") == LOCK_KEY


def test_a_held_lock_makes_the_runner_wait_name_the_holder_and_exit_5(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0001_a.sql": "CREATE TABLE a (id int);\n"})
    with psycopg.connect(database.url, autocommit=True, application_name="deployer") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (documented_key(),))  # as another tool would
        result = cli("migrate", url=database.url, env={"MIGRATOR_LOCK_WAIT": "0.5"})
        holder_pid = holder.info.backend_pid
    assert result.exit_code == 5
    assert f"held by pid {holder_pid} (deployer" in result.stderr
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None
    assert database.scalar("SELECT to_regclass('a')") is None


def test_the_lock_is_released_after_a_run(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {"sql/public/0001_a.sql": "SELECT 1;\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    in_this_database = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    assert database.scalar(in_this_database) == 0
    with psycopg.connect(database.url, autocommit=True) as other:
        assert other.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone() == (True,)
