"""All SQL on the seed journal, public."__seeds", composed with psycopg.sql."""

from __future__ import annotations

from psycopg import sql

from migrator import db
from migrator.db import Connection
from migrator.errors import ConfigError
from migrator.journal import as_session_user, check_shape
from migrator.model import SeedFile, SeedRow, SeedStatus

_SHAPE = {
    "name": "S",
    "status": "S",
    "hash": "S",
    "always_run": "B",
    "runs": "N",
    "error": "S",
    "started_at": "D",
    "finished_at": "D",
    "duration_ms": "N",
    "applied_by": "S",
}
_CREATE_SEEDS = """
CREATE TABLE {table} (
    name text PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('SUCCESS', 'FAIL')),
    hash text NOT NULL,
    always_run boolean NOT NULL DEFAULT false,
    runs integer NOT NULL DEFAULT 0,
    error text,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    duration_ms bigint,
    applied_by text NOT NULL DEFAULT current_user
)"""


def read(conn: Connection, table: str) -> dict[str, SeedRow] | None:
    """Every row of public."<table>" by process name; None when there is no seed journal yet."""
    qualified = sql.Identifier("public", table).as_string(conn)
    extra = check_shape(conn, qualified, _SHAPE, key="name", what="seed journal")
    if extra is None:
        return None
    required = [column for column, not_null in extra.items() if not_null]
    if required:
        raise ConfigError(
            f"seed journal {qualified} has NOT NULL columns without a default that migrator "
            f"does not fill: {', '.join(required)}",
            hint="A newer migrator may have written it: upgrade migrator. Or drop the columns.",
        )
    query = sql.SQL(
        "SELECT name, status, hash, always_run, runs, error, finished_at, duration_ms FROM {}"
    ).format(sql.Identifier("public", table))
    rows = {}
    for row in conn.execute(query):
        try:
            status = SeedStatus(row[1])
        except ValueError:
            raise ConfigError(
                f"seed journal {qualified} holds status '{row[1]}' for {row[0]}, "
                "which this migrator does not know",
                hint="A newer migrator wrote it: upgrade migrator.",
            ) from None
        rows[row[0]] = SeedRow(row[0], status, row[2], row[3], row[4], row[5], row[6], row[7])
    return rows


def ensure(conn: Connection, table: str) -> None:
    """Create the seed journal in public."""
    conn.execute(sql.SQL(_CREATE_SEEDS).format(table=sql.Identifier("public", table)))


def record(
    conn: Connection,
    table: str,
    process: SeedFile,
    status: SeedStatus,
    *,
    always_run: bool,
    duration_ms: int,
    error: str | None = None,
) -> None:
    """Record one run of a seed process: SUCCESS or FAIL, its hash, and one more run."""
    query = sql.SQL(
        "INSERT INTO {table} AS s (name, status, hash, always_run, runs, error, started_at,"
        " finished_at, duration_ms, applied_by)"
        " VALUES (%(name)s, %(status)s, %(hash)s, %(always_run)s, 1, %(error)s,"
        " clock_timestamp() - %(ms)s * interval '1 millisecond', clock_timestamp(), %(ms)s,"
        " current_user)"
        " ON CONFLICT (name) DO UPDATE SET status = excluded.status, hash = excluded.hash,"
        " always_run = excluded.always_run, runs = s.runs + 1, error = excluded.error,"
        " started_at = excluded.started_at, finished_at = excluded.finished_at,"
        " duration_ms = excluded.duration_ms, applied_by = excluded.applied_by"
    ).format(table=sql.Identifier("public", table))
    with as_session_user(conn):  # whatever role the process set
        conn.execute(
            query,
            {
                "name": process.name,
                "status": status.value,
                "hash": process.hash,
                "always_run": always_run,
                "error": error,
                "ms": duration_ms,
            },
        )


def holds_lock(conn: Connection) -> bool:
    """True while the session still holds the runner's advisory lock."""
    row = conn.execute("SELECT " + db.holds_lock(conn)).fetchone()
    return bool(row and row[0])


def forget(conn: Connection, table: str, process: str) -> None:
    """Delete a process's row, so that it is pending again."""
    query = sql.SQL("DELETE FROM {} WHERE name = %s").format(sql.Identifier("public", table))
    conn.execute(query, (process,))
