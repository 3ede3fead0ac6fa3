"""All SQL on a schema's journal of repeatable files, "<schema>"."<journal>_repeatable"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from psycopg import sql

from migrator import __version__
from migrator.db import AS_SESSION_USER, Connection, holds_lock, schema_exists
from migrator.errors import ConfigError
from migrator.journal import LOCK_LOST, ROW_GONE, as_session_user, check_shape
from migrator.model import RepeatableRow, SqlFile

SUFFIX = "_repeatable"
STATUSES = ("applied", "failed", "running", "due")
_SHAPE = {
    "name": "S",
    "hash": "S",
    "content": "S",
    "status": "S",
    "runs": "N",
    "error": "S",
    "started_at": "D",
    "finished_at": "D",
    "duration_ms": "N",
    "applied_by": "S",
    "migrator_version": "S",
    "note": "S",
}
_CREATE = """
CREATE TABLE {table} (
    name text PRIMARY KEY,
    hash text NOT NULL DEFAULT '',
    content text NOT NULL DEFAULT '',
    status text NOT NULL CHECK (status IN ('applied', 'failed', 'running', 'due')),
    runs integer NOT NULL DEFAULT 0,
    error text,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    duration_ms bigint,
    applied_by text NOT NULL DEFAULT current_user,
    migrator_version text NOT NULL,
    note text
)"""


@dataclass(frozen=True, slots=True)
class RepeatableJournal:
    """One schema's journal of repeatable files: a row per file, by its name."""

    schema: str
    journal_table: str = "__migrations"

    @property
    def identifier(self) -> sql.Identifier:
        """The qualified name, for composing SQL."""
        return sql.Identifier(self.schema, self.journal_table + SUFFIX)

    def read(self, conn: Connection) -> dict[str, RepeatableRow] | None:
        """Every row by file name; None when there is no such table yet."""
        qualified = self.identifier.as_string(conn)
        extra = check_shape(conn, qualified, _SHAPE, key="name", what="repeatable journal")
        if extra is None:
            return None
        required = [column for column, not_null in extra.items() if not_null]
        if required:
            raise ConfigError(
                f"repeatable journal {qualified} has NOT NULL columns without a default that "
                f"migrator does not fill: {', '.join(required)}",
                hint="A newer migrator may have written it: upgrade migrator.",
            )
        query = sql.SQL(
            "SELECT name, hash, status, runs, error, finished_at, duration_ms FROM {}"
        ).format(self.identifier)
        rows = {}
        for name, hash_, status, runs, error, finished_at, duration_ms in conn.execute(query):
            if status not in STATUSES:
                raise ConfigError(
                    f"repeatable journal {qualified}: status '{status}' for {name}, which this "
                    f"migrator ({__version__}) does not know",
                    hint="A newer migrator or a hand edit wrote it: upgrade migrator, or set "
                    f"the status back to one of {', '.join(STATUSES)}.",
                )
            rows[name] = RepeatableRow(name, hash_, status, runs, error, finished_at, duration_ms)
        return rows

    def ensure(self, conn: Connection) -> None:
        """Create the schema (when missing) and the table (when missing)."""
        with as_session_user(conn):
            qualified = self.identifier.as_string(conn)
            shape = check_shape(conn, qualified, _SHAPE, key="name", what="repeatable journal")
            if shape is not None:
                return  # there, of our shape (check_shape refuses another)
            if not schema_exists(conn, self.schema):
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            conn.execute(sql.SQL(_CREATE).format(table=self.identifier))

    def exists(self, conn: Connection) -> bool:
        """True when the table is there."""
        found = conn.execute("SELECT to_regclass(%s)", (self.identifier.as_string(conn),))
        return (found.fetchone() or (None,))[0] is not None

    def running(self, conn: Connection, file: SqlFile) -> None:
        """Record a no-transaction file as running: cut short, it is due again."""
        query = sql.SQL(
            "INSERT INTO {} AS r (name, status, migrator_version) VALUES (%s, 'running', %s)"
            " ON CONFLICT (name) DO UPDATE SET status = 'running', error = NULL,"
            " started_at = clock_timestamp()"
        ).format(self.identifier)
        with as_session_user(conn):
            conn.execute(query, (file.name, __version__))

    def check(self, conn: Connection, chunk: int, expected: int) -> str:
        """A statement, as text, that fails unless the runner still holds its advisory lock
        and the table holds at least `expected` rows (the reason as a failed cast, as in the
        journal's progress updates)."""
        return (
            sql.SQL(
                "SELECT CAST(CASE WHEN NOT " + holds_lock(conn) + " THEN {lock_lost}"
                " WHEN (SELECT count(*) FROM {table}) < {expected} THEN {row_gone} END AS bigint)"
            )
            .format(
                table=self.identifier,
                expected=sql.Literal(int(expected)),
                lock_lost=sql.Literal(f"{LOCK_LOST} at chunk {int(chunk)}"),
                row_gone=sql.Literal(f"{ROW_GONE} at chunk {int(chunk)}"),
            )
            .as_string(conn)
        )

    def applied(self, conn: Connection, file: SqlFile, elapsed_ms: int, expected: int) -> str:
        """The statement, as text, that records the file as applied after `elapsed_ms`, for
        the transaction that applies it: it fails (rolling the file back) unless the runner
        still holds its advisory lock and the table still holds `expected` rows."""
        text = sql.SQL(
            AS_SESSION_USER + "; "
            "INSERT INTO {table} AS r (name, hash, content, status, runs, started_at,"
            " finished_at, duration_ms, migrator_version) VALUES ({name}, {hash}, {content},"
            " 'applied', 1, clock_timestamp() - {ms} * interval '1 millisecond',"
            " clock_timestamp(), {ms}, {migrator})"
            " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, content = excluded.content,"
            " status = 'applied', runs = r.runs + 1, error = NULL,"
            " started_at = excluded.started_at, finished_at = excluded.finished_at,"
            " duration_ms = excluded.duration_ms, applied_by = current_user,"
            " migrator_version = excluded.migrator_version; "
        ).format(
            table=self.identifier,
            name=sql.Literal(file.name),
            hash=sql.Literal(file.hash),
            content=sql.Literal(file.text),
            ms=sql.Literal(int(elapsed_ms)),
            migrator=sql.Literal(__version__),
        )
        return text.as_string(conn) + self.check(conn, 0, expected)

    def adopt(self, conn: Connection, file: SqlFile, note: str) -> None:
        """Record a file another runner applied as it is now, without running it (a row
        migrator wrote already is kept)."""
        query = sql.SQL(
            "INSERT INTO {} (name, hash, content, status, runs, finished_at, duration_ms,"
            " migrator_version, note) VALUES (%s, %s, %s, 'applied', 0, clock_timestamp(), 0,"
            " %s, %s || ' by ' || current_user || ' at ' || clock_timestamp()::text)"
            " ON CONFLICT (name) DO NOTHING"
        ).format(self.identifier)
        with as_session_user(conn):
            conn.execute(query, (file.name, file.hash, file.text, __version__, note))

    def restore(self, conn: Connection, rows: Mapping[str, RepeatableRow], running: str) -> None:
        """Put back rows a file removed (creating the table if it is gone): as read, but those
        this run applied, which are due again, and `running`'s, which runs again."""
        self.ensure(conn)
        query = sql.SQL(
            "INSERT INTO {} (name, hash, status, runs, error, finished_at, duration_ms,"
            " migrator_version, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
            " 'put back after a repeatable file removed it') ON CONFLICT (name) DO NOTHING"
        ).format(self.identifier)
        values = [
            (
                row.name,
                row.hash,
                "running" if row.name == running else row.status,
                row.runs,
                row.error,
                row.finished_at,
                row.duration_ms,
                __version__,
            )
            for row in rows.values()
        ]
        if running not in rows:
            values.append((running, "", "running", 0, None, None, None, __version__))
        with as_session_user(conn), conn.cursor() as cursor:
            cursor.executemany(query, values)

    def fail(self, conn: Connection, file: SqlFile, error: str) -> None:
        """Record a failed run; the text last applied (its hash and content) stays."""
        query = sql.SQL(
            "INSERT INTO {} AS r (name, status, error, migrator_version)"
            " VALUES (%(name)s, 'failed', %(error)s, %(migrator)s)"
            " ON CONFLICT (name) DO UPDATE SET status = 'failed', error = excluded.error"
        ).format(self.identifier)
        with as_session_user(conn):
            conn.execute(query, {"name": file.name, "error": error, "migrator": __version__})

    def mark_due(self, conn: Connection, note: str) -> None:
        """Make every applied repeatable file due (a rollback may have dropped what it made)."""
        if not self.exists(conn):
            return
        query = sql.SQL(
            "UPDATE {} SET status = 'due', note = concat_ws(E'\\n', note, %s || ' by '"
            " || current_user || ' at ' || clock_timestamp()::text) WHERE status = 'applied'"
        ).format(self.identifier)
        with as_session_user(conn):
            conn.execute(query, (note,))

    def forget(self, conn: Connection, name: str) -> None:
        """Delete a file's row (the file was deleted on purpose)."""
        query = sql.SQL("DELETE FROM {} WHERE name = %s").format(self.identifier)
        conn.execute(query, (name,))
