"""`seed` against a real database: SUCCESS/FAIL rows, rollbacks, always-run, --clean, hooks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, Database, cli, subprocess_env, write

LOG = "CREATE TABLE IF NOT EXISTS public.log (entry text);\n"


def seed_rows(database: Database) -> list[tuple[object, ...]]:
    return database.query("SELECT name, status, runs FROM public.__seeds ORDER BY name")


def log(database: Database) -> list[str]:
    return [entry for (entry,) in database.query("SELECT entry FROM public.log ORDER BY entry")]


@pytest.fixture
def project(database: Database, tmp_path: Path) -> Database:
    database.query(LOG)
    (tmp_path / "sql/public").mkdir(parents=True)
    write(
        tmp_path,
        {
            "seeds/1_roles.sql": "INSERT INTO public.log VALUES ('roles');\n",
            "seeds/2_admin.py": '"""Admin."""\n\n\ndef run(conn):\n'
            "    conn.execute(\"INSERT INTO public.log VALUES ('admin')\")\n",
            "seeds/10_refresh.sql": "-- migrator: always-run\n"
            "INSERT INTO public.log VALUES ('refresh');\n",
            "seeds/_helpers.py": "raise RuntimeError('not a process')\n",
            "seeds/README.md": "not a process either\n",
        },
    )
    return database


def test_processes_run_in_order_once_and_always_run_ones_every_time(project: Database) -> None:
    first = cli("seed", url=project.url)
    assert first.exit_code == 0, first.output
    assert first.stderr.splitlines() == [
        line for line in first.stderr.splitlines() if line.startswith("ran ")
    ]
    assert [line.split()[1] for line in first.stderr.splitlines()] == [
        "1_roles",
        "2_admin",
        "10_refresh",
    ]
    second = cli("seed", url=project.url)
    assert second.exit_code == 0, second.output
    assert "seeds: 2 skipped, 1 ran" in second.stdout
    assert log(project) == ["admin", "refresh", "refresh", "roles"]
    assert seed_rows(project) == [
        ("10_refresh", "SUCCESS", 2),
        ("1_roles", "SUCCESS", 1),
        ("2_admin", "SUCCESS", 1),
    ]


def test_a_failing_process_rolls_back_records_fail_and_stops(
    project: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "seeds/2_admin.py": '"""Admin."""\n\n\ndef run(conn):\n'
            "    conn.execute(\"INSERT INTO public.log VALUES ('half')\")\n"
            "    raise ValueError('no admin email')\n"
        },
    )
    failed = cli("seed", url=project.url)
    assert failed.exit_code == 1
    assert "seed process 2_admin failed" in failed.stderr
    assert "seeds/2_admin.py:6: ValueError: no admin email" in failed.stderr
    assert log(project) == ["roles"]
    assert seed_rows(project) == [("1_roles", "SUCCESS", 1), ("2_admin", "FAIL", 1)]
    error = project.scalar("SELECT error FROM public.__seeds WHERE name = '2_admin'")
    assert "ValueError: no admin email" in error

    status = cli("status", url=project.url)
    assert status.exit_code == 0
    assert re.search(r"^2_admin +FAIL +1 .*ValueError: no admin email$", status.stdout, re.M)

    write(
        tmp_path,
        {
            "seeds/2_admin.py": '"""Admin."""\n\n\ndef run(conn):\n'
            "    conn.execute(\"INSERT INTO public.log VALUES ('admin')\")\n"
        },
    )
    fixed = cli("seed", url=project.url)
    assert fixed.exit_code == 0, fixed.output
    assert "skipped 1_roles" in fixed.stderr
    assert log(project) == ["admin", "refresh", "roles"]
    assert seed_rows(project) == [
        ("10_refresh", "SUCCESS", 1),
        ("1_roles", "SUCCESS", 1),
        ("2_admin", "SUCCESS", 2),
    ]


def test_a_failing_sql_process_names_its_line_and_column(project: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "seeds/1_roles.sql": "INSERT INTO public.log VALUES ('roles');\n"
            "--> statement-breakpoint\nINSERT INTO public.nope VALUES (1);\n"
        },
    )
    failed = cli("seed", url=project.url)
    assert failed.exit_code == 1
    assert "seeds/1_roles.sql:3:13: chunk 2 of 2 failed" in failed.stderr
    assert log(project) == []
    assert seed_rows(project) == [("1_roles", "FAIL", 1)]


def test_keep_going_runs_the_rest_and_still_exits_1(project: Database, tmp_path: Path) -> None:
    write(tmp_path, {"seeds/1_roles.sql": "SELECT 1/0;\n"})
    result = cli("seed", "--keep-going", url=project.url)
    assert result.exit_code == 1
    assert log(project) == ["admin", "refresh"]
    assert [row[:2] for row in seed_rows(project)] == [
        ("10_refresh", "SUCCESS"),
        ("1_roles", "FAIL"),
        ("2_admin", "SUCCESS"),
    ]


def test_only_runs_the_named_processes_whatever_their_status(project: Database) -> None:
    assert cli("seed", url=project.url).exit_code == 0
    again = cli("seed", "--only", "1_roles", url=project.url)
    assert again.exit_code == 0, again.output
    assert log(project) == ["admin", "refresh", "roles", "roles"]
    unknown = cli("seed", "--only", "nope", url=project.url)
    assert unknown.exit_code == 2 and "no seed process named nope" in unknown.stderr


def test_clean_runs_clean_functions_last_first_and_hooks_in_order(
    database: Database, tmp_path: Path
) -> None:
    database.query(LOG)
    database.query("CREATE TABLE public.events (n serial, event text)")
    module = (
        '"""{name}."""\n\n\ndef run(conn):\n'
        "    conn.execute(\"INSERT INTO public.events (event) VALUES ('run {name}')\")\n\n\n"
        "def clean(conn):\n"
        "    conn.execute(\"INSERT INTO public.events (event) VALUES ('clean {name}')\")\n"
    )
    hooks = "\n".join(
        f"def {hook}(conn, *args):\n"
        f"    conn.execute(\"INSERT INTO public.events (event) VALUES ('{hook}' || %s)\", "
        "(''.join(' ' + str(a).split(':')[0] for a in args),))\n"
        for hook in (
            "before_cleanup",
            "after_cleanup",
            "before_migration",
            "after_migration",
            "on_success",
            "on_error",
        )
    )
    write(
        tmp_path,
        {
            "seeds/1_a.py": module.format(name="a"),
            "seeds/group/1_b.py": module.format(name="b"),
            "seeds/_hooks.py": hooks,
        },
    )
    assert cli("seed", url=database.url).exit_code == 0
    database.query("TRUNCATE public.events")
    result = cli("seed", "--clean", url=database.url)
    assert result.exit_code == 0, result.output
    events = [event for (event,) in database.query("SELECT event FROM public.events ORDER BY n")]
    assert events == [
        "before_cleanup",
        "clean b",
        "clean a",
        "after_cleanup",
        "before_migration",
        "run a",
        "on_success 1_a",
        "run b",
        "on_success group/1_b",
        "after_migration",
    ]


def test_a_failing_hook_is_reported_like_a_failing_process(
    project: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"seeds/_hooks.py": "def before_migration(conn):\n    raise KeyError('x')\n"})
    result = cli("seed", url=project.url)
    assert result.exit_code == 1
    assert "hook before_migration failed: KeyError" in result.stderr
    assert log(project) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("def run(conn)\n    pass\n", "seeds/5_bad.py:1: ", id="a syntax error"),
        pytest.param(
            "import os\n\nos.environ['NOPE_NOT_SET']\n",
            "seeds/5_bad.py:3: KeyError: 'NOPE_NOT_SET'",
            id="an error while importing",
        ),
        pytest.param(
            "def setup(conn):\n    pass\n", "seeds/5_bad.py: has no run(conn)", id="no run"
        ),
    ],
)
def test_bad_modules_are_refused_before_anything_runs(
    project: Database, tmp_path: Path, content: str, expected: str
) -> None:
    write(tmp_path, {"seeds/5_bad.py": content})
    result = cli("seed", url=project.url)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert project.scalar("SELECT to_regclass('public.__seeds')") is None
    assert log(project) == []


def test_a_changed_process_is_shown_and_runs_again_only_with_only(
    project: Database, tmp_path: Path
) -> None:
    assert cli("seed", url=project.url).exit_code == 0
    write(tmp_path, {"seeds/1_roles.sql": "INSERT INTO public.log VALUES ('roles v2');\n"})
    status = cli("status", url=project.url)
    assert re.search(r"^1_roles +changed +1 ", status.stdout, re.M)
    assert cli("seed", url=project.url).exit_code == 0
    assert "roles v2" not in log(project)
    assert cli("seed", "--only", "1_roles", url=project.url).exit_code == 0
    assert "roles v2" in log(project)


def test_two_seed_runs_at_once_run_each_process_once(project: Database, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "seeds/3_slow.sql": "SELECT pg_sleep(0.3);\n--> statement-breakpoint\n"
            "INSERT INTO public.log VALUES ('slow');\n"
        },
    )
    runs = [
        subprocess.Popen(
            [PYTHON, "-m", "migrator", "seed"],
            cwd=tmp_path,
            env=subprocess_env(project.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    assert [run.wait(timeout=60) for run in runs] == [0, 0]
    assert log(project).count("slow") == 1
    assert log(project).count("admin") == 1
    assert log(project).count("refresh") == 2


def test_the_example_project_seeds_once_and_then_only_refreshes(
    database: Database, tmp_path: Path
) -> None:
    from conftest import REPO

    shutil.copytree(REPO / "sql", tmp_path / "sql")
    shutil.copytree(REPO / "seeds", tmp_path / "seeds")
    assert cli("migrate", url=database.url).exit_code == 0
    first = cli("seed", url=database.url)
    assert first.exit_code == 0, first.output
    assert "seeds: 5 ran" in first.stdout
    assert database.scalar("SELECT count(*) FROM public.account_role WHERE role = 'admin'") == 1
    assert database.scalar("SELECT count(*) FROM pricing.current_price_cache") == 3
    second = cli("seed", url=database.url)
    assert "seeds: 4 skipped, 1 ran" in second.stdout
    assert seed_rows(database)[-1] == ("catalog/2_refresh_price_cache", "SUCCESS", 2)


@pytest.mark.parametrize("code", ["0", "3"])
def test_a_process_that_calls_sys_exit_fails_is_rolled_back_and_exits_1(
    project: Database, tmp_path: Path, code: str
) -> None:
    write(
        tmp_path,
        {
            "seeds/2_admin.py": "import sys\n\n\ndef run(conn):\n"
            "    conn.execute(\"INSERT INTO public.log VALUES ('admin')\")\n"
            f"    sys.exit({code})\n"
        },
    )
    result = cli("seed", url=project.url)
    assert result.exit_code == 1, result.output
    assert f"SystemExit: {code}" in result.stderr
    assert log(project) == ["roles"]  # its insert rolled back, the later processes not run
    assert seed_rows(project) == [("1_roles", "SUCCESS", 1), ("2_admin", "FAIL", 1)]


def test_sys_exit_at_import_is_a_bad_file(project: Database, tmp_path: Path) -> None:
    write(tmp_path, {"seeds/2_admin.py": "import sys\n\nsys.exit(0)\n"})
    result = cli("seed", url=project.url)
    assert result.exit_code == 2, result.output
    assert "seeds/2_admin.py:3: SystemExit: 0" in result.stderr
    assert log(project) == [] and project.scalar("SELECT to_regclass('public.__seeds')") is None


@pytest.mark.parametrize("ending", ["COMMIT", "COMMIT; BEGIN", "COMMIT; BEGIN; SELECT 1/0"])
def test_a_process_that_commits_the_runners_transaction_is_told_so(
    project: Database, tmp_path: Path, ending: str
) -> None:
    write(
        tmp_path,
        {
            "seeds/2_admin.py": "def run(conn):\n"
            "    conn.execute(\"INSERT INTO public.log VALUES ('admin')\")\n"
            f"    try:\n        conn.execute({ending!r})\n    finally:\n"
            "        raise ValueError('after the commit')\n"
        },
    )
    result = cli("seed", url=project.url)
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "ended the runner's transaction itself" in message
    assert "Some of its writes are committed" in message and "were rolled back" not in message
    assert log(project) == ["admin", "roles"]  # committed by the process itself
    assert seed_rows(project) == [("1_roles", "SUCCESS", 1), ("2_admin", "FAIL", 1)]

    write(tmp_path, {"seeds/2_admin.py": 'def run(conn):\n    conn.execute("COMMIT")\n'})
    quiet = cli("seed", "--only", "2_admin", url=project.url)
    assert quiet.exit_code == 1, quiet.output  # no SUCCESS apart from what it committed
    assert seed_rows(project) == [("1_roles", "SUCCESS", 1), ("2_admin", "FAIL", 2)]


def test_two_processes_of_one_name_a_fifo_and_near_miss_names_are_refused(
    project: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "seeds/2_admin.sql": "INSERT INTO public.log VALUES ('twice');\n",
            "seeds/3_extra.SQL": "SELECT 1;\n",
        },
    )
    os.mkfifo(tmp_path / "seeds" / "4_pipe.sql")
    for command in (("seed",), ("status",)):
        result = cli(*command, url=project.url)  # a FIFO must not make either wait forever
        assert result.exit_code == 2, result.output
        assert "seeds/2_admin.py and seeds/2_admin.sql: two processes named 2_admin" in (
            result.stderr
        ) or "seeds/2_admin.sql and seeds/2_admin.py: two processes named 2_admin" in (
            result.stderr
        )
        assert "seeds/3_extra.SQL: named like a migration, but it does not end in .sql" in (
            result.stderr
        )
        assert "seeds/4_pipe.sql: not a regular file" in result.stderr
    assert log(project) == [] and project.scalar("SELECT to_regclass('public.__seeds')") is None


def test_a_file_name_that_is_not_utf8_is_refused_naming_it(
    project: Database, tmp_path: Path
) -> None:
    (tmp_path / "seeds").joinpath(os.fsdecode(b"5_caf\xe9.sql")).write_text("SELECT 1;\n")
    (tmp_path / "sql" / "public").joinpath(os.fsdecode(b"0001_caf\xe9.sql")).write_text("x")
    seeded = cli("seed", url=project.url)
    assert seeded.exit_code == 2, seeded.output
    assert "the file name is not UTF-8" in seeded.stderr and "Traceback" not in seeded.output
    migrated = cli("migrate", url=project.url)
    assert migrated.exit_code == 2, migrated.output
    assert "sql/public/0001_caf\\udce9.sql: the file name is not UTF-8" in migrated.stderr
    assert log(project) == [] and project.scalar("SELECT to_regclass('public.__seeds')") is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("seeds/3_x.PY", "seeds/3_x.PY: named like a seed process, but it does not end in .py"),
        ("seeds/d\udcff/1_a.sql", "seeds/d\\udcff: the folder name is not UTF-8"),
    ],
    ids=["upper-case .PY", "a folder name that is not UTF-8"],
)
def test_near_miss_seed_names_are_refused_before_anything_runs(
    project: Database, tmp_path: Path, name: str, problem: str
) -> None:
    write(tmp_path, {name: "SELECT 1;\n"})
    result = cli("seed", url=project.url)
    assert result.exit_code == 2, result.output
    assert problem in result.stderr
    assert log(project) == [] and project.scalar("SELECT to_regclass('public.__seeds')") is None
