"""Applies plans: per-chunk transactions, autocommit chunks, single-transaction files, retries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from migrator import db, journal, planner, sqlfile
from migrator.errors import BadFile, ConfigError, MigrationFailed, MigratorError
from migrator.model import (
    Chunk,
    ChunkKind,
    FileOutcome,
    FileState,
    FileStatus,
    JournalRow,
    Migration,
    Plan,
    Reporter,
    SqlFile,
    Step,
    TxMode,
)

if TYPE_CHECKING:
    from migrator.drizzle import Adoption, DrizzleRow


# A batch's bounds: the server parses a whole query before running it, and the client holds
# every result of it, so a file of thousands of chunks goes in several batches.
BATCH_CHUNKS = 500
BATCH_TEXT = 4 << 20  # characters of chunk text


@dataclass(frozen=True, slots=True)
class Options:
    """How to apply: journal table, timeouts, retries, lock wait, and the plan's bounds."""

    journal_table: str = "__migrations"
    lock_timeout: str = "10s"
    statement_timeout: str = "0"
    lock_retries: int = 3
    retry_delay: float = 0.5  # seconds before the first retry; doubled for each next one
    lock_wait: float = 60.0
    to: int | None = None
    allow_out_of_order: bool = False
    only: str | None = None
    force: bool = False


def preview(
    conn: db.Connection, files: Mapping[str, Sequence[SqlFile]], options: Options
) -> list[Plan]:
    """The plans `migrate` would apply now; reads the journals, takes no lock, writes nothing."""
    return _plan(files, _journals(conn, files, options.journal_table), options)


def _journals(
    conn: db.Connection, files: Mapping[str, Sequence[SqlFile]], table: str
) -> dict[str, list[JournalRow] | None]:
    """Each schema's journal rows; None where the schema has no journal yet."""
    return {schema: journal.read(conn, schema, table, brief=True) for schema in files}


def _plan(
    files: Mapping[str, Sequence[SqlFile]],
    journals: Mapping[str, list[JournalRow] | None],
    options: Options,
) -> list[Plan]:
    return planner.plan(
        files,
        {schema: rows or [] for schema, rows in journals.items()},
        to=options.to,
        allow_out_of_order=options.allow_out_of_order,
        only=options.only,
        force=options.force,
    )


def migrate(
    conn: db.Connection,
    files: Mapping[str, Sequence[SqlFile]],
    options: Options,
    reporter: Reporter,
    confirm: Callable[[list[Plan]], None] = lambda plans: None,
) -> list[FileOutcome]:
    """Under the advisory lock: plan every schema, let `confirm` see the plans, then apply."""
    with db.advisory_lock(conn, options.lock_wait, reporter.lock_waiting):
        journals = _journals(conn, files, options.journal_table)
        plans = _plan(files, journals, options)
        if any(plan.steps for plan in plans):
            confirm(plans)
        outcomes: list[FileOutcome] = []
        for plan in plans:
            if plan.steps and journals[plan.schema] is None:
                journal.ensure(conn, plan.schema, options.journal_table)
            outcomes.extend(apply(conn, plan, options, reporter))
        return outcomes


def assess(
    conn: db.Connection, files: Mapping[str, Sequence[SqlFile]], table: str
) -> list[FileStatus]:
    """The state of every file and journal row of the given schemas; reads, never locks."""
    return [
        status
        for schema, found in files.items()
        for status in planner.assess(schema, found, journal.read(conn, schema, table) or [])
    ]


def apply(
    conn: db.Connection, plan: Plan, options: Options, reporter: Reporter
) -> list[FileOutcome]:
    """Apply a schema's steps in order; MigrationFailed (journal marked) at the first failure."""
    return [_apply_step(conn, plan.schema, step, options, reporter) for step in plan.steps]


def _apply_step(
    conn: db.Connection, schema: str, step: Step, options: Options, reporter: Reporter
) -> FileOutcome:
    migration = step.migration
    table = options.journal_table
    lock_timeout = migration.lock_timeout or options.lock_timeout
    statements = _start(conn, schema, step, options, lock_timeout)
    reporter.file_started(step)
    started = time.monotonic()
    plain = _recorder(conn, step, statements, written_out=True)
    try:
        if migration.mode is TxMode.SINGLE:
            if migration.chunks:
                _retrying(lambda: _run_single(conn, step, plain), step, options, reporter)
        else:
            fast = _recorder(conn, step, statements)
            _run_chunks(conn, step, (fast, plain), options, reporter, lock_timeout, started)
    except _ChunkError as failure:
        raise _fail(conn, step, failure, table) from failure
    outcome = FileOutcome(
        schema,
        migration.file.path,
        len(migration.chunks) - step.chunks_done,
        len(migration.chunks),
        _ms_since(started),
        step.chunks_done,
    )
    reporter.file_done(outcome)
    return outcome


def _start(
    conn: db.Connection, schema: str, step: Step, options: Options, lock_timeout: str
) -> journal.Prepared:
    """Reset the session and record the file as running, in one round trip and transaction
    (PREPARing the journal writes first when the session lacks them); the journal writes."""
    migration = step.migration
    note = "run again with --only --force" if step.forced else None
    reset = db.session_reset_text(
        conn, schema, lock_timeout, migration.statement_timeout or options.statement_timeout
    )
    while True:
        statements, prepare = journal.prepared(conn, schema, options.journal_table)
        # PREPARE after the reset: it looks the journal up as the session user, not as a role
        # the previous file left set.
        parts = [reset, prepare] if prepare else [reset]
        parts.append(journal.start_sql(conn, statements, migration, step.chunks_done, note))
        if step.chunks_done < len(migration.chunks):
            # A chunk and its journal update commit in one transaction, so losing an
            # asynchronous commit to a server crash loses both or neither; the last chunk of
            # every file commits synchronously, which flushes all the commits before it.
            parts.append("SET LOCAL synchronous_commit TO off")
        try:
            conn.execute("; ".join(parts), prepare=False)
            return statements
        except pg_errors.InvalidSqlStatementName as exc:
            if prepare or not journal.lost_prepared(conn, exc):
                raise


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class _ChunkError(Exception):
    """A chunk's failure (a server error, or `message`), on its way to becoming MigrationFailed."""

    def __init__(
        self,
        chunk: Chunk,
        error: psycopg.Error | None,
        message: str = "",
        *,
        offset: int = 0,
        parse_error: bool = False,
        where: str = "",
    ) -> None:
        super().__init__(message or str(error))
        self.chunk = chunk
        self.error = error
        self.message = message
        self.offset = offset  # where the chunk started in the query the server saw
        self.parse_error = parse_error  # the server could not parse it, so nothing ran
        self.where = where  # the chunks in flight when the connection was lost, if not one
        self.retries = 0  # how many times it was retried after lock_timeout


def _execute(conn: db.Connection, chunk: Chunk) -> None:
    try:
        conn.execute(chunk.sql)  # the user's SQL, sent as written
    except psycopg.Error as exc:
        raise _ChunkError(chunk, exc) from exc


@contextmanager
def _transaction(conn: db.Connection, chunk: Chunk) -> Iterator[None]:
    """A transaction whose failure, COMMIT included (deferred constraints), is the chunk's."""
    try:
        with conn.transaction():
            yield
    except psycopg.Error as exc:
        raise _ChunkError(chunk, exc) from exc


Record = Callable[[int], str]  # chunks_done -> the journal update, as SQL text


def _recorder(
    conn: db.Connection, step: Step, statements: journal.Prepared, *, written_out: bool = False
) -> Record:
    """The journal update of a step's file (through the prepared statement unless
    `written_out`), written as the session user even when the file switched roles (SET LOCAL
    reverts at commit to the role the file set)."""
    update = journal.advance_text(
        conn, statements, step.migration.file.version, written_out=written_out
    )
    if not step.migration.sets_role:
        return update
    return lambda chunks_done: "SET LOCAL ROLE NONE; " + update(chunks_done)


def _run_chunks(
    conn: db.Connection,
    step: Step,
    records: tuple[Record, Record],
    options: Options,
    reporter: Reporter,
    lock_timeout: str,
    started: float,
) -> None:
    """Run a step's remaining chunks in order: each run of transactional chunks as one batch
    (journaled through the prepared statement, `records[0]`), the others one by one (written
    out, `records[1]`: a chunk that commits on its own must not lose its journal update to a
    DEALLOCATE); a transactional chunk that hits lock_timeout is retried from there."""
    record, plain = records
    migration = step.migration
    chunks = migration.chunks
    position = step.chunks_done  # chunks of the file that have committed
    retried, retries = 0, 0  # the chunk being retried after lock_timeout, and how often
    while position < len(chunks):
        chunk = chunks[position]
        if migration.mode is TxMode.NONE or chunk.kind is not ChunkKind.TRANSACTIONAL:
            chunk_started = time.monotonic()
            _run_autocommit(conn, step, chunk, plain, lock_timeout)
            reporter.chunk_done(step, chunk, _ms_since(chunk_started))
            position += 1
            continue
        end = batch_end(chunks, position, conn.info.server_version)
        try:
            _run_batch(conn, step, chunks[position:end], record, reporter, options, started)
            position = end
        except _ChunkError as failure:
            if record is not plain and journal.lost_prepared(conn, failure.error):
                # A chunk dropped the prepared journal update (DEALLOCATE): its transaction
                # rolled back, so it runs again with the update written out.
                record, position = plain, failure.chunk.index - 1
                continue
            if failure.chunk.index != retried:
                retried, retries = failure.chunk.index, 0
            _wait_to_retry(failure, retries, step, options, reporter)
            retries += 1
            position = failure.chunk.index - 1


def batch_end(chunks: Sequence[Chunk], position: int, server_version: int) -> int:
    """Where the batch of transactional chunks starting at `position` ends (exclusive)."""
    end = position + 1
    if server_version < 130000:
        # statement_timeout timed a multi-statement query as a whole before PostgreSQL 13.
        return end
    size = len(chunks[position].sql)
    while (
        end < len(chunks)
        and chunks[end].kind is ChunkKind.TRANSACTIONAL
        and end - position < BATCH_CHUNKS
        and size + len(chunks[end].sql) <= BATCH_TEXT
    ):
        size += len(chunks[end].sql)
        end += 1
    return end


def _run_batch(
    conn: db.Connection,
    step: Step,
    batch: Sequence[Chunk],
    record: Record,
    reporter: Reporter,
    options: Options,
    started: float,
) -> None:
    """Transactional chunks sent as one simple query, each in its own BEGIN ... COMMIT together
    with its journal update: one round trip for all of them, and a failure stops at the chunk
    that failed with every chunk before it committed and journaled; `started` is the file's
    start, from which the journal measures its elapsed time."""
    total = len(step.migration.chunks)
    parts: list[str] = []
    offsets: list[int] = []  # where each chunk starts in the query, in characters
    length = 0
    for chunk in batch:
        # A chunk and its journal update commit in one transaction, so losing an asynchronous
        # commit to a server crash loses both or neither; the last chunk of every file commits
        # synchronously, which flushes all the commits before it.
        head = (
            "BEGIN; SET LOCAL synchronous_commit TO off;\n" if chunk.index < total else "BEGIN;\n"
        )
        # The newline ends a line comment the chunk may finish with; ";" ends its last statement.
        part = f"{head}{chunk.sql}\n;{record(chunk.index)};\nCOMMIT;\n"
        offsets.append(length + len(head))
        parts.append(part)
        length += len(part)
    elapsed_ms = _ms_since(started)
    try:
        cursor = conn.execute("".join(parts), prepare=False)
    except psycopg.Error as exc:
        failure = _batch_failure(conn, step, batch, offsets, exc, options.journal_table)
        ran = failure.chunk.index - batch[0].index
        if failure.parse_error and ran:
            # The server parses the whole query before running any of it: nothing ran, so the
            # chunks before the one that does not parse are sent again, on their own.
            _run_batch(conn, step, batch[:ran], record, reporter, options, started)
        elif not failure.where:
            for chunk in batch[:ran]:  # committed before the failure; their times went with it
                reporter.chunk_done(step, chunk, None)
        raise failure from exc
    # Each journal update returns the file's elapsed time, which gives every chunk's duration.
    # Read from the raw results: building column descriptions for each one showed up.
    elapsed: list[int] = []
    column = journal.ELAPSED_COLUMN.encode()
    while True:
        result = cursor.pgresult
        if result and result.nfields == 1 and result.ntuples == 1 and result.fname(0) == column:
            elapsed.append(int(result.get_value(0, 0) or 0))
        if not cursor.nextset():
            break
    if len(elapsed) != len(batch):  # a chunk of the user's returned a column of that name
        elapsed = [elapsed_ms] * len(batch)
    for chunk, ms in zip(batch, elapsed, strict=True):
        reporter.chunk_done(step, chunk, max(ms - elapsed_ms, 0))
        elapsed_ms = ms


def _batch_failure(
    conn: db.Connection,
    step: Step,
    batch: Sequence[Chunk],
    offsets: Sequence[int],
    error: psycopg.Error,
    table: str,
) -> _ChunkError:
    """Which chunk of a failed batch failed: the first one the journal does not record as
    done; or, when none of the batch ran and the server could not parse the query, the one
    its error position points into (nothing ran: the server parses a query whole first)."""
    file = step.migration.file
    if conn.broken or conn.closed:
        last = batch[-1].index
        where = f"chunk {batch[0].index}" + (f" to {last}" if last > batch[0].index else "")
        return _ChunkError(batch[0], error, where=where)
    if conn.info.transaction_status != TransactionStatus.IDLE:
        conn.execute("ROLLBACK")
    done = journal.chunks_done(conn, file.schema, table, file.version)
    failed = min(max(done - batch[0].index + 1, 0), len(batch) - 1)
    position = error.diag.statement_position
    if not (position and position.isdigit()):
        return _ChunkError(batch[failed], error, offset=offsets[failed])
    # The chunk whose text, or the runner's text right after it, holds the position.
    at = int(position) - 1
    located = max((i for i, offset in enumerate(offsets) if offset <= at), default=0)
    parse_error = (error.sqlstate or "")[:2] in ("42", "22")
    if located > failed and done < batch[0].index and parse_error:
        return _ChunkError(batch[located], error, offset=offsets[located], parse_error=True)
    # A position elsewhere (a function body PostgreSQL found further on) is not this chunk's.
    return _ChunkError(batch[failed], error, offset=offsets[failed])


def _run_single(conn: db.Connection, step: Step, record: Record) -> None:
    chunks = step.migration.chunks
    with _transaction(conn, chunks[-1]):
        for chunk in chunks:
            _execute(conn, chunk)
        conn.execute(record(len(chunks)), prepare=False)


def _run_autocommit(
    conn: db.Connection, step: Step, chunk: Chunk, record: Record, lock_timeout: str
) -> None:
    # Aborting a CONCURRENTLY build on lock_timeout would leave an invalid index behind.
    unbounded = chunk.kind is ChunkKind.AUTOCOMMIT
    if unbounded:
        db.set_lock_timeout(conn, "0")
    try:
        _execute(conn, chunk)
    finally:
        left_open = not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE
        if left_open:
            conn.execute("ROLLBACK")  # the chunk's own BEGIN left a transaction open or failed
        if unbounded and not conn.broken:
            db.set_lock_timeout(conn, lock_timeout)
    if left_open:
        raise _ChunkError(chunk, None, "the chunk left a transaction open, which was rolled back")
    with _transaction(conn, chunk):
        conn.execute(record(chunk.index), prepare=False)


def _retrying(run: Callable[[], None], step: Step, options: Options, reporter: Reporter) -> None:
    """Run, retrying with a doubling delay while the chunk fails on lock_timeout (55P03)."""
    for attempt in range(options.lock_retries + 1):
        try:
            run()
            return
        except _ChunkError as failure:
            _wait_to_retry(failure, attempt, step, options, reporter)


def _wait_to_retry(
    failure: _ChunkError, retries: int, step: Step, options: Options, reporter: Reporter
) -> None:
    """After a chunk's failure (retried `retries` times so far): raise it unless it is a
    lock_timeout (55P03) with retries left; else report the retry and wait the doubling delay."""
    if not isinstance(failure.error, pg_errors.LockNotAvailable):
        raise failure
    if retries == options.lock_retries:
        failure.retries = retries
        raise failure
    delay = options.retry_delay * 2**retries
    reporter.chunk_retry(step, failure.chunk, retries + 1, delay)
    time.sleep(delay)


def _fail(conn: db.Connection, step: Step, failure: _ChunkError, table: str) -> MigratorError:
    """Describe the failure and mark the journal row failed, if the session is still there."""
    file = step.migration.file
    if conn.broken or conn.closed:
        return db.connection_lost(
            f"{file.path} ({failure.where or f'chunk {failure.chunk.index}'}"
            f" of {len(step.migration.chunks)})",
            failure.error,
        )
    error = describe(step.migration, failure.chunk, failure.error, failure.message, failure.offset)
    if isinstance(failure.error, pg_errors.LockNotAvailable):
        if failure.retries:
            times = "once" if failure.retries == 1 else f"{failure.retries} times"
            error.message += f" (retried {times})"
        blocked = db.describe_blockers(db.blockers(conn))
        error.detail = f"{error.detail}\n{blocked}" if error.detail else blocked
        error.hint = error.hint or LOCK_HINT
    lines = [error.message]
    if error.detail:
        lines.append(f"DETAIL: {error.detail}")
    if error.hint:
        lines.append(f"HINT: {error.hint}")
    if error.sqlstate:
        lines[0] = f"{error.message} [SQLSTATE {error.sqlstate}]"
    journal.fail(conn, file.schema, table, file.version, "\n".join(lines))
    return error


LOCK_HINT = (
    "Another session held a lock this statement needed for longer than lock_timeout: end "
    "that session's transaction (or SELECT pg_terminate_backend(pid)), or raise lock_timeout or "
    "lock_retries (MIGRATOR_LOCK_TIMEOUT, MIGRATOR_LOCK_RETRIES); then run again to resume."
)


def describe(
    migration: Migration,
    chunk: Chunk,
    error: psycopg.Error | None,
    message: str = "",
    offset: int = 0,
) -> MigrationFailed:
    """A chunk's failure as the user sees it: file:line:col, chunk, SQLSTATE, message, excerpt;
    `offset` is where the chunk started in the query the server saw."""
    text = migration.file.text
    position = error.diag.statement_position if error else None
    at = int(position) - 1 - offset if position and position.isdigit() else -1
    if 0 <= at < len(chunk.sql):
        line, column = sqlfile.line_column(text, chunk.start + at)
    else:
        line, column = chunk.line, 1
    location = f"{migration.file.path}:{line}:{column}"
    if error is not None:
        message = error.diag.message_primary or " ".join(str(error).split())
    hint = error.diag.message_hint or "" if error else ""
    if isinstance(error, pg_errors.ActiveSqlTransaction):
        hint = hint or "This statement cannot run inside a transaction: give it a chunk of its own."
    return MigrationFailed(
        f"{location}: chunk {chunk.index} of {len(migration.chunks)} failed: {message}",
        location=location,
        sqlstate=error.sqlstate if error else None,
        detail=error.diag.message_detail if error else None,
        hint=hint,
        excerpt=sqlfile.excerpt(text, line),
    )


def repairs(
    conn: db.Connection, files: Mapping[str, Sequence[SqlFile]], table: str
) -> list[tuple[FileStatus, str]]:
    """The journal rows `repair` would change, with what it would do to each."""
    found = []
    for status in assess(conn, files, table):
        action = planner.repair_action(status.state)
        if action:
            found.append((status, action))
    return found


def repair(
    conn: db.Connection,
    files: Mapping[str, Sequence[SqlFile]],
    repairs: Sequence[tuple[FileStatus, str]],
    table: str,
    reason: str,
) -> None:
    """Accept changed files (new hash, chunks and text, with the reason) and delete the rest."""
    by_path = {file.path: file for found in files.values() for file in found}
    with conn.transaction():
        for status, _ in repairs:
            if status.state is FileState.CHANGED and status.path:
                migration = sqlfile.parse(by_path[status.path])
                journal.accept(conn, table, migration, f"repaired: {reason}")
            else:
                journal.forget(conn, status.schema, table, status.version)


def baseline_targets(
    conn: db.Connection, schema: str, files: Sequence[SqlFile], version: int, table: str
) -> list[SqlFile]:
    """The schema's files up to `version` that have no journal row yet."""
    known = {row.version for row in journal.read(conn, schema, table) or []}
    return [file for file in files if file.version <= version and file.version not in known]


def adoption(
    conn: db.Connection,
    schema: str,
    files: Sequence[SqlFile],
    source: tuple[str, str],
    table: str,
) -> tuple[Adoption, list[tuple[SqlFile, DrizzleRow]], list[str]]:
    """Drizzle's recorded migrations (table `source`) matched to the schema's files; the
    matched files that have no journal row yet; and warnings: files matched by their journal
    `when` only (changed since Drizzle ran them), and files journaled before with another hash
    than Drizzle's row (`migrate` will call them changed). ConfigError when there is no such
    table."""
    from migrator import drizzle

    rows = journal.read_drizzle(conn, *source)
    if rows is None:
        raise ConfigError(
            f"no table {'.'.join(source)} in database {conn.info.dbname}: nothing to adopt",
            hint="Name the table Drizzle's migrate() wrote with --table SCHEMA.TABLE "
            "(its migrationsSchema and migrationsTable).",
        )
    found = drizzle.match(rows, files)
    known = {row.version: row for row in journal.read(conn, schema, table, brief=True) or []}
    targets = [(file, row) for file, row in found.matched if file.version not in known]
    where = ".".join(source)
    warnings = [
        f"{file.path} matched {where} id {row.id} by its journal `when` only: the file changed"
        " since Drizzle ran it"
        for file, row in found.matched
        if file.hash != row.hash
    ]
    warnings += [
        f"{file.path} is journaled already with hash {known[file.version].hash}, but {row.hash}"
        f" in Drizzle's row {row.id}: `migrator status` shows the difference"
        for file, row in found.matched
        if file.version in known and known[file.version].hash != row.hash
    ]
    return found, targets, warnings


def baseline(
    conn: db.Connection,
    schema: str,
    targets: Sequence[SqlFile],
    table: str,
    notes: Mapping[str, str] | None = None,
) -> None:
    """Journal the files as `baseline` without running them (`notes` by path, else
    "baseline")."""
    if not journal.exists(conn, schema, table):
        journal.ensure(conn, schema, table)
    with conn.transaction():
        for file in targets:
            try:
                migration = sqlfile.parse(file)
            except BadFile:  # an old file this lexer cannot split is still a baseline
                migration = Migration(file, TxMode.STATEMENT, ())
            journal.baseline(conn, table, migration, (notes or {}).get(file.path, "baseline"))
