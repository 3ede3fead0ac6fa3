"""All SQL on the "<schema>"."__migrations" journal tables, composed with psycopg.sql."""

from __future__ import annotations

from psycopg import sql

from migrator import __version__
from migrator.db import Connection, schema_exists
from migrator.errors import ConfigError
from migrator.model import JournalRow, Migration, RowStatus, SeedFile, SeedRow, SeedStatus

COLUMNS = (
    "version, name, hash, chunk_hashes, status, chunks_total, chunks_done, error,"
    " started_at, finished_at, duration_ms, applied_by"
)

_CREATE = """
CREATE TABLE {table} (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    hash text NOT NULL,
    chunk_hashes text[] NOT NULL DEFAULT '{{}}',
    content text NOT NULL DEFAULT '',
    status text NOT NULL CHECK (status IN ('running', 'applied', 'failed', 'baseline')),
    chunks_total integer NOT NULL DEFAULT 0,
    chunks_done integer NOT NULL DEFAULT 0,
    error text,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    duration_ms bigint,
    applied_by text NOT NULL DEFAULT current_user,
    migrator_version text NOT NULL,
    note text
)"""

_ELAPSED = "(extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint"


def table(schema: str, name: str) -> sql.Identifier:
    """The journal's qualified name."""
    return sql.Identifier(schema, name)


def exists(conn: Connection, schema: str, name: str) -> bool:
    """True when the schema's journal table is there."""
    qualified = table(schema, name).as_string(conn)
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
    return bool(row and row[0])


def read(conn: Connection, schema: str, name: str) -> list[JournalRow] | None:
    """Every row of a schema's journal, by version; None when there is no journal yet."""
    qualified = table(schema, name).as_string(conn)
    if not exists(conn, schema, name):
        return None
    query = sql.SQL("SELECT " + COLUMNS + " FROM {} ORDER BY version").format(table(schema, name))
    rows = []
    for row in conn.execute(query):
        try:
            status = RowStatus(row[4])
        except ValueError:
            raise ConfigError(
                f"journal {qualified} holds status '{row[4]}' for version {row[0]}, "
                "which this migrator does not know",
                hint="A newer migrator wrote it: upgrade migrator.",
            ) from None
        rows.append(
            JournalRow(
                version=row[0],
                name=row[1],
                hash=row[2],
                chunk_hashes=tuple(row[3] or ()),
                status=status,
                chunks_total=row[5],
                chunks_done=row[6],
                error=row[7],
                started_at=row[8],
                finished_at=row[9],
                duration_ms=row[10],
                applied_by=row[11],
            )
        )
    return rows


def ensure(conn: Connection, schema: str, name: str) -> None:
    """Create the schema (when missing) and its journal table, in one transaction."""
    with conn.transaction():
        if not schema_exists(conn, schema):
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL(_CREATE).format(table=table(schema, name)))


def start(
    conn: Connection, name: str, migration: Migration, chunks_done: int, note: str | None = None
) -> None:
    """Record a file as running from `chunks_done` (applied at once when none is left to run)."""
    file = migration.file
    total = len(migration.chunks)
    done = chunks_done >= total
    status = RowStatus.APPLIED if done else RowStatus.RUNNING
    finished = "clock_timestamp()" if done else "NULL"
    query = sql.SQL(
        "INSERT INTO {table} AS j (version, name, hash, chunk_hashes, content, status,"
        " chunks_total, chunks_done, started_at, finished_at, duration_ms, applied_by,"
        " migrator_version, error)"
        " VALUES (%(version)s, %(name)s, %(hash)s, %(chunk_hashes)s, %(content)s, %(status)s,"
        " %(total)s, %(done)s, clock_timestamp(), " + finished + ", 0, current_user,"
        " %(migrator)s, NULL)"
        " ON CONFLICT (version) DO UPDATE SET name = excluded.name, hash = excluded.hash,"
        " chunk_hashes = excluded.chunk_hashes, content = excluded.content,"
        " status = excluded.status, chunks_total = excluded.chunks_total,"
        " chunks_done = excluded.chunks_done, started_at = excluded.started_at,"
        " finished_at = excluded.finished_at, duration_ms = excluded.duration_ms,"
        " applied_by = excluded.applied_by, migrator_version = excluded.migrator_version,"
        " error = NULL, note = CASE WHEN %(note)s::text IS NULL THEN j.note"
        " ELSE concat_ws(E'\\n', j.note, %(note)s || ' by ' || current_user || ' at '"
        " || clock_timestamp()::text) END"
    ).format(table=table(file.schema, name))
    conn.execute(
        query,
        {
            "version": file.version,
            "name": file.name,
            "hash": file.hash,
            "chunk_hashes": list(migration.chunk_hashes),
            "content": file.text,
            "status": status.value,
            "total": total,
            "done": chunks_done,
            "migrator": __version__,
            "note": note,
        },
    )


def advance(conn: Connection, schema: str, name: str, version: int, chunks_done: int) -> None:
    """Record `chunks_done`; the file becomes applied when that is all of its chunks."""
    query = sql.SQL(
        "UPDATE {table} SET chunks_done = %(done)s,"
        " status = CASE WHEN %(done)s >= chunks_total THEN 'applied' ELSE 'running' END,"
        " finished_at = CASE WHEN %(done)s >= chunks_total THEN clock_timestamp() END,"
        " duration_ms = " + _ELAPSED + " WHERE version = %(version)s"
    ).format(table=table(schema, name))
    conn.execute(query, {"done": chunks_done, "version": version})


def fail(conn: Connection, schema: str, name: str, version: int, error: str) -> None:
    """Mark a file failed with the error shown to the user; its chunks_done stays as it was."""
    query = sql.SQL(
        "UPDATE {table} SET status = 'failed', error = %(error)s,"
        " finished_at = clock_timestamp(), duration_ms = "
        + _ELAPSED
        + " WHERE version = %(version)s"
    ).format(table=table(schema, name))
    conn.execute(query, {"error": error, "version": version})


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


def read_seeds(conn: Connection, name: str) -> dict[str, SeedRow] | None:
    """Every row of public."<name>" by process name; None when there is no seed journal yet."""
    qualified = table("public", name).as_string(conn)
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
    if not exists or not exists[0]:
        return None
    query = sql.SQL(
        "SELECT name, status, hash, always_run, runs, error, finished_at, duration_ms FROM {}"
    ).format(table("public", name))
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


def ensure_seeds(conn: Connection, name: str) -> None:
    """Create the seed journal in public."""
    conn.execute(sql.SQL(_CREATE_SEEDS).format(table=table("public", name)))


def record_seed(
    conn: Connection,
    name: str,
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
    ).format(table=table("public", name))
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


def forget_seed(conn: Connection, name: str, process: str) -> None:
    """Delete a process's row, so that it is pending again."""
    query = sql.SQL("DELETE FROM {} WHERE name = %s").format(table("public", name))
    conn.execute(query, (process,))


_NOTE = (
    "note = concat_ws(E'\\n', note, %(note)s || ' by ' || current_user || ' at '"
    " || clock_timestamp()::text)"
)


def content(conn: Connection, schema: str, name: str, version: int) -> str:
    """The text of a file as it was applied."""
    query = sql.SQL("SELECT content FROM {} WHERE version = %s").format(table(schema, name))
    row = conn.execute(query, (version,)).fetchone()
    return str(row[0]) if row else ""


def accept(conn: Connection, name: str, migration: Migration, note: str) -> None:
    """Record an intended edit of an applied file: its new hash, chunks and text, and why."""
    file = migration.file
    query = sql.SQL(
        "UPDATE {} SET name = %(name)s, hash = %(hash)s, chunk_hashes = %(chunk_hashes)s,"
        " content = %(content)s, chunks_total = %(total)s, chunks_done = %(total)s, " + _NOTE + ""
        " WHERE version = %(version)s"
    ).format(table(file.schema, name))
    conn.execute(
        query,
        {
            "name": file.name,
            "hash": file.hash,
            "chunk_hashes": list(migration.chunk_hashes),
            "content": file.text,
            "total": len(migration.chunks),
            "note": note,
            "version": file.version,
        },
    )


def forget(conn: Connection, schema: str, name: str, version: int) -> None:
    """Delete a journal row (a failed run cleared, or a file removed on purpose)."""
    query = sql.SQL("DELETE FROM {} WHERE version = %s").format(table(schema, name))
    conn.execute(query, (version,))


def baseline(conn: Connection, name: str, migration: Migration, note: str) -> None:
    """Journal a file as `baseline`: its objects exist already, nothing is run."""
    file = migration.file
    total = len(migration.chunks)
    query = sql.SQL(
        "INSERT INTO {} (version, name, hash, chunk_hashes, content, status, chunks_total,"
        " chunks_done, started_at, finished_at, duration_ms, migrator_version, note)"
        " VALUES (%(version)s, %(name)s, %(hash)s, %(chunk_hashes)s, %(content)s, 'baseline',"
        " %(total)s, %(total)s, clock_timestamp(), clock_timestamp(), 0, %(migrator)s,"
        " %(note)s || ' by ' || current_user || ' at ' || clock_timestamp()::text)"
        " ON CONFLICT (version) DO NOTHING"
    ).format(table(file.schema, name))
    conn.execute(
        query,
        {
            "version": file.version,
            "name": file.name,
            "hash": file.hash,
            "chunk_hashes": list(migration.chunk_hashes),
            "content": file.text,
            "total": total,
            "migrator": __version__,
            "note": note,
        },
    )
