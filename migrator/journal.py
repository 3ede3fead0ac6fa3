"""All SQL on the "<schema>"."__migrations" journal tables, composed with psycopg.sql."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from psycopg import sql
from psycopg.errors import InvalidSqlStatementName
from psycopg.pq import Escaping

from migrator import __version__
from migrator.db import Connection, schema_exists
from migrator.errors import ConfigError
from migrator.model import JournalRow, Migration, RowStatus, SeedFile, SeedRow, SeedStatus

if TYPE_CHECKING:
    from migrator.drizzle import DrizzleRow

# Chunk hashes matter only to resume a failed or interrupted file: not read for the others.
COLUMNS = (
    "version, name, hash,"
    " CASE WHEN status IN ('failed', 'running') THEN chunk_hashes END AS chunk_hashes,"
    " status, chunks_total, chunks_done, error,"
    " started_at, finished_at, duration_ms, applied_by, migrator_version"
)
# What planning needs (`migrate`): finished_at (drift messages date the change), not the
# other times or who applied it; decoding those was a fifth of the read.
BRIEF_COLUMNS = COLUMNS.replace(
    "started_at, finished_at, duration_ms, applied_by,",
    "NULL::timestamptz, finished_at, NULL::bigint, NULL::text,",
)

# Every column the runner reads or writes, with its pg_type.typcategory (N numeric, S string,
# A array, D date/time, B boolean): what a table of that name must have to be our journal.
_SHAPE = {
    "version": "N",
    "name": "S",
    "hash": "S",
    "chunk_hashes": "A",
    "content": "S",
    "status": "S",
    "chunks_total": "N",
    "chunks_done": "N",
    "error": "S",
    "started_at": "D",
    "finished_at": "D",
    "duration_ms": "N",
    "applied_by": "S",
    "migrator_version": "S",
    "note": "S",
}
_SEED_SHAPE = {
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
_STATUSES = {status.value: status for status in RowStatus}
_TYPE_NAMES = {"N": "a number", "S": "text", "A": "an array", "D": "a timestamp", "B": "a boolean"}

# One catalog query: whether the table is there, what kind of relation it is, and its columns:
# type category, NOT NULL without a default, and whether a unique index covers it alone.
_COLUMNS_QUERY = """
SELECT c.relkind::text, a.attname::text, t.typcategory::text,
       coalesce(a.attnotnull AND NOT a.atthasdef AND a.attidentity = '', false),
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique
               AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL)
FROM pg_class c
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_type t ON t.oid = a.atttypid
WHERE c.oid = to_regclass(%s)
"""

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
ELAPSED_COLUMN = "migrator.elapsed_ms"  # what a chunk's journal update returns


def table(schema: str, name: str) -> sql.Identifier:
    """The journal's qualified name."""
    return sql.Identifier(schema, name)


def exists(conn: Connection, schema: str, name: str) -> bool:
    """True when the schema's journal table is there."""
    qualified = table(schema, name).as_string(conn)
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
    return bool(row and row[0])


def read(
    conn: Connection, schema: str, name: str, *, brief: bool = False
) -> list[JournalRow] | None:
    """Every row of a schema's journal, by version; None when there is no journal yet. `brief`
    leaves out started_at, duration_ms and applied_by (None), which planning does not need.

    ConfigError when a table of that name is not a journal this migrator can use: another
    tool's table, or one that a newer migrator wrote.
    """
    qualified = table(schema, name).as_string(conn)
    extra = _check_shape(conn, qualified, _SHAPE, key="version")
    if extra is None:
        return None
    columns = BRIEF_COLUMNS if brief else COLUMNS
    query = sql.SQL("SELECT " + columns + " FROM {} ORDER BY version").format(table(schema, name))
    # Binary results: timestamps and arrays decode several times faster than from text.
    fetched = conn.cursor(binary=True).execute(query).fetchall()
    newest = max({str(row[12]) for row in fetched}, key=version_key, default=__version__)
    newer = version_key(newest) > version_key(__version__)
    unknown_columns = [column for column, required in extra.items() if required or newer]
    if newer and unknown_columns:
        raise _newer(
            qualified,
            newest,
            f"it has columns this version does not know: {', '.join(unknown_columns)}",
        )
    if unknown_columns:
        raise ConfigError(
            f"journal {qualified} has NOT NULL columns without a default that migrator does not "
            f"fill: {', '.join(unknown_columns)}",
            hint="Nothing was applied. Drop those columns, or give them a default.",
        )
    rows = []
    for row in fetched:
        status = _STATUSES.get(row[4])
        if status is None:
            what = (
                f"it holds status '{row[4]}' for version {row[0]}, which this version does not know"
            )
            if newer:
                raise _newer(qualified, newest, what)
            known = ", ".join(status.value for status in RowStatus)
            raise ConfigError(
                f"journal {qualified}: {what} (this is migrator {__version__})",
                hint=f"Nothing was applied. A newer migrator or a hand edit wrote it: upgrade "
                f"migrator, or set the status back to one of {known}.",
            )
        # Positional, in JournalRow's field order: building 10,000 rows by keyword showed up.
        rows.append(JournalRow(row[0], row[1], row[2], tuple(row[3] or ()), status, *row[5:12]))
    return rows


def version_key(version: str) -> tuple[int, ...]:
    """'1.10.2' -> (1, 10, 2), for comparing releases; the leading numbers only."""
    match = re.match(r"[0-9]+(?:\.[0-9]+)*", version.strip().lstrip("vV"))
    return tuple(int(part) for part in match[0].split(".")) if match else ()


def _newer(qualified: str, version: str, what: str) -> ConfigError:
    return ConfigError(
        f"journal {qualified} was written by a newer migrator ({version}): upgrade migrator "
        f"(this is {__version__}); {what}",
        hint="Nothing was applied. An older migrator cannot tell what a newer one recorded.",
    )


def _check_shape(
    conn: Connection, qualified: str, shape: dict[str, str], *, key: str, what: str = "journal"
) -> dict[str, bool] | None:
    """None when there is no such table; else its columns that migrator does not know, each
    with whether it is NOT NULL without a default. ConfigError when it cannot be our journal."""
    found = conn.execute(_COLUMNS_QUERY, (qualified,)).fetchall()
    if not found:
        return None
    kind = found[0][0]
    if kind not in ("r", "p"):
        kinds = {"v": "a view", "m": "a materialized view", "f": "a foreign table"}
        raise ConfigError(
            f"{what} {qualified} is {kinds.get(kind, 'not a table')}, not a table migrator created",
            hint=_SHAPE_HINT,
        )
    columns = {
        column: (category, required, unique)
        for _, column, category, required, unique in found
        if column is not None
    }
    problems = []
    missing = [column for column in shape if column not in columns]
    if missing:
        problems.append(f"it has no column {', '.join(missing)}")
    for column, category in shape.items():
        if column in columns and columns[column][0] != category:
            problems.append(f"{column} is not {_TYPE_NAMES[category]}")
    if key in columns and not columns[key][2]:
        problems.append(f"{key} has no unique index or primary key")
    if problems:
        raise ConfigError(
            f"{what} {qualified} does not have the shape migrator needs: {'; '.join(problems)}",
            hint=_SHAPE_HINT,
        )
    return {column: values[1] for column, values in columns.items() if column not in shape}


_SHAPE_HINT = (
    "Nothing was applied. Another tool may own a table of that name: choose another journal "
    "table name (journal_table, MIGRATOR_JOURNAL_TABLE; seeds_table for seeds), or rename it."
)


@contextmanager
def _as_session_user(conn: Connection) -> Iterator[None]:
    """A transaction run as the session user, whatever role a migration file left set."""
    with conn.transaction():
        conn.execute("SET LOCAL ROLE NONE")
        yield


def ensure(conn: Connection, schema: str, name: str) -> None:
    """Create the schema (when missing) and its journal table, in one transaction."""
    with _as_session_user(conn):
        if not schema_exists(conn, schema):
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL(_CREATE).format(table=table(schema, name)))


# The journal writes that run for every file and chunk are prepared once per session: parsing
# and planning them each time cost more server time than many of the chunks themselves.
_START = (
    "INSERT INTO {table} AS j (version, name, hash, chunk_hashes, content, status,"
    " chunks_total, chunks_done, started_at, finished_at, duration_ms, applied_by,"
    " migrator_version, error)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp(),"
    " CASE WHEN $9 THEN clock_timestamp() END, 0, current_user, $10, NULL)"
    " ON CONFLICT (version) DO UPDATE SET name = excluded.name, hash = excluded.hash,"
    " chunk_hashes = excluded.chunk_hashes, content = excluded.content,"
    " status = excluded.status, chunks_total = excluded.chunks_total,"
    " chunks_done = excluded.chunks_done, started_at = excluded.started_at,"
    " finished_at = excluded.finished_at, duration_ms = excluded.duration_ms,"
    " applied_by = excluded.applied_by, migrator_version = excluded.migrator_version,"
    " error = NULL, note = CASE WHEN $11::text IS NULL THEN j.note"
    " ELSE concat_ws(E'\\n', j.note, $11 || ' by ' || current_user || ' at '"
    " || clock_timestamp()::text) END"
)
_START_TYPES = "bigint, text, text, text[], text, text, integer, integer, boolean, text, text"
_ADVANCE = (
    "UPDATE {table} SET chunks_done = {done},"
    " status = CASE WHEN {done} >= chunks_total THEN 'applied' ELSE 'running' END,"
    " finished_at = CASE WHEN {done} >= chunks_total THEN clock_timestamp() END,"
    " duration_ms = " + _ELAPSED + " WHERE version = {version}"
    " RETURNING duration_ms AS {elapsed}"
)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A journal's writes on one session: the names of its prepared start and progress
    statements, and the progress update written out (for a chunk that must not depend on
    them), with _VERSION and _DONE where its values go."""

    start: str
    advance: str
    update: str


_PREPARED: WeakKeyDictionary[Connection, dict[tuple[str, str], Prepared]] = WeakKeyDictionary()
_NAMES = itertools.count(1)  # never reused, so a name left behind by a lost registry is harmless
_VERSION, _DONE = "\x00v", "\x00d"  # holes in Prepared.update: no identifier holds NUL


def prepared(conn: Connection, schema: str, name: str) -> tuple[Prepared, str]:
    """The session's journal writes for this journal, and the PREPARE statements to send
    first when the session does not have them yet ("" when it does)."""
    known = _PREPARED.setdefault(conn, {})
    statements = known.get((schema, name))
    if statements:
        return statements, ""
    number = next(_NAMES)
    qualified = table(schema, name)
    elapsed = sql.Identifier(ELAPSED_COLUMN)
    update = sql.SQL(_ADVANCE).format(
        table=qualified, done=sql.SQL(_DONE), version=sql.SQL(_VERSION), elapsed=elapsed
    )
    statements = known[(schema, name)] = Prepared(
        f"migrator_journal_start_{number}",
        f"migrator_journal_advance_{number}",
        update.as_string(conn),
    )
    text = sql.SQL(
        "PREPARE {start} (" + _START_TYPES + ") AS " + _START + "; "
        "PREPARE {advance} (bigint, integer) AS " + _ADVANCE
    )
    return statements, text.format(
        start=sql.Identifier(statements.start),
        advance=sql.Identifier(statements.advance),
        table=qualified,
        done=sql.SQL("$2"),
        version=sql.SQL("$1"),
        elapsed=elapsed,
    ).as_string(conn)


def lost_prepared(conn: Connection, error: BaseException | None) -> bool:
    """True when `error` says the session no longer has one of the prepared journal writes
    (a migration ran DEALLOCATE); they are then forgotten, to be prepared again."""
    if not isinstance(error, InvalidSqlStatementName):
        return False
    names = {n for s in _PREPARED.get(conn, {}).values() for n in (s.start, s.advance)}
    if not any(f'"{n}"' in str(error) for n in names):
        return False
    _PREPARED.pop(conn, None)
    return True


def start_sql(
    conn: Connection,
    statements: Prepared,
    migration: Migration,
    chunks_done: int,
    note: str | None = None,
) -> str:
    """Record a file as running from `chunks_done` (applied at once when none is left to run)."""
    file = migration.file
    total = len(migration.chunks)
    done = chunks_done >= total
    status = RowStatus.APPLIED if done else RowStatus.RUNNING
    # Client-side literals, so that this shares a round trip with the session reset (a simple
    # query, which cannot carry parameters), escaped by libpq one by one: composing the
    # statement, or psycopg's adapters, for every file showed up in profiles.
    escape = Escaping(conn.pgconn).escape_literal
    encoding = conn.info.encoding
    texts = (
        file.name,
        file.hash,
        "{" + ",".join(migration.chunk_hashes) + "}",
        file.text,
        status.value,
        __version__,
    )
    name, hash_, chunk_hashes, content, status_, version = (
        escape(text.encode(encoding)).decode(encoding) for text in texts
    )
    arguments = (
        f"{int(file.version)}, {name}, {hash_}, {chunk_hashes}, {content}, {status_},"
        f" {int(total)}, {int(chunks_done)}, {'true' if done else 'false'}, {version},"
        f" {sql.quote(note, conn)}"
    )
    return f"EXECUTE {sql.Identifier(statements.start).as_string(conn)} ({arguments})"


def advance_text(
    conn: Connection, statements: Prepared, version: int, *, written_out: bool = False
) -> Callable[[int], str]:
    """The journal update of one file as text, given its chunks_done; it returns the file's
    elapsed milliseconds as ELAPSED_COLUMN. Through the prepared statement, or `written_out`
    (a chunk that commits on its own, or after the session lost the statement)."""
    if written_out:
        update = statements.update.replace(_VERSION, str(int(version)))
        return lambda chunks_done: update.replace(_DONE, str(int(chunks_done)))
    head = f"EXECUTE {sql.Identifier(statements.advance).as_string(conn)} ({int(version)}, "
    return lambda chunks_done: f"{head}{int(chunks_done)})"


def chunks_done(conn: Connection, schema: str, name: str, version: int) -> int:
    """How many of a file's chunks the journal records as done (0 without a row)."""
    query = sql.SQL("SELECT chunks_done FROM {table} WHERE version = %s").format(
        table=table(schema, name)
    )
    with _as_session_user(conn):
        row = conn.execute(query, (version,)).fetchone()
    return int(row[0]) if row else 0


def fail(conn: Connection, schema: str, name: str, version: int, error: str) -> None:
    """Mark a file failed with the error shown to the user; its chunks_done stays as it was."""
    query = sql.SQL(
        "UPDATE {table} SET status = 'failed', error = %(error)s,"
        " finished_at = clock_timestamp(), duration_ms = "
        + _ELAPSED
        + " WHERE version = %(version)s"
    ).format(table=table(schema, name))
    with _as_session_user(conn):
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
    extra = _check_shape(conn, qualified, _SEED_SHAPE, key="name", what="seed journal")
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


def read_drizzle(conn: Connection, schema: str, name: str) -> list[DrizzleRow] | None:
    """The rows of Drizzle's migrations table, by id; None when there is no such table.

    ConfigError when the table lacks Drizzle's columns (id, hash, created_at).
    """
    from migrator.drizzle import DrizzleRow

    qualified = table(schema, name).as_string(conn)
    shape = {"id": "N", "hash": "S", "created_at": "N"}
    try:
        if _check_shape(conn, qualified, shape, key="id", what="Drizzle's table") is None:
            return None
    except ConfigError as exc:
        exc.hint = "Name the table Drizzle's migrate() wrote with --table SCHEMA.TABLE."
        raise
    query = sql.SQL("SELECT id, hash, created_at FROM {} ORDER BY id").format(table(schema, name))
    return [
        DrizzleRow(int(id_ or 0), str(hash_ or ""), None if created is None else int(created))
        for id_, hash_, created in conn.execute(query)
    ]
