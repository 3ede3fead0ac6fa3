"""The only module that connects: sessions, the advisory lock, per-file session state."""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from migrator.errors import CannotConnect, ConnectionLost, LockNotAcquired
from migrator.model import LockHolder, ServerMessage

# One documented key per database: the eight bytes "migrator", big-endian, as a bigint
# (7883946363647717234); other tools can coordinate with migrator by taking it.
LOCK_KEY = int.from_bytes(b"migrator", "big")
_HELD: weakref.WeakKeyDictionary[Connection, int] = weakref.WeakKeyDictionary()


def tenant_lock_key(schema: str) -> int:
    """The advisory lock key of a tenant schema: its own, so that the tenants of a database
    migrate in parallel (a signed bigint from a hash of the schema's name)."""
    digest = hashlib.sha256(f"migrator tenant {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def holds_lock(conn: Connection) -> str:
    """SQL that is true while this session still holds the lock it took (advisory_lock takes
    it twice, so giving one hold back and taking it again never lets go of it; a migration
    that released it leaves nothing to give back)."""
    key = int(_HELD.get(conn, LOCK_KEY))
    return (
        f"CASE WHEN pg_catalog.pg_advisory_unlock({key})"
        f" THEN pg_catalog.pg_try_advisory_lock({key}) ELSE false END"
    )


# For a write of the runner's own inside a transaction: as the user who connected, whatever
# role or session user a migration set (SET LOCAL reverts at commit to what it set).
AS_SESSION_USER = "SET LOCAL SESSION AUTHORIZATION DEFAULT; SET LOCAL ROLE NONE"
LOCK_POLL_SECONDS = 0.2
CONNECTION_CHECK = "2s"  # how soon a killed runner's server session notices (PostgreSQL 14+)

Connection = psycopg.Connection[Any]
Cursor = psycopg.Cursor[Any]


def mask(conninfo: str) -> str:
    """The target as users may see it: postgresql://user:***@host:port/dbname; a URL whose
    user and password libpq does not read as written shows nothing before its last '@'."""
    hidden = _hide_userinfo(conninfo)
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return hidden or "(an invalid connection string)"
    user = str(parts.get("user") or "")
    password = str(parts.get("password") or "")
    if hidden and unquote(_userinfo(conninfo) or "") not in (user, f"{user}:{password}"):
        return hidden  # libpq split it elsewhere (a '/' or '@' in the password): show none of it
    secret = ":***" if password else ""
    host = str(parts.get("host") or "")
    if "@" in host:  # libpq split an unencoded '@' of the password into the host
        return hidden or "(a URL with an unencoded '@' in its password)"
    port = f":{parts['port']}" if parts.get("port") else ""
    dbname = str(parts.get("dbname") or user)
    if host.startswith("/"):
        return f"postgresql://{user}{secret}@/{dbname}?host={host}"
    return f"postgresql://{user}{secret}@{host or 'localhost'}{port}/{dbname}"


def _userinfo(conninfo: str) -> str | None:
    """A URL's text between the scheme and the last '@' before its query (None: no such)."""
    _, scheme, rest = conninfo.strip().partition("://")
    address = rest.split("?", 1)[0]
    return address.rsplit("@", 1)[0] if scheme and "@" in address else None


def _hide_userinfo(conninfo: str) -> str:
    """The URL with everything between its scheme and its last '@' masked ("" if no such)."""
    userinfo = _userinfo(conninfo)
    if userinfo is None:
        return ""
    scheme, _, rest = conninfo.strip().partition("://")
    address = rest[len(userinfo) + 1 :].split("?", 1)[0]  # the query may hold a password too
    return f"{scheme}://***@{address}"


def target(conn: Connection) -> str:
    """The connected target as users may see it: postgresql://user:***@host:port/dbname."""
    info = conn.info
    secret = ":***" if info.password else ""
    if info.host.startswith("/"):
        return f"postgresql://{info.user}{secret}@/{info.dbname}?host={info.host}"
    return f"postgresql://{info.user}{secret}@{info.host}:{info.port}/{info.dbname}"


def scrub(text: str, conninfo: str) -> str:
    """The text with the connection string, wherever it appears whole, shown masked (and the
    URL's user and password part of it, wherever that appears); nothing else is edited."""
    if not conninfo.strip():
        return text
    text = text.replace(conninfo, mask(conninfo))
    userinfo = _userinfo(conninfo)
    if userinfo and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        text = text.replace(f"{userinfo}@", f"{user}:***@")
    return text


_NAMING = ("host", "hostaddr", "dbname", "user", "service")


def connect(
    conninfo: str,
    *,
    application_name: str = "migrator",
    wait: float = 0,
    on_wait: Callable[[str], None] = lambda message: None,
) -> Connection:
    """An autocommit session, retried for up to `wait` seconds (told once to `on_wait`);
    CannotConnect (masked target, one line) when it cannot be had."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.Error:
        raise CannotConnect(
            "the database URL is not valid",
            hint="Expected postgresql://user:password@host:port/dbname or key=value pairs.",
        ) from None
    if conninfo.strip() and not any(parts.get(key) for key in _NAMING):
        raise CannotConnect(
            "the database URL names no host, database or user",
            hint="Expected postgresql://user:password@host:port/dbname; to use libpq's PG* "
            "variables instead, leave the URL unset.",
        )
    if "@" in str(parts.get("host") or ""):
        raise CannotConnect(
            "the database URL has an unencoded '@' in its user or password",
            hint="Percent-encode it as %40 (postgresql://user:pa%40ss@host/db).",
        )
    # The runner's texts are Python strings: UTF8 holds every one, whatever PGCLIENTENCODING says.
    extra: dict[str, object] = {"application_name": application_name, "client_encoding": "UTF8"}
    if "connect_timeout" not in parts:
        extra["connect_timeout"] = 10
    deadline = time.monotonic() + wait
    waited = False
    while True:
        try:
            conn: Connection = psycopg.connect(conninfo, autocommit=True, **extra)  # type: ignore[arg-type]
            return conn
        except psycopg.Error as exc:
            reason = scrub(" ".join(str(exc).split()), conninfo)
            if time.monotonic() < deadline:
                if not waited:
                    on_wait(f"waiting up to {wait:g}s for {mask(conninfo)}: {reason}")
                    waited = True
                time.sleep(0.5)
                continue
            after = f" after waiting {wait:g}s" if waited else ""
            raise CannotConnect(
                f"cannot connect to {mask(conninfo)}{after}: {reason}",
                hint="Check the URL (--database-url, MIGRATOR_DATABASE_URL or DATABASE_URL) and "
                "that the server is up.",
            ) from None


def journal_locked(conn: Connection) -> LockNotAcquired:
    """A statement of the runner's own (reading or writing a journal) gave up on a table lock
    after lock_timeout: who held it, and what to do."""
    blocked = describe_blockers(blockers(conn))
    row = conn.execute("SELECT current_setting('lock_timeout')").fetchone()
    return LockNotAcquired(
        f"the journal is locked by another session: gave up after lock_timeout "
        f"({row[0] if row else '?'}); {blocked}",
        hint="Another session locks the journal table: end that session's transaction (or "
        "SELECT pg_terminate_backend(pid)), or raise lock_timeout (MIGRATOR_LOCK_TIMEOUT); "
        "then run again.",
    )


def relay_messages(conn: Connection, relay: Callable[[ServerMessage], None]) -> None:
    """Pass every NOTICE and WARNING the server sends on this session to `relay`."""

    def handle(diagnostic: psycopg.errors.Diagnostic) -> None:
        relay(
            ServerMessage(
                diagnostic.severity_nonlocalized or diagnostic.severity or "NOTICE",
                diagnostic.message_primary or "",
                diagnostic.message_detail or "",
                diagnostic.message_hint or "",
            )
        )

    conn.add_notice_handler(handle)


def connection_lost(where: str, error: BaseException | None) -> ConnectionLost:
    """The server connection broke (during `where`, if given): what was in progress is gone."""
    reason = ""
    if isinstance(error, psycopg.Error):
        reason = error.diag.message_primary or " ".join(str(error).split())
    elif error is not None:
        reason = " ".join(str(error).split())
    return ConnectionLost(
        "the connection to the server was lost"
        + (f" during {where}" if where else "")
        + (f": {reason}" if reason else ""),
        hint="The server rolled back what was in progress, and the journal records every "
        "statement that committed: run again, and the next run resumes at the first one not "
        "recorded as done.",
    )


def session_reset_sql(
    conn: Connection, schema: str, lock_timeout: str, statement_timeout: str
) -> list[sql.Composable]:
    """A clean session for the next file: RESET ALL (not DISCARD ALL: it drops the lock)."""
    parts: list[sql.Composable] = [
        sql.SQL("RESET ALL"),
        sql.SQL("RESET SESSION AUTHORIZATION"),
        sql.SQL("RESET ROLE"),
        sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)),
        sql.SQL("SET lock_timeout TO {}").format(sql.Literal(lock_timeout)),
        sql.SQL("SET statement_timeout TO {}").format(sql.Literal(statement_timeout)),
        # The lexer reads '...' as the SQL standard does; a database or role set to off would
        # have the server split the text elsewhere than the chunks were counted.
        sql.SQL("SET standard_conforming_strings TO on"),
    ]
    if conn.info.server_version >= 140000:
        parts.append(
            sql.SQL("SET client_connection_check_interval TO {}").format(
                sql.Literal(CONNECTION_CHECK)
            )
        )
    return parts


_RESET_TEXTS: dict[tuple[str, str, str, int], str] = {}


def session_reset_text(
    conn: Connection, schema: str, lock_timeout: str, statement_timeout: str
) -> str:
    """session_reset_sql as one text, composed once per schema and timeouts."""
    key = (schema, lock_timeout, statement_timeout, conn.info.server_version)
    text = _RESET_TEXTS.get(key)
    if text is None:
        parts = session_reset_sql(conn, schema, lock_timeout, statement_timeout)
        text = _RESET_TEXTS[key] = sql.SQL("; ").join(parts).as_string(conn)
    return text


def reset_session(conn: Connection, schema: str, lock_timeout: str, statement_timeout: str) -> None:
    """Reset the session for the next file or seed process."""
    conn.execute(session_reset_text(conn, schema, lock_timeout, statement_timeout), prepare=False)


def standard_strings(conn: Connection) -> None:
    """Turn standard_conforming_strings back on when a chunk turned it off: the next query is
    read by the server as the lexer read it (the server reports the setting's changes)."""
    if conn.info.parameter_status("standard_conforming_strings") != "on":
        conn.execute("SET standard_conforming_strings TO on")


def set_lock_timeout(conn: Connection, value: str) -> None:
    """Set the session's lock_timeout ("0" turns it off)."""
    conn.execute(sql.SQL("SET lock_timeout TO {}").format(sql.Literal(value)))


def lock_holder(conn: Connection, key: int = LOCK_KEY) -> LockHolder | None:
    """The session holding the runner's advisory lock (`key`) in this database, if any."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF  # pg_locks shows a bigint key as two unsigned halves
    row = conn.execute(
        "SELECT a.pid, coalesce(a.application_name, ''), a.backend_start, coalesce(a.query, '')"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid::bigint = %s AND l.objid::bigint = %s",
        (unsigned >> 32, unsigned & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return None
    pid, name, since, query = row
    return LockHolder(pid, name, since, query)


@contextmanager
def advisory_lock(
    conn: Connection,
    wait: float,
    on_wait: Callable[[LockHolder | None], None],
    key: int = LOCK_KEY,
) -> Iterator[None]:
    """Hold the session advisory lock `key`, polling for up to `wait` seconds; LockNotAcquired
    after."""
    deadline = time.monotonic() + wait
    shown: tuple[object, ...] | None = None
    while conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone() != (True,):
        holder = lock_holder(conn, key)
        if holder is not None and (holder.pid, holder.since) != shown:
            on_wait(holder)
            shown = (holder.pid, holder.since)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            who = describe_holder(holder) if holder else "another session"
            raise LockNotAcquired(
                f"the migration lock is held by {who}; gave up after {wait:g}s",
                hint="Wait for that run to finish, or raise lock_wait (MIGRATOR_LOCK_WAIT).",
            )
        time.sleep(min(LOCK_POLL_SECONDS, remaining))
    # A second hold, for holds_lock to give back and take again.
    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    _HELD[conn] = key
    try:
        yield
    finally:
        _HELD.pop(conn, None)
        if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            # Both holds, or what a migration left of them, without a warning for a missing one.
            conn.execute("SELECT pg_advisory_unlock_all()")


# Who held a lock that a statement gave up on (lock_timeout, 55P03). A session cannot look at
# its own wait, so this runs just after the failed statement rolled back: the other sessions
# of this database holding a granted lock, whose transaction began at least lock_timeout ago
# (or whose start this role may not see); those holding the strongest lock on a user table
# first, then the oldest transaction.
_BLOCKERS = """
WITH held AS (
    SELECT l.pid,
           max(array_position(ARRAY['AccessShareLock', 'RowShareLock', 'RowExclusiveLock',
               'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock',
               'ExclusiveLock', 'AccessExclusiveLock'], l.mode)) AS strength,
           string_agg(DISTINCT l.mode || ' on ' || l.relation::regclass::text, ', ') AS locks
      FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
     WHERE l.granted AND l.locktype = 'relation' AND c.oid >= 16384
       AND c.relkind IN ('r', 'p', 'm', 'f')
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     GROUP BY l.pid
)
SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), a.xact_start, h.locks
  FROM pg_stat_activity a LEFT JOIN held h ON h.pid = a.pid
 WHERE a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND a.pid <> pg_backend_pid()
   AND (a.xact_start IS NULL AND a.state IS NULL
        OR a.xact_start <= clock_timestamp() - current_setting('lock_timeout')::interval)
   AND (h.pid IS NOT NULL OR EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid
        AND l.granted AND l.locktype IN ('relation', 'tuple', 'transactionid', 'object')))
 ORDER BY h.strength DESC NULLS LAST, a.xact_start NULLS LAST, a.pid
 LIMIT 3
"""


def blockers(conn: Connection) -> list[str]:
    """The sessions that most likely held the lock a statement just timed out on, described:
    'pid 123 (psql, idle in transaction since 2024-05-01 12:00:01, holding AccessExclusiveLock
    on orders)'. Best effort: [] when none is found or the lookup itself fails."""
    try:
        rows = conn.execute(_BLOCKERS).fetchall()
    except psycopg.Error:
        return []
    found = []
    for pid, name, state, since, locks in rows:
        parts = [name or "no application_name"]
        if state:
            parts.append(f"{state} since {since:%Y-%m-%d %H:%M:%S}" if since else state)
        if locks:
            parts.append(f"holding {locks}")
        found.append(f"pid {pid} ({', '.join(parts)})")
    return found


def describe_blockers(found: list[str]) -> str:
    """'blocked by pid 123 (...)', or what to make of finding none."""
    if not found:
        return "no blocking session is left: its transaction has ended meanwhile"
    return "blocked by " + "; ".join(found)


def describe_holder(holder: LockHolder) -> str:
    """pid 123 (migrator, connected since 12:00:01)."""
    since = f", connected since {holder.since:%Y-%m-%d %H:%M:%S}" if holder.since else ""
    return f"pid {holder.pid} ({holder.application_name or 'no application_name'}{since})"


def schema_exists(conn: Connection, schema: str) -> bool:
    """True when the schema is there."""
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def drop_schema(conn: Connection, schema: str) -> None:
    """Drop a schema with everything in it; public is created again, empty."""
    with conn.transaction():
        conn.execute("SET LOCAL client_min_messages TO warning")  # not "drop cascades to ..."
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        if schema == "public":
            owner = "pg_database_owner" if conn.info.server_version >= 140000 else "CURRENT_USER"
            conn.execute(sql.SQL("CREATE SCHEMA public AUTHORIZATION " + owner))
            conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
