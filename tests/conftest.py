"""A real PostgreSQL for every test: MIGRATOR_TEST_DATABASE_URL, else 127.0.0.1:5432, else
the embedded server (always, with MIGRATOR_TEST_SERVER=embedded); each test that asks for
`database` gets a fresh database of its own."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner

from migrator.cli import app

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"
REPO = Path(__file__).resolve().parent.parent
SCRUBBED = ("DATABASE_URL", "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


def _answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An admin URL of a running server; never skipped for want of one."""
    url = os.environ.get("MIGRATOR_TEST_DATABASE_URL")
    embedded_only = os.environ.get("MIGRATOR_TEST_SERVER") == "embedded"
    if url and not embedded_only:
        yield url
    elif not embedded_only and _answers(LOCAL):
        yield LOCAL
    else:
        import tempfile

        import pgserver

        # Not under pytest's basetemp: another pytest run's clean-up could delete it mid-run.
        folder = Path(tempfile.mkdtemp(prefix="migrator-test-pg-"))
        server = pgserver.get_server(folder / "data", cleanup_mode="delete")
        yield server.get_uri()
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def pytest_report_header() -> str:
    """Which server the database tests run against."""
    if os.environ.get("MIGRATOR_TEST_SERVER") == "embedded":
        return "PostgreSQL: the embedded server (pgserver)"
    if os.environ.get("MIGRATOR_TEST_DATABASE_URL"):
        return "PostgreSQL: MIGRATOR_TEST_DATABASE_URL"
    return f"PostgreSQL: {LOCAL if _answers(LOCAL) else 'the embedded server (pgserver)'}"


@dataclass
class Database:
    """A fresh database: its URL and a helper to query it."""

    url: str
    name: str

    def query(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(query, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def scalar(self, query: str, params: Any = None) -> Any:
        rows = self.query(query, params)
        return rows[0][0] if rows else None

    def journal(self, schema: str = "public") -> list[tuple[Any, ...]]:
        """(version, status, chunks_done, chunks_total) of every journal row."""
        return self.query(
            f'SELECT version, status, chunks_done, chunks_total FROM "{schema}"."__migrations"'
            " ORDER BY version"
        )


@pytest.fixture
def database(server_url: str) -> Iterator[Database]:
    """A database of this test's own, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    yield Database(make_conninfo(server_url, dbname=name), name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting leaks in from the shell; every test works in a folder of its own."""
    for name in list(os.environ):
        if name.startswith("MIGRATOR_") or name in SCRUBBED:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(root: Path, files: dict[str, str | bytes]) -> None:
    """Write files under root: {"sql/public/0001_x.sql": "..."}."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(*args: str, url: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process (typer's CliRunner), with the database URL in the environment."""
    environment = dict(env or {})
    if url is not None:
        environment["MIGRATOR_DATABASE_URL"] = url
    result = CliRunner().invoke(app, list(args), env=environment, catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def subprocess_env(url: str, **extra: str) -> dict[str, str]:
    """The environment for `python -m migrator` in a child process."""
    environment = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    environment.update(MIGRATOR_DATABASE_URL=url, PYTHONPATH=str(REPO), **extra)
    return environment


PYTHON = sys.executable
