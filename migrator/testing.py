"""pytest support: each test gets a fresh database migrated (optionally seeded) from a project.

In a project's conftest.py::

    from pathlib import Path

    from migrator.testing import migrated_database

    database = migrated_database(Path(__file__).parent, seed=True)

A test that asks for `database` gets a `MigratedDatabase` (its `url`, `name` and what migrate
and seed did) on a database of its own, dropped afterwards. The project folder's own settings
apply (its pyproject.toml, .env files, sql/ and seeds/ or the folders they name), as if
migrator ran there. The server is `server_url`, else MIGRATOR_TEST_DATABASE_URL, else an
embedded PostgreSQL started once per test session.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.model import MigrateResult, SeedResult

SERVER_VARIABLE = "MIGRATOR_TEST_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class MigratedDatabase:
    """A database of a test's own: where it is, and what migrate (and seed) did to it."""

    url: str
    name: str
    migrated: MigrateResult
    seeded: SeedResult | None = None


def migrated_database(
    project: str | os.PathLike[str] = ".",
    *,
    server_url: str | None = None,
    seed: bool = False,
    scope: str = "function",
    **settings: Any,
) -> Any:
    """A pytest fixture giving each test (or each `scope`) a fresh database migrated from
    `project`'s sql/ (and seeded from its seeds/ with `seed`); `settings` as for migrate."""
    import pytest

    from migrator.errors import MigratorError

    root = Path(project).resolve()  # now: the fixture runs later, in another working folder

    @pytest.fixture(scope=scope)  # type: ignore[call-overload, untyped-decorator]
    def fixture() -> Iterator[MigratedDatabase]:
        try:
            with fresh_database(root, server_url=server_url, seed=seed, **settings) as database:
                yield database
        except MigratorError as error:  # the reason and where, not migrator's traceback
            pytest.fail(_describe(error), pytrace=False)

    return fixture


def _describe(error: Exception) -> str:
    from migrator.errors import MigrationFailed

    lines = [f"{type(error).__name__}: {error}"]
    if isinstance(error, MigrationFailed):
        lines += [f"SQLSTATE {error.sqlstate}"] if error.sqlstate else []
        lines += [error.excerpt] if error.excerpt else []
    if hint := getattr(error, "hint", ""):
        lines.append(f"hint: {hint}")
    return "\n".join(lines)


@contextmanager
def fresh_database(
    project: str | os.PathLike[str] = ".",
    *,
    server_url: str | None = None,
    seed: bool = False,
    **settings: Any,
) -> Iterator[MigratedDatabase]:
    """A new database on the server, migrated (and seeded) from `project` with its own
    settings, dropped on exit."""
    import migrator

    admin = server_url or os.environ.get(SERVER_VARIABLE) or _embedded_server()
    name = f"migrator_test_{uuid.uuid4().hex[:12]}"
    url = _create(admin, name)
    try:
        values = {"database_url": url, "env": "development", **settings}
        with _working_folder(Path(project)):
            migrated = migrator.migrate(**values)
            seeded = migrator.seed(**values) if seed else None
        yield MigratedDatabase(url, name, migrated, seeded)
    finally:
        _drop(admin, name)


@contextmanager
def _working_folder(folder: Path) -> Iterator[None]:
    """Run in `folder`, where the project's settings and folders are found, then come back."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _create(admin: str, name: str) -> str:
    """Create the database; its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _url(admin, name)


def _url(admin: str, dbname: str) -> str:
    """A postgresql:// URL for `dbname` on the server `admin` names (a URL or key=value)."""
    from urllib.parse import quote, urlencode

    from psycopg.conninfo import conninfo_to_dict

    parts = {key: str(value) for key, value in conninfo_to_dict(admin).items() if value}
    user = quote(parts.pop("user", ""), safe="")
    password = parts.pop("password", "")
    secret = f":{quote(password, safe='')}" if password else ""
    login = f"{user}{secret}@" if user or secret else ""
    host = parts.pop("host", "")
    port = parts.pop("port", "")
    parts.pop("dbname", None)
    if host.startswith("/"):  # a socket folder goes in the query
        parts = {"host": host, **parts}
        host = ""
    where = f"{host}:{port}" if port and host else host
    if port and not host:
        parts["port"] = port
    query = f"?{urlencode(parts)}" if parts else ""
    return f"postgresql://{login}{where}/{quote(dbname, safe='')}{query}"


def _drop(admin: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.info.server_version >= 130000:
            drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
        else:  # no FORCE before 13: end the sessions still open on it first
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            drop = "DROP DATABASE IF EXISTS {}"
        conn.execute(sql.SQL(drop).format(sql.Identifier(name)))


_SERVER: list[str] = []  # the embedded server's URL, once started


def _embedded_server() -> str:
    """The URL of an embedded PostgreSQL for this process, started on first use."""
    if not _SERVER:
        from pgserver import get_server  # type: ignore[attr-defined]

        folder = Path(tempfile.mkdtemp(prefix="migrator-testing-"))
        server = get_server(folder / "data", cleanup_mode="delete")
        cleanup: Callable[[], None] = server.cleanup
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        atexit.register(cleanup)
        _SERVER.append(server.get_uri())
    return _SERVER[0]
