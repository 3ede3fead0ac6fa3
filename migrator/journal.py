"""All SQL on a schema's migration journal, "<schema>"."__migrations", composed with psycopg.sql."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.errors import (
    InsufficientPrivilege,
    InvalidSqlStatementName,
    InvalidTextRepresentation,
)
from psycopg.pq import Escaping
from psycopg.rows import dict_row

from migrator import __version__
from migrator.db import AS_SESSION_USER, Connection, holds_lock, schema_exists
from migrator.errors import ConfigError
from migrator.model import JournalRow, Migration, RowStatus, SqlFile

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
# Columns added after the first release: a journal made before lacks them until a command that
# writes it adds them (`ensure`); reading one without them takes them as empty.
_ADDED = {"down_hash": "S", "down_chunks_done": "N", "down_chunk_hashes": "A"}
_DOWN_COLUMNS = (
    ", down_hash, down_chunks_done,"
    " CASE WHEN down_chunks_done IS NOT NULL THEN down_chunk_hashes END"
)
_NO_DOWN_COLUMNS = ", NULL::text, NULL::integer, NULL::text[]"
_STATUSES = {status.value: status for status in RowStatus}
_TYPE_NAMES = {"N": "a number", "S": "text", "A": "an array", "D": "a timestamp", "B": "a boolean"}

# One catalog query: whether the table is there, what kind of relation it is, and its columns:
# type category, NOT NULL without a default, and whether a unique index covers it alone.
COLUMNS_QUERY = """
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
    note text,
    down_hash text,
    down_chunks_done integer,
    down_chunk_hashes text[] NOT NULL DEFAULT '{{}}'
)"""
_ADD_COLUMNS = {
    "down_hash": "down_hash text",
    "down_chunks_done": "down_chunks_done integer",
    "down_chunk_hashes": "down_chunk_hashes text[] NOT NULL DEFAULT '{}'",
}
_MISSING_QUERY = """
SELECT to_regclass(%(table)s) IS NOT NULL,
       ARRAY(SELECT column_name FROM unnest(%(columns)s::text[]) AS column_name
             WHERE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%(table)s)
                               AND attname = column_name AND NOT attisdropped))
"""

# Who reverted what and when: a row per file that `rollback` reverted, written in the commit
# that deletes the file's journal row.
_CREATE_HISTORY = """
CREATE TABLE {table} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version bigint NOT NULL,
    name text NOT NULL,
    hash text NOT NULL,
    content text NOT NULL,
    applied_at timestamptz,
    applied_by text,
    down_name text NOT NULL,
    down_hash text NOT NULL,
    down_content text NOT NULL,
    reverted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    reverted_by text NOT NULL DEFAULT current_user,
    duration_ms bigint,
    migrator_version text NOT NULL,
    note text
)"""
HISTORY_SUFFIX = "_history"
_HISTORY_SHAPE = {
    "id": "N",
    "version": "N",
    "name": "S",
    "hash": "S",
    "content": "S",
    "applied_at": "D",
    "applied_by": "S",
    "down_name": "S",
    "down_hash": "S",
    "down_content": "S",
    "reverted_at": "D",
    "reverted_by": "S",
    "duration_ms": "N",
    "migrator_version": "S",
    "note": "S",
}

_KEPT = (
    "name, hash, chunk_hashes, content, status, chunks_total, chunks_done, started_at,"
    " finished_at, duration_ms, applied_by, migrator_version, down_hash"
)
_ELAPSED = "(extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint"
ELAPSED_COLUMN = "migrator.elapsed_ms"  # what a chunk's journal update returns


@dataclass(frozen=True, slots=True)
class Journal:
    """One schema's journal table, "<schema>"."<table>": every read and write of it."""

    schema: str
    table: str = "__migrations"

    @property
    def identifier(self) -> sql.Identifier:
        """The qualified name, for composing SQL."""
        return sql.Identifier(self.schema, self.table)

    @property
    def history(self) -> sql.Identifier:
        """The qualified name of its history of reverted files, "<table>_history"."""
        return sql.Identifier(self.schema, self.table + HISTORY_SUFFIX)

    def qualified(self, conn: Connection) -> str:
        """The qualified name as text, quoted as needed."""
        return self.identifier.as_string(conn)

    def exists(self, conn: Connection) -> bool:
        """True when the table is there."""
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self.qualified(conn),)).fetchone()
        return bool(row and row[0])

    def read(self, conn: Connection, *, brief: bool = False) -> list[JournalRow] | None:
        """Every row, by version; None when there is no journal yet. `brief` leaves out
        started_at, duration_ms and applied_by (None), which planning does not need.

        ConfigError when a table of that name is not a journal this migrator can use: another
        tool's table, or one that a newer migrator wrote.
        """
        qualified = self.qualified(conn)
        extra = check_shape(conn, qualified, _SHAPE, key="version", optional=_ADDED)
        if extra is None:
            return None
        added = all(column in extra for column in _ADDED)
        for column in _ADDED:
            extra.pop(column, None)
        columns = (BRIEF_COLUMNS if brief else COLUMNS) + (
            _DOWN_COLUMNS if added else _NO_DOWN_COLUMNS
        )
        query = sql.SQL("SELECT " + columns + " FROM {} ORDER BY version").format(self.identifier)
        # Binary results: timestamps and arrays decode faster than from text.
        fetched = conn.cursor(binary=True).execute(query).fetchall()
        return _rows(qualified, fetched, extra)

    def ensure(self, conn: Connection) -> None:
        """Create the schema (when missing) and the journal table, or add the columns that a
        journal made by an older migrator lacks; in one transaction."""
        qualified = self.qualified(conn)
        with as_session_user(conn):
            found = conn.execute(_MISSING_QUERY, {"table": qualified, "columns": list(_ADDED)})
            exists, missing = found.fetchone() or (False, [])
            if not exists:
                if not schema_exists(conn, self.schema):
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
                conn.execute(sql.SQL(_CREATE).format(table=self.identifier))
            elif missing:
                added = ", ".join(f"ADD COLUMN IF NOT EXISTS {_ADD_COLUMNS[c]}" for c in missing)
                try:
                    alter = [sql.SQL("ALTER TABLE "), self.identifier, sql.SQL(" " + added)]
                    conn.execute(sql.Composed(alter))
                except InsufficientPrivilege:
                    raise ConfigError(
                        f"journal {qualified} lacks the columns {', '.join(missing)}, which this "
                        f"migrator ({__version__}) adds, and user {conn.info.user} may not add "
                        "them: nothing was changed",
                        hint="Run migrator once as the table's owner, or have the owner run: "
                        f"ALTER TABLE {qualified} {added}.",
                    ) from None

    def reverted(self, conn: Connection) -> dict[int, str]:
        """The versions `rollback` reverted (its history), with when it last did; {} when
        there is no history."""
        qualified = self.history.as_string(conn)
        found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
        if not (found and found[0]):
            return {}
        query = sql.SQL(
            "SELECT version, max(reverted_at)::text FROM {} GROUP BY version ORDER BY version"
        ).format(self.history)
        return {int(version): str(at) for version, at in conn.execute(query)}

    def ensure_history(self, conn: Connection) -> None:
        """Create the history of reverted files when it is not there."""
        qualified = self.history.as_string(conn)
        with as_session_user(conn):
            extra = check_shape(conn, qualified, _HISTORY_SHAPE, key="id", what="rollback history")
            if extra is None:
                conn.execute(sql.SQL(_CREATE_HISTORY).format(table=self.history))
            elif required := [column for column, not_null in extra.items() if not_null]:
                raise ConfigError(
                    f"rollback history {qualified} has NOT NULL columns without a default that "
                    f"migrator does not fill: {', '.join(required)}; nothing was reverted",
                    hint="Drop those columns or give them a default.",
                )

    def begin_revert(self, conn: Connection, version: int, down: Migration, note: str) -> bool:
        """Record a rollback of a file as under way, with its down file's chunks as they are
        now (its committed down chunks, if resumed, kept); False when the row is gone."""
        query = sql.SQL(
            "UPDATE {} SET down_chunks_done = coalesce(down_chunks_done, 0),"
            " down_chunk_hashes = %(hashes)s, error = NULL, " + _NOTE + ""
            " WHERE version = %(version)s"
        ).format(self.identifier)
        with as_session_user(conn):
            found = conn.execute(
                query, {"hashes": list(down.chunk_hashes), "note": note, "version": version}
            )
            return found.rowcount == 1

    def fail_revert(self, conn: Connection, version: int, error: str) -> None:
        """Keep a rollback's failure, as shown to the user; its progress stays as it was."""
        query = sql.SQL("UPDATE {} SET error = %s WHERE version = %s").format(self.identifier)
        with as_session_user(conn):
            conn.execute(query, (error, version))

    def settle_revert(
        self, conn: Connection, version: int, down: Migration | None, note: str
    ) -> None:
        """`repair` of an unfinished rollback: go on with the down file as it is now (its
        committed chunks kept as done), or, when `down` is None, clear the rollback."""
        if down is None:
            done = "down_chunks_done = NULL, down_chunk_hashes = '{{}}', error = NULL"
            values: dict[str, Any] = {"note": note, "version": version}
        else:
            done = "down_chunk_hashes = %(hashes)s"
            values = {"hashes": list(down.chunk_hashes), "note": note, "version": version}
        query = sql.SQL(f"UPDATE {{}} SET {done}, " + _NOTE + " WHERE version = %(version)s")
        conn.execute(query.format(self.identifier), values)

    def revert_update(self, conn: Connection, file: SqlFile, down: SqlFile) -> Callable[..., str]:
        """A rollback's journal write for down chunks that committed, as text: given the down
        chunks done, those done before them, and, for the last, the milliseconds the rollback
        took (it then deletes the file's row and keeps it in the history). Like a migration's
        progress update, it fails (rolling the chunk back) unless the runner holds its
        advisory lock and the row is there, at the progress it had before."""
        version = sql.Literal(int(file.version))
        advance = (
            "WITH advanced AS (UPDATE {table} SET down_chunks_done = {done}"
            " WHERE version = {version} AND down_chunks_done = {before} RETURNING 1)"
        )
        delete = (
            "WITH reverted AS (DELETE FROM {table} WHERE version = {version}"
            " AND down_chunks_done = {before} RETURNING *),"
            " advanced AS (INSERT INTO {history} (version, name, hash, content, applied_at,"
            " applied_by, down_name, down_hash, down_content, duration_ms, migrator_version,"
            " note) SELECT version, name, hash, content, finished_at, applied_by, {down_name},"
            " {down_hash}, {down_content}, {ms}, {migrator}, note FROM reverted RETURNING 1)"
        )
        check = (
            " SELECT CAST(CASE WHEN NOT " + holds_lock(conn) + " THEN {lock_lost} || {done}"
            " ELSE coalesce((SELECT '0' FROM advanced), {row_gone} || {done}) END AS bigint)"
        )
        fixed = {
            "table": self.identifier,
            "history": self.history,
            "version": version,
            "down_name": sql.Literal(down.name),
            "down_hash": sql.Literal(down.hash),
            "down_content": sql.Literal(down.text),
            "migrator": sql.Literal(__version__),
            "lock_lost": sql.Literal(LOCK_LOST + _AT),
            "row_gone": sql.Literal(ROW_GONE + _AT),
        }

        def update(done: int, before: int, elapsed_ms: int | None = None) -> str:
            head = advance if elapsed_ms is None else delete
            text = sql.SQL(AS_SESSION_USER + "; " + head + check).format(
                done=sql.Literal(int(done)),
                before=sql.Literal(int(before)),
                ms=sql.Literal(elapsed_ms),
                **fixed,
            )
            return text.as_string(conn)

        return update

    def progress(self, conn: Connection, version: int) -> int | None:
        """A file's chunks_done; None without a row."""
        query = sql.SQL("SELECT chunks_done FROM {} WHERE version = %s").format(self.identifier)
        with as_session_user(conn):
            row = conn.execute(query, (version,)).fetchone()
        return None if row is None else int(row[0])

    def holds(self, conn: Connection, versions: Sequence[int]) -> bool:
        """True when the table is there with a row for each of these versions."""
        if not self.exists(conn):
            return False
        query = sql.SQL("SELECT count(*) FROM {} WHERE version = ANY(%s)").format(self.identifier)
        with as_session_user(conn):
            row = conn.execute(query, (list(versions),)).fetchone()
        return bool(row and row[0] == len(versions))

    def fail(self, conn: Connection, version: int, error: str) -> None:
        """Mark a file failed with the error shown to the user; chunks_done stays as it was."""
        query = sql.SQL(
            "UPDATE {} SET status = 'failed', error = %(error)s,"
            " finished_at = clock_timestamp(), duration_ms = " + _ELAPSED + ""
            " WHERE version = %(version)s"
        ).format(self.identifier)
        with as_session_user(conn):
            conn.execute(query, {"error": error, "version": version})

    def snapshot(self, conn: Connection, version: int) -> dict[str, Any]:
        """A row's values (all but error and note), for `keep` to put back."""
        query = sql.SQL("SELECT " + _KEPT + " FROM {} WHERE version = %s").format(self.identifier)
        with as_session_user(conn), conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(query, (version,)).fetchone() or {}

    def keep(self, conn: Connection, version: int, kept: dict[str, Any], error: str) -> None:
        """Put a row's snapshot back after a forced re-run failed, with its error beside it."""
        query = sql.SQL(
            "UPDATE {} SET (" + _KEPT + ") = (" + ", ".join(f"%({c})s" for c in kept) + "),"
            " error = %(failure)s, note = concat_ws(E'\\n', note, 'the run again failed; the "
            "file stays ' || %(status)s || ' as before, at ' || clock_timestamp()::text)"
            " WHERE version = %(version)s"
        ).format(self.identifier)
        with as_session_user(conn):
            conn.execute(query, {**kept, "failure": error, "version": version})

    def content(self, conn: Connection, version: int) -> str:
        """The text of a file as it was applied."""
        query = sql.SQL("SELECT content FROM {} WHERE version = %s").format(self.identifier)
        row = conn.execute(query, (version,)).fetchone()
        return str(row[0]) if row else ""

    def accept(
        self, conn: Connection, migration: Migration, note: str, *, keep_progress: bool = False
    ) -> None:
        """Record an intended edit of an applied file: its new hash, chunks and text, and why;
        `keep_progress` lets a failed or interrupted run go on with the file as it is now."""
        file = migration.file
        done = "chunks_done" if keep_progress else "%(total)s"
        query = sql.SQL(
            "UPDATE {} SET name = %(name)s, hash = %(hash)s, chunk_hashes = %(chunk_hashes)s,"
            f" content = %(content)s, chunks_total = %(total)s, chunks_done = {done},"
            " down_hash = %(down_hash)s, " + _NOTE + " WHERE version = %(version)s"
        ).format(self.identifier)
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
                "down_hash": file.down.hash if file.down else None,
            },
        )

    def forget(self, conn: Connection, version: int) -> None:
        """Delete a row (a failed run cleared, or a file removed on purpose)."""
        query = sql.SQL("DELETE FROM {} WHERE version = %s").format(self.identifier)
        conn.execute(query, (version,))

    def restore(
        self, conn: Connection, rows: Sequence[JournalRow], contents: Mapping[int, str], note: str
    ) -> None:
        """Put these rows back (creating the table if it is gone), leaving the rows still there
        as they are; `contents` the applied texts known; times and users that `rows` lack are
        the current ones."""
        query = sql.SQL(
            "INSERT INTO {} (version, name, hash, chunk_hashes, content, status, chunks_total,"
            " chunks_done, error, started_at, finished_at, duration_ms, migrator_version, note,"
            " down_hash, down_chunks_done, down_chunk_hashes)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, clock_timestamp()),"
            " %s, %s, %s, %s || ' by ' || current_user || ' at ' || clock_timestamp()::text,"
            " %s, %s, %s)"
            " ON CONFLICT (version) DO NOTHING"
        ).format(self.identifier)
        self.ensure(conn)
        with as_session_user(conn), conn.cursor() as cursor:
            cursor.executemany(
                query,
                [
                    (
                        row.version,
                        row.name,
                        row.hash,
                        list(row.chunk_hashes),
                        contents.get(row.version, ""),
                        row.status.value,
                        row.chunks_total,
                        row.chunks_done,
                        row.error,
                        row.started_at or row.finished_at,
                        row.finished_at,
                        row.duration_ms,
                        __version__,
                        note,
                        row.down_hash,
                        row.down_chunks_done,
                        list(row.down_chunk_hashes),
                    )
                    for row in rows
                ],
            )

    def baseline(self, conn: Connection, migration: Migration, note: str) -> None:
        """Journal a file as `baseline`: its objects exist already, nothing is run."""
        file = migration.file
        query = sql.SQL(
            "INSERT INTO {} (version, name, hash, chunk_hashes, content, status, chunks_total,"
            " chunks_done, started_at, finished_at, duration_ms, migrator_version, note,"
            " down_hash)"
            " VALUES (%(version)s, %(name)s, %(hash)s, %(chunk_hashes)s, %(content)s,"
            " 'baseline', %(total)s, %(total)s, clock_timestamp(), clock_timestamp(), 0,"
            " %(migrator)s, %(note)s || ' by ' || current_user || ' at '"
            " || clock_timestamp()::text, %(down_hash)s) ON CONFLICT (version) DO NOTHING"
        ).format(self.identifier)
        conn.execute(
            query,
            {
                "version": file.version,
                "name": file.name,
                "hash": file.hash,
                "chunk_hashes": list(migration.chunk_hashes),
                "content": file.text,
                "total": len(migration.chunks),
                "migrator": __version__,
                "note": note,
                "down_hash": file.down.hash if file.down else None,
            },
        )


def _rows(qualified: str, fetched: list[Any], extra: dict[str, bool]) -> list[JournalRow]:
    """Journal rows from the fetched tuples; ConfigError for what this version cannot read."""
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
        # Positional, in JournalRow's field order: cheaper than keywords, per row.
        rows.append(
            JournalRow(
                row[0],
                row[1],
                row[2],
                tuple(row[3] or ()),
                status,
                row[5],
                row[6],
                row[7],
                row[8],
                row[9],
                row[10],
                row[11],
                row[13],
                row[14],
                tuple(row[15] or ()),
            )
        )
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


def check_shape(
    conn: Connection,
    qualified: str,
    shape: dict[str, str],
    *,
    key: str,
    what: str = "journal",
    optional: Mapping[str, str] | None = None,
    ours: bool = True,
) -> dict[str, bool] | None:
    """None when there is no such table; else its columns beyond `shape` (the `optional` ones
    it has among them), each with whether it is NOT NULL without a default. ConfigError when
    it cannot be our journal."""
    found = conn.execute(COLUMNS_QUERY, (qualified,)).fetchall()
    if not found:
        return None
    kind = found[0][0]
    if kind not in ("r", "p"):
        kinds = {"v": "a view", "m": "a materialized view", "f": "a foreign table"}
        raise ConfigError(
            f"{what} {qualified} is {kinds.get(kind, 'not a table')}, not a table"
            + (" migrator created" if ours else ""),
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
    for column, category in {**shape, **(optional or {})}.items():
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
def as_session_user(conn: Connection) -> Iterator[None]:
    """A transaction run as the user who connected, whatever role or session user a
    migration file left set."""
    with conn.transaction():
        conn.execute(AS_SESSION_USER)
        yield


# The journal writes that run for every file and chunk are prepared once per session: parsing
# and planning them each time cost more server time than many of the chunks themselves.
_START = (
    "INSERT INTO {table} AS j (version, name, hash, chunk_hashes, content, status,"
    " chunks_total, chunks_done, started_at, finished_at, duration_ms, applied_by,"
    " migrator_version, error, down_hash)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp(),"
    " CASE WHEN $9 THEN clock_timestamp() END, 0, current_user, $10, NULL, $12)"
    " ON CONFLICT (version) DO UPDATE SET name = excluded.name, hash = excluded.hash,"
    " chunk_hashes = excluded.chunk_hashes, content = excluded.content,"
    " status = excluded.status, chunks_total = excluded.chunks_total,"
    " chunks_done = excluded.chunks_done, started_at = excluded.started_at,"
    " finished_at = excluded.finished_at, duration_ms = excluded.duration_ms,"
    " applied_by = excluded.applied_by, migrator_version = excluded.migrator_version,"
    " error = NULL, down_hash = excluded.down_hash, note = CASE WHEN $11::text IS NULL THEN j.note"
    " ELSE concat_ws(E'\\n', j.note, $11 || ' by ' || current_user || ' at '"
    " || clock_timestamp()::text) END"
)
_START_TYPES = "bigint, text, text, text[], text, text, integer, integer, boolean, text, text, text"
# Every progress update also proves that the runner still holds its advisory lock and that
# the file's row is there, behind the progress it records (so that no other run moved it on
# while the lock was let go and taken again); when not, a cast of the reason to bigint fails,
# and the chunk rolls back with it.
LOCK_LOST = "migrator: the runner's advisory lock was released"
ROW_GONE = "migrator: the file's journal row was removed or moved on"
_ADVANCE = (
    "WITH advanced AS (UPDATE {table} SET chunks_done = {done},"
    " status = CASE WHEN {done} >= chunks_total THEN 'applied' ELSE 'running' END,"
    " finished_at = CASE WHEN {done} >= chunks_total THEN clock_timestamp() END,"
    " duration_ms = " + _ELAPSED + " WHERE version = {version} AND chunks_done < {done}"
    " RETURNING duration_ms)"
    " SELECT CAST(CASE WHEN NOT {holds} THEN {lock_lost} || {done}"
    " ELSE coalesce((SELECT duration_ms::text FROM advanced), {row_gone} || {done}) END"
    " AS bigint)"
    " AS {elapsed}"
)


def refusal(error: BaseException | None) -> tuple[str, int]:
    """(LOCK_LOST or ROW_GONE, the chunk whose update it was) when `error` is a progress
    update's own check failing, else ("", 0)."""
    if not isinstance(error, InvalidTextRepresentation):
        return "", 0
    found = _REFUSAL.search(error.diag.message_primary or "")
    return (found[1], int(found[2])) if found else ("", 0)


_AT = " at chunk "
_REFUSAL = re.compile(f'"({re.escape(LOCK_LOST)}|{re.escape(ROW_GONE)}){_AT}([0-9]+)"')


def _advance(journal: Journal, done: str, version: str, holds: str) -> sql.Composed:
    return sql.SQL(_ADVANCE).format(
        holds=sql.SQL(holds),
        table=journal.identifier,
        done=sql.SQL(done),
        version=sql.SQL(version),
        lock_lost=sql.Literal(LOCK_LOST + _AT),
        row_gone=sql.Literal(ROW_GONE + _AT),
        elapsed=sql.Identifier(ELAPSED_COLUMN),
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    """A journal's writes on one session: the names of its prepared start and progress
    statements, and the progress update written out (for a chunk that must not depend on
    them), with _VERSION and _DONE where its values go."""

    start: str
    advance: str
    update: str


_NAMES = itertools.count(1)  # never reused, so a name a lost session left behind is harmless
_VERSION, _DONE = "\x00v", "\x00d"  # holes in Prepared.update: no identifier holds NUL


@dataclass(slots=True)
class Writer:
    """The journal writes of one session: its prepared statements, by journal."""

    conn: Connection
    known: dict[Journal, Prepared] = field(default_factory=dict)

    def prepared(self, journal: Journal) -> tuple[Prepared, str]:
        """The session's writes for `journal`, and the PREPARE statements to send first when
        the session does not have them yet ("" when it does)."""
        prepared = self.known.get(journal)
        if prepared:
            return prepared, ""
        conn = self.conn
        number = next(_NAMES)
        prepared = self.known[journal] = Prepared(
            f"migrator_journal_start_{number}",
            f"migrator_journal_advance_{number}",
            _advance(journal, _DONE, _VERSION, holds_lock(conn)).as_string(conn),
        )
        text = sql.SQL(
            "PREPARE {start} (" + _START_TYPES + ") AS " + _START + "; "
            "PREPARE {advance} (bigint, integer) AS {update}"
        )
        return prepared, text.format(
            start=sql.Identifier(prepared.start),
            advance=sql.Identifier(prepared.advance),
            table=journal.identifier,
            update=_advance(journal, "$2", "$1", holds_lock(conn)),
        ).as_string(conn)

    def lost(self, error: BaseException | None) -> bool:
        """True when `error` says the session no longer has one of the prepared writes (a
        migration ran DEALLOCATE); they are then forgotten, to be prepared again."""
        if not isinstance(error, InvalidSqlStatementName):
            return False
        names = {n for s in self.known.values() for n in (s.start, s.advance)}
        if not any(f'"{n}"' in str(error) for n in names):
            return False
        self.known.clear()
        return True

    def start(
        self, prepared: Prepared, migration: Migration, chunks_done: int, note: str | None
    ) -> str:
        """Record a file as running from `chunks_done` (applied at once when none is left)."""
        conn = self.conn
        file = migration.file
        total = len(migration.chunks)
        done = chunks_done >= total
        status = RowStatus.APPLIED if done else RowStatus.RUNNING
        # Literals escaped by libpq, so that this shares a simple query (which cannot carry
        # parameters) with the session reset; psycopg's adapters cost more per file.
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
            f" {sql.quote(note, conn)}, {sql.quote(file.down.hash if file.down else None, conn)}"
        )
        return f"EXECUTE {sql.Identifier(prepared.start).as_string(conn)} ({arguments})"

    def advance(
        self, prepared: Prepared, version: int, *, written_out: bool = False
    ) -> Callable[[int], str]:
        """A file's journal update as text, given its chunks_done; it returns the file's
        elapsed milliseconds as ELAPSED_COLUMN. Through the prepared statement, or
        `written_out` (a chunk that commits on its own, or after the session lost it)."""
        if written_out:
            update = prepared.update.replace(_VERSION, str(int(version)))
            return lambda chunks_done: update.replace(_DONE, str(int(chunks_done)))
        head = f"EXECUTE {sql.Identifier(prepared.advance).as_string(self.conn)} ({int(version)}, "
        return lambda chunks_done: f"{head}{int(chunks_done)})"


_NOTE = (
    "note = concat_ws(E'\\n', note, %(note)s || ' by ' || current_user || ' at '"
    " || clock_timestamp()::text)"
)


def read_drizzle(conn: Connection, schema: str, name: str) -> list[DrizzleRow] | None:
    """The rows of Drizzle's migrations table, by id; None when there is no such table.

    ConfigError when the table lacks Drizzle's columns (id, hash, created_at).
    """
    from migrator.drizzle import DrizzleRow

    qualified = sql.Identifier(schema, name).as_string(conn)
    shape = {"id": "N", "hash": "S", "created_at": "N"}
    try:
        if check_shape(conn, qualified, shape, key="id", what="Drizzle's table") is None:
            return None
    except ConfigError as exc:
        exc.hint = "Name the table Drizzle's migrate() wrote with --table SCHEMA.TABLE."
        raise
    query = sql.SQL("SELECT id, hash, created_at FROM {} ORDER BY id").format(
        sql.Identifier(schema, name)
    )
    return [
        DrizzleRow(int(id_ or 0), str(hash_ or ""), None if created is None else int(created))
        for id_, hash_, created in conn.execute(query)
    ]
