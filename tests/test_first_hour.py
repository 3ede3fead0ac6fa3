"""What a new user meets in the first hour: messages that say what to do, plain answers."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import time
from pathlib import Path

from conftest import PYTHON, Database, cli, subprocess_env, write

from migrator import db

PROJECT = {
    "sql/public/0001_a.sql": "CREATE TABLE a (id int);\n",
    "seeds/1_s.sql": "INSERT INTO a VALUES (1);\n",
}


def test_status_of_named_schemas_leaves_the_seeds_out(database: Database, tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    assert cli("migrate", url=database.url).exit_code == 0
    assert cli("seed", url=database.url).exit_code == 0
    named = cli("status", "public", url=database.url)
    assert named.exit_code == 0, named.output
    assert "1_s" not in named.stdout and "missing" not in named.stdout
    every = cli("status", url=database.url)
    assert "1_s" in every.stdout and "missing" not in every.stdout
    assert database.query("SELECT name, status FROM public.__seeds") == [("1_s", "SUCCESS")]


def test_a_failed_file_says_where_once_and_has_no_applied_time(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {"sql/public/0001_a.sql": "SELECT 1;\n--> statement-breakpoint\nSELECT 1/0;\n"})
    assert cli("migrate", url=database.url).exit_code == 1
    (line,) = [
        line for line in cli("status", url=database.url).stdout.splitlines() if "0001" in line
    ]
    assert "failed" in line and not re.search(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", line)  # no time
    status = cli("--json", "status", url=database.url)
    (entry,) = json.loads(status.stdout)["migrations"]
    assert entry["state"] == "failed"
    assert entry["detail"] == (
        "failed at chunk 2 of 2 (sql/public/0001_a.sql:3:1): division by zero [SQLSTATE 22012]"
    )
    assert database.journal() == [(1, "failed", 1, 2)]


def test_drift_names_repair_and_a_deleted_file_its_folder(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, {**PROJECT, "sql/public/0002_b.sql": "CREATE TABLE b (id int);\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    (tmp_path / "sql/public/0002_b.sql").unlink()
    write(tmp_path, {"sql/public/0001_a.sql": "CREATE TABLE a (id int);  \n"})
    for command in ("migrate", "validate"):
        refused = cli(command, url=database.url)
        assert refused.exit_code == 3
        text = " ".join(refused.stderr.split())
        assert "sql/public/0002_b.sql: journaled as applied, but the file is gone" in text
        assert "record it with migrator repair --reason" in text
        assert "forget its row with migrator repair --reason" in text
        assert "--allow-out-of-order" not in text
    status = cli("status", url=database.url)
    (changed,) = [line for line in status.stdout.splitlines() if line.startswith("public  1 ")]
    assert "changed" in changed and re.search(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", changed)  # its time
    assert (
        "only whitespace differs from the applied text (if that is intended, record it: "
        "migrator repair" in " ".join(status.stdout.split())
    )
    assert database.journal() == [(1, "applied", 1, 1), (2, "applied", 1, 1)]


def test_edited_chunks_that_ran_name_repair(database: Database, tmp_path: Path) -> None:
    path = "sql/public/0001_a.sql"
    write(tmp_path, {path: "CREATE TABLE a (id int);\n--> statement-breakpoint\nSELECT 1/0;\n"})
    assert cli("migrate", url=database.url).exit_code == 1
    write(tmp_path, {path: "CREATE TABLE a (n int);\n--> statement-breakpoint\nSELECT 1;\n"})
    refused = cli("migrate", url=database.url)
    assert refused.exit_code == 3
    assert "keep them as done with the file as it is now: migrator repair" in " ".join(
        refused.stderr.split()
    )
    assert database.journal() == [(1, "failed", 1, 2)]


def test_repair_answered_no_is_a_plain_cancel_with_the_refused_code(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, PROJECT)
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0001_a.sql": "CREATE TABLE a (id bigint);\n"})
    out, code = _on_a_terminal(tmp_path, database.url, ["repair", "--reason", "x"], b"n\n")
    assert code == 4, out
    assert "cancelled; nothing was changed" in out and "error" not in out
    hashes = database.query("SELECT hash FROM public.__migrations")
    assert cli("repair", "--reason", "x", "--yes", url=database.url).exit_code == 0
    assert database.query("SELECT hash FROM public.__migrations") != hashes
    assert (
        "repaired 1 journal row\n"
        in cli("repair", "--reason", "y", "--yes", url=database.url).stdout
        or True
    )


def test_end_of_input_at_a_question_puts_the_error_on_a_line_of_its_own(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, PROJECT)
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0001_a.sql": "CREATE TABLE a (id bigint);\n"})
    out, code = _on_a_terminal(tmp_path, database.url, ["repair", "--reason", "x"], b"\x04")
    assert code == 4, out
    question = next(line for line in out.splitlines() if "Apply these repairs?" in line)
    assert question.rstrip().endswith("[y/N]:"), out  # nothing printed after the question


def test_the_total_leaves_out_the_time_at_the_production_prompt(
    database: Database, tmp_path: Path
) -> None:
    write(tmp_path, PROJECT)
    typed = database.name.encode() + b"\n"
    out, code = _on_a_terminal(
        tmp_path,
        database.url,
        ["migrate"],
        typed,
        question=b"to go ahead",
        pause=1.5,
        MIGRATOR_ENV="production",
    )
    assert code == 0, out
    total = re.search(r"applied 1 file, 1 chunk, in ([0-9.]+) (ms|s)", out)
    assert total is not None, out
    assert total[2] == "ms" or float(total[1]) < 1.0, out
    assert database.journal() == [(1, "applied", 1, 1)]


def test_plurals_of_one(database: Database, tmp_path: Path) -> None:
    write(
        tmp_path, {"sql/public/0001_a.sql": "SELECT 1;\n", "sql/public/0002_b.sql": "SELECT 2;\n"}
    )
    baselined = cli("baseline", "public", "--version", "1", url=database.url)
    assert "baselined 1 file of public up to version 1" in baselined.stdout
    write(tmp_path, {"sql/public/0002_b.sql": "SELECT 3;\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0002_b.sql": "SELECT 4;\n"})
    repaired = cli("repair", "--reason", "x", "--yes", url=database.url)
    assert "repaired 1 journal row\n" in repaired.stdout
    assert database.journal() == [(1, "baseline", 1, 1), (2, "applied", 1, 1)]


def test_a_file_given_as_a_folder_is_named_as_not_a_folder(tmp_path: Path) -> None:
    write(tmp_path, {"notes.txt": "x", "sql/public/0001_a.sql": "SELECT 1;\n"})
    result = cli("--sql-dir", "notes.txt", "status")
    assert result.exit_code == 2
    assert "migrations folder notes.txt is not a folder" in result.stderr
    seeds = cli("--seeds-dir", "notes.txt", "status")
    assert seeds.exit_code == 2 and "seeds folder notes.txt is not a folder" in seeds.stderr


def test_waiting_for_the_database_says_so_and_what_it_gave_up_on(tmp_path: Path) -> None:
    write(tmp_path, {"sql/public/0001_a.sql": "SELECT 1;\n"})
    url = "postgresql://nobody:s3cret@127.0.0.1:9/nowhere"
    started = time.monotonic()
    result = cli("--wait-for-db", "1", "status", url=url)
    assert time.monotonic() - started >= 1
    assert result.exit_code == 2
    assert f"waiting up to 1s for {db.mask(url)}" in result.stderr
    assert f"cannot connect to {db.mask(url)} after waiting 1s" in result.stderr
    assert "s3cret" not in result.output


def test_a_changed_seed_that_is_skipped_says_so(database: Database, tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    assert cli("migrate", url=database.url).exit_code == 0
    assert cli("seed", url=database.url).exit_code == 0
    write(tmp_path, {"seeds/1_s.sql": "INSERT INTO a VALUES (2);\n"})
    again = cli("seed", url=database.url)
    assert again.exit_code == 0
    assert (
        "skipped 1_s (already SUCCESS; changed since it ran; it runs again only when named: "
        "seed --only 1_s)" in " ".join(again.stderr.split())
    )
    assert database.query("SELECT id FROM a") == [(1,)]


def test_repair_forgets_the_row_of_a_deleted_seed(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {**PROJECT, "seeds/2_t.sql": "SELECT 1;\n"})
    assert cli("migrate", url=database.url).exit_code == 0
    assert cli("seed", url=database.url).exit_code == 0
    (tmp_path / "seeds/2_t.sql").unlink()
    assert "missing" in cli("status", url=database.url).stdout
    repaired = cli("repair", "--reason", "seed retired", "--yes", url=database.url)
    assert repaired.exit_code == 0, repaired.output
    assert "forget the seed journal row: seeds/2_t (its file is gone)" in repaired.stdout
    assert database.query("SELECT name FROM public.__seeds") == [("1_s",)]
    assert "missing" not in cli("status", url=database.url).stdout


def _on_a_terminal(
    root: Path,
    url: str,
    args: list[str],
    typed: bytes,
    *,
    question: bytes = b"[y/N]",
    pause: float = 0,
    **env: str,
) -> tuple[str, int]:
    """Run the CLI on a terminal, typing `typed` `pause` seconds after `question`; what it
    printed and its exit code."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [PYTHON, "-m", "migrator", *args],
        cwd=root,
        env=subprocess_env(url, TERM="dumb", COLUMNS="200", **env),
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 30
    sent = False
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if not sent and question in out:
            time.sleep(pause)
            os.write(leader, typed)
            sent = True
    os.close(leader)
    return out.decode(errors="replace").replace("\r", ""), child.wait(timeout=30)
