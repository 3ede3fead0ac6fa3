"""Applies plans: per-chunk transactions, autocommit chunks, single-transaction files, retries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from migrator import batch, db, planner, sqlfile
from migrator.errors import MigrationFailed, MigratorError
from migrator.journal import LOCK_LOST, ROW_GONE, Journal, Prepared, Writer
from migrator.journal import refusal as journal_refusal
from migrator.model import (
    Chunk,
    ChunkKind,
    FileOutcome,
    JournalRow,
    Migration,
    Plan,
    RepeatableRow,
    Reporter,
    RowStatus,
    Scope,
    SqlFile,
    Step,
    TxMode,
)
from migrator.repeatable_journal import RepeatableJournal

if TYPE_CHECKING:
    from migrator.settings import Settings

RETRY_DELAY = 0.5  # seconds before the first retry after lock_timeout; doubled for each next one
Record = batch.Record


def read_journals(
    conn: db.Connection, files: Mapping[str, Sequence[SqlFile]], table: str
) -> dict[str, list[JournalRow] | None]:
    """Each schema's journal rows (without the times planning does not need); None where the
    schema has no journal yet."""
    return {schema: Journal(schema, table).read(conn, brief=True) for schema in files}


def read_repeatables(
    conn: db.Connection, repeatables: Mapping[str, Sequence[SqlFile]], table: str
) -> dict[str, dict[str, RepeatableRow]]:
    """The rows of each schema's journal of repeatable files, for the schemas that have such
    files."""
    return {
        schema: RepeatableJournal(schema, table).read(conn) or {}
        for schema, found in repeatables.items()
        if found
    }


def plan(
    files: Mapping[str, Sequence[SqlFile]],
    journals: Mapping[str, list[JournalRow] | None],
    scope: Scope,
    repeatables: Mapping[str, Sequence[SqlFile]] | None = None,
    repeatable_rows: Mapping[str, Mapping[str, RepeatableRow]] | None = None,
) -> list[Plan]:
    """The plans for these files and journals (planner.plan, with no journal as no rows)."""
    rows = {schema: found or [] for schema, found in journals.items()}
    return planner.plan(files, rows, scope, repeatables, repeatable_rows)


def migrate(
    conn: db.Connection,
    files: Mapping[str, Sequence[SqlFile]],
    settings: Settings,
    scope: Scope,
    reporter: Reporter,
    confirm: Callable[[list[Plan]], None] = lambda plans: None,
    repeatables: Mapping[str, Sequence[SqlFile]] | None = None,
    lock_key: int = db.LOCK_KEY,
) -> tuple[list[Plan], list[FileOutcome]]:
    """Under the advisory lock: plan every schema, let `confirm` see the plans, then apply
    each schema's steps and then its due repeatable files; MigrationFailed carries the
    outcomes of the files applied before the failure."""
    with db.advisory_lock(conn, settings.lock_wait, reporter.lock_waiting, lock_key):
        journals = read_journals(conn, files, settings.journal_table)
        repeatable_rows = read_repeatables(conn, repeatables or {}, settings.journal_table)
        plans = plan(files, journals, scope, repeatables, repeatable_rows)
        if any(plan.steps or plan.repeatables for plan in plans):
            confirm(plans)
        writer = Writer(conn)
        outcomes: list[FileOutcome] = []
        try:
            for plan_ in plans:
                journal = Journal(plan_.schema, settings.journal_table)
                if plan_.steps:  # made, or given the columns an older migrator's lacks
                    journal.ensure(conn)
                for number, step in enumerate(plan_.steps):
                    try:
                        outcomes.append(_apply(conn, journal, writer, step, settings, reporter))
                    except _JournalDropped as dropped:
                        rows = journals[plan_.schema] or []
                        _restore(conn, journal, rows, plan_.steps[: number + 1], dropped)
                        raise dropped.error from None
            # After every schema's versioned files: a view may read another schema's tables.
            for plan_ in plans:
                if plan_.repeatables:
                    RepeatableJournal(plan_.schema, settings.journal_table).ensure(conn)
                known = dict(repeatable_rows.get(plan_.schema, {}))
                for migration in plan_.repeatables:
                    outcomes.append(_apply_repeatable(conn, migration, settings, reporter, known))
        except MigrationFailed as error:
            error.applied = tuple(outcomes)
            if not (conn.broken or conn.closed):
                check_journals(conn, journals, plans, outcomes, settings.journal_table)
            raise
        if outcomes:  # a run that ran nothing removed nothing: no queries for it
            check_journals(conn, journals, plans, outcomes, settings.journal_table)
        return plans, outcomes


def _known_rows(
    rows: Sequence[JournalRow], ran: Sequence[tuple[Migration, int, str | None]]
) -> list[JournalRow]:
    """The journal as this run knows it: the rows read before it, and each file it ran with
    its chunks done (failed, with its error, when not all)."""
    known = {row.version: row for row in rows}
    for migration, done, error in ran:
        file, total = migration.file, len(migration.chunks)
        status = RowStatus.APPLIED if done >= total else RowStatus.FAILED
        failure = error if status is RowStatus.FAILED else None
        known[file.version] = JournalRow(
            file.version, file.name, file.hash, migration.chunk_hashes, status, total, done, failure
        )
    return sorted(known.values(), key=lambda row: row.version)


def _restore(
    conn: db.Connection,
    journal: Journal,
    rows: Sequence[JournalRow],
    steps: Sequence[Step],
    dropped: _JournalDropped,
) -> None:
    """Put back a journal that a chunk outside a transaction emptied or dropped: the rows read
    before the run, the files it applied, and the last one failed after the chunk that did it."""
    ran: list[tuple[Migration, int, str | None]] = [
        (step.migration, len(step.migration.chunks), None) for step in steps[:-1]
    ]
    ran.append((steps[-1].migration, dropped.chunk, str(dropped.error)))
    contents = {step.migration.file.version: step.migration.file.text for step in steps}
    note = f"put back after {dropped.error.path} chunk {dropped.chunk} removed it"
    journal.restore(conn, _known_rows(rows, ran), contents, note)
    dropped.error.hint = (
        "It ran outside a transaction, so its change to the journal stayed. migrator put back "
        f"the rows of {journal.schema}.{journal.table} it had read, so that no file runs twice "
        "(the times, users and applied texts of earlier rows were lost). A migration must not "
        "touch the journal: use migrator repair or migrator baseline."
    )


def check_journals(
    conn: db.Connection,
    journals: Mapping[str, list[JournalRow] | None],
    plans: Sequence[Plan],
    outcomes: Sequence[FileOutcome],
    table: str,
) -> None:
    """After a run that ran files: every journal still holds the rows it had and those of the
    files the run applied; one that a migration of another schema emptied or dropped is put
    back, and the run fails."""
    applied = {(o.schema, o.version) for o in outcomes if not o.repeatable}
    for plan_ in plans:
        journal = Journal(plan_.schema, table)
        ran = [
            step.migration
            for step in plan_.steps
            if (plan_.schema, step.migration.file.version) in applied
        ]
        rows = _known_rows(journals[plan_.schema] or [], [(m, len(m.chunks), None) for m in ran])
        if not rows or journal.holds(conn, [row.version for row in rows]):
            continue
        contents = {migration.file.version: migration.file.text for migration in ran}
        journal.restore(conn, rows, contents, "put back after a migration removed it")
        raise MigratorError(
            f"a migration removed rows of the journal {journal.qualified(conn)} (or the table): "
            "migrator put back the rows it had read before the run and those it wrote",
            hint="A migration must not touch a journal: use migrator repair or migrator "
            "baseline. Check the files this run applied (migrator status).",
        )


def _apply(
    conn: db.Connection,
    journal: Journal,
    writer: Writer,
    step: Step,
    settings: Settings,
    reporter: Reporter,
) -> FileOutcome:
    """Apply one step; MigrationFailed (journal marked failed) when a chunk fails."""
    migration = step.migration
    lock_timeout = migration.lock_timeout or settings.lock_timeout
    # A forced re-run that fails leaves the file as it was applied, the failure beside it.
    kept = journal.snapshot(conn, migration.file.version) if step.forced else None
    prepared = _start(conn, journal, writer, step, settings, lock_timeout)
    reporter.file_started(step)
    started = time.monotonic()
    plain = _recorder(writer, step, prepared, written_out=True)
    try:
        if migration.mode is TxMode.SINGLE:
            left = migration.chunks[step.chunks_done :]
            if left:
                reporter.chunks_started(step, left[0], left[-1])
                retrying(lambda: run_single(conn, step, plain), step, settings, reporter)
                for chunk in left:  # committed together: no time of their own
                    reporter.chunk_done(step, chunk, None)
        else:
            fast = _recorder(writer, step, prepared)
            runner = _Runner(conn, journal, writer, step, settings, reporter, started)
            runner.run((fast, plain), lock_timeout)
    except ChunkError as failure:
        raise _fail(conn, journal, step, failure, kept) from failure
    file = migration.file
    outcome = FileOutcome(
        file.schema,
        file.version,
        file.name,
        file.path,
        len(migration.chunks) - step.chunks_done,
        len(migration.chunks),
        ms_since(started),
    )
    reporter.file_done(outcome)
    return outcome


def _apply_repeatable(
    conn: db.Connection,
    migration: Migration,
    settings: Settings,
    reporter: Reporter,
    known: dict[str, RepeatableRow],
) -> FileOutcome:
    """Run a repeatable file whole: in one transaction with its journal row (a no-transaction
    one chunk by chunk, recorded as running first, the lock and the journal checked after
    each); MigrationFailed, with the failure recorded, when a chunk fails. `known`: the rows
    of the schema's repeatable journal, which gains this file's."""
    file, chunks = migration.file, migration.chunks
    journal = RepeatableJournal(file.schema, settings.journal_table)
    lock_timeout = migration.lock_timeout or settings.lock_timeout
    statement_timeout = migration.statement_timeout or settings.statement_timeout
    db.reset_session(conn, file.schema, lock_timeout, statement_timeout)
    step = Step(migration)
    reporter.file_started(step)
    started = time.monotonic()

    expected = len(known.keys() | {file.name})  # rows the journal must still hold

    def record(done: int) -> str:  # the row once every chunk ran; the checks before
        if done >= len(chunks):
            return journal.applied(conn, file, ms_since(started), expected)
        return journal.check(conn, done, expected)

    try:
        if migration.mode is TxMode.NONE and chunks:
            journal.running(conn, file)
            for chunk in chunks:
                chunk_started = time.monotonic()
                reporter.chunks_started(step, chunk, chunk)
                run_autocommit(conn, step, chunk, record, lock_timeout)
                reporter.chunk_done(step, chunk, ms_since(chunk_started))
        else:
            if chunks:
                reporter.chunks_started(step, chunks[0], chunks[-1])
            retrying(lambda: run_single(conn, step, record), step, settings, reporter)
            for chunk in chunks:  # committed together: no time of their own
                reporter.chunk_done(step, chunk, None)
    except ChunkError as failure:
        raise _fail_repeatable(conn, journal, migration, failure, known) from failure
    known[file.name] = RepeatableRow(file.name, "", "due", 1)  # if put back: run again
    total = len(chunks)
    outcome = FileOutcome(
        file.schema, 0, file.name, file.path, total, total, ms_since(started), repeatable=True
    )
    reporter.file_done(outcome)
    return outcome


def _fail_repeatable(
    conn: db.Connection,
    journal: RepeatableJournal,
    migration: Migration,
    failure: ChunkError,
    known: dict[str, RepeatableRow],
) -> MigratorError:
    """Describe a repeatable file's failure and record it, unless the session is gone or the
    file released the runner's lock; a journal the file emptied or dropped is put back."""
    file = migration.file
    if conn.broken or conn.closed:
        where = f"{file.path} (chunk {failure.chunk.index} of {len(migration.chunks)})"
        return db.connection_lost(where, failure.error)
    refused, _ = journal_refusal(failure.error)
    if refused == LOCK_LOST:
        reason, hint = BROKEN[LOCK_LOST]
        error = describe(migration, failure.chunk, None, reason, failure.offset)
        error.hint = hint
        return error  # another runner may own the journal by now: nothing more is written
    named = journal.identifier.as_string(conn).replace('"', "")
    gone = isinstance(failure.error, pg_errors.UndefinedTable) and named in str(failure.error)
    if refused == ROW_GONE or gone:
        error = describe(migration, failure.chunk, None, _REPEATABLE_GONE, failure.offset)
        outside = migration.mode is TxMode.NONE
        error.hint = (
            "It ran outside a transaction, so what it did stayed: migrator put back the rows "
            "it had read (the files this run applied are due again). "
            if outside
            else "It was rolled back whole with it. "
        ) + "A repeatable file must not touch migrator's tables."
        if outside:
            journal.restore(conn, known, file.name)
        return error
    error = describe(migration, failure.chunk, failure.error, failure.message, failure.offset)
    explain_lock_timeout(conn, error, failure)
    error.hint = error.hint or (
        "It ran outside a transaction: the chunks before the failed one stayed. The next "
        "migrate runs the whole file again."
        if migration.mode is TxMode.NONE
        else "It was rolled back whole: what its last applied version made is in place. Fix "
        "it and run migrate again."
    )
    # A table of another shape cannot take the failure: the file's own error is the news.
    with suppress(psycopg.Error):
        if journal.exists(conn):
            journal.fail(conn, file, journaled(error))
    return error


_REPEATABLE_GONE = "the file removed rows of the repeatable journal (or the table)"


def _start(
    conn: db.Connection,
    journal: Journal,
    writer: Writer,
    step: Step,
    settings: Settings,
    lock_timeout: str,
) -> Prepared:
    """Reset the session and record the file as running, in one round trip and transaction
    (PREPARing the journal writes first when the session lacks them); the journal writes."""
    migration = step.migration
    note = "run again with --only --force" if step.forced else None
    statement_timeout = migration.statement_timeout or settings.statement_timeout
    reset = db.session_reset_text(conn, journal.schema, lock_timeout, statement_timeout)
    while True:
        prepared, prepare = writer.prepared(journal)
        start_row = writer.start(prepared, migration, step.chunks_done, note)
        text = batch.start(
            reset, prepare, start_row, asynchronous=step.chunks_done < len(migration.chunks)
        )
        try:
            conn.execute(text, prepare=False)
            return prepared
        except pg_errors.InvalidSqlStatementName as exc:
            if prepare or not writer.lost(exc):
                raise


NO_CHUNK = Chunk(0, "", 0, 1, "", 0, ChunkKind.TRANSACTIONAL)  # a file of comments only


def ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class ChunkError(Exception):
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


def execute_chunk(conn: db.Connection, chunk: Chunk) -> None:
    db.standard_strings(conn)
    try:
        conn.execute(chunk.sql)  # the user's SQL, sent as written
    except psycopg.Error as exc:
        raise ChunkError(chunk, exc) from exc


@contextmanager
def chunk_transaction(conn: db.Connection, chunk: Chunk) -> Iterator[None]:
    """A transaction whose failure, COMMIT included (deferred constraints), is the chunk's."""
    try:
        with conn.transaction():
            yield
    except psycopg.Error as exc:
        raise ChunkError(chunk, exc) from exc


def _recorder(
    writer: Writer, step: Step, prepared: Prepared, *, written_out: bool = False
) -> Record:
    """The journal update of a step's file (through the prepared statement unless
    `written_out`), written as the session user even when the file switched roles."""
    update = writer.advance(prepared, step.migration.file.version, written_out=written_out)
    return batch.as_session_user(update) if step.migration.sets_role else update


class _Runner:
    """Runs a step's remaining chunks: each run of transactional chunks as one batch, the
    others one by one; a transactional chunk that hits lock_timeout is retried from there."""

    def __init__(
        self,
        conn: db.Connection,
        journal: Journal,
        writer: Writer,
        step: Step,
        settings: Settings,
        reporter: Reporter,
        started: float,
    ) -> None:
        self.conn = conn
        self.journal = journal
        self.writer = writer
        self.step = step
        self.settings = settings
        self.reporter = reporter
        self.started = started  # the file's start, from which the journal measures its time

    def run(self, records: tuple[Record, Record], lock_timeout: str) -> None:
        """Batches journaled through the prepared statement (`records[0]`), other chunks
        written out (`records[1]`: a chunk that commits on its own must not lose its journal
        update to a DEALLOCATE)."""
        record, plain = records
        conn, step, reporter = self.conn, self.step, self.reporter
        migration = step.migration
        chunks = migration.chunks
        done = step.chunks_done  # chunks of the file that have committed
        retried, retries = 0, 0  # the chunk being retried after lock_timeout, and how often
        while done < len(chunks):
            chunk = chunks[done]
            if migration.mode is TxMode.NONE or chunk.kind is not ChunkKind.TRANSACTIONAL:
                chunk_started = time.monotonic()
                reporter.chunks_started(step, chunk, chunk)
                run_autocommit(conn, step, chunk, plain, lock_timeout)
                reporter.chunk_done(step, chunk, ms_since(chunk_started))
                done += 1
                continue
            stop = batch.end(chunks, done, conn.info.server_version)
            try:
                self.send(chunks[done:stop], record)
                done = stop
            except ChunkError as failure:
                if record is not plain and self.writer.lost(failure.error):
                    # A chunk dropped the prepared journal update (DEALLOCATE): its
                    # transaction rolled back, so it runs again with the update written out.
                    record, done = plain, failure.chunk.index - 1
                    continue
                if failure.chunk.index != retried:
                    retried, retries = failure.chunk.index, 0
                wait_to_retry(failure, retries, step, self.settings, reporter)
                retries += 1
                done = failure.chunk.index - 1

    def send(self, chunks: Sequence[Chunk], record: Record) -> None:
        """Send transactional chunks as one batch: one round trip for all of them, and a
        failure stops at the chunk that failed with every chunk before it committed and
        journaled."""
        step, reporter = self.step, self.reporter
        sent = batch.compose(chunks, record, len(step.migration.chunks))
        reporter.chunks_started(step, chunks[0], chunks[-1])
        elapsed_ms = ms_since(self.started)
        db.standard_strings(self.conn)
        try:
            cursor = self.conn.execute(sent.text, prepare=False)
        except psycopg.Error as exc:
            failure = _batch_failure(self.conn, self.journal, step, sent, exc)
            ran = failure.chunk.index - chunks[0].index
            if failure.parse_error and ran:
                # The server parses the whole query before running any of it: nothing ran, so
                # the chunks before the one that does not parse are sent again, on their own.
                self.send(chunks[:ran], record)
            elif not failure.where:
                for chunk in chunks[:ran]:  # committed before the failure, times unknown
                    reporter.chunk_done(step, chunk, None)
            raise failure from exc
        # Each journal update returns the file's elapsed time, which gives every chunk's.
        elapsed = batch.elapsed(cursor)
        if len(elapsed) != len(chunks):  # a chunk of the user's returned a column of that name
            elapsed = [elapsed_ms] * len(chunks)
        for chunk, ms in zip(chunks, elapsed, strict=True):
            reporter.chunk_done(step, chunk, max(ms - elapsed_ms, 0))
            elapsed_ms = ms


def _batch_failure(
    conn: db.Connection, journal: Journal, step: Step, sent: batch.Batch, error: psycopg.Error
) -> ChunkError:
    """Which chunk of a failed batch failed: the first one the journal does not record as
    done; or, when none of the batch ran and the server could not parse the query, the one
    its error position points into (nothing ran: the server parses a query whole first)."""
    chunks, offsets = sent.chunks, sent.offsets
    if conn.broken or conn.closed:
        last = chunks[-1].index
        where = f"chunk {chunks[0].index}" + (f" to {last}" if last > chunks[0].index else "")
        return ChunkError(chunks[0], error, where=where)
    if conn.info.transaction_status != TransactionStatus.IDLE:
        conn.execute("ROLLBACK")
    refused, at = journal_refusal(error)
    if refused:  # the journal cannot be trusted to tell: the update's own check named it
        failed = min(max(at - chunks[0].index, 0), len(chunks) - 1)
        return ChunkError(chunks[failed], error, offset=offsets[failed])
    done = journal.progress(conn, step.migration.file.version) or 0
    failed = min(max(done - chunks[0].index + 1, 0), len(chunks) - 1)
    position = error.diag.statement_position
    if not (position and position.isdigit()):
        return ChunkError(chunks[failed], error, offset=offsets[failed])
    # The chunk whose text, or the runner's text right after it, holds the position.
    at = int(position) - 1
    located = max((i for i, offset in enumerate(offsets) if offset <= at), default=0)
    parse_error = (error.sqlstate or "")[:2] in ("42", "22")
    if located > failed and done < chunks[0].index and parse_error:
        return ChunkError(chunks[located], error, offset=offsets[located], parse_error=True)
    # A position elsewhere (a function body PostgreSQL found further on) is not this chunk's.
    return ChunkError(chunks[failed], error, offset=offsets[failed])


def run_single(conn: db.Connection, step: Step, record: Record) -> None:
    """The chunks not yet done in one transaction with the journal update (all of them, unless
    an earlier run in statement mode committed some before the file became single-transaction;
    none for a file of comments only, whose update goes alone)."""
    chunks = step.migration.chunks
    with chunk_transaction(conn, chunks[-1] if chunks else NO_CHUNK):
        for chunk in chunks[step.chunks_done :]:
            execute_chunk(conn, chunk)
        conn.execute(record(len(chunks)), prepare=False)


def run_autocommit(
    conn: db.Connection, step: Step, chunk: Chunk, record: Record, lock_timeout: str
) -> None:
    # Aborting a CONCURRENTLY build on lock_timeout would leave an invalid index behind.
    unbounded = chunk.kind is ChunkKind.AUTOCOMMIT
    if unbounded:
        db.set_lock_timeout(conn, "0")
    try:
        execute_chunk(conn, chunk)
    finally:
        left_open = not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE
        if left_open:
            conn.execute("ROLLBACK")  # the chunk's own BEGIN left a transaction open or failed
        if unbounded and not conn.broken:
            db.set_lock_timeout(conn, lock_timeout)
    if left_open:
        raise ChunkError(chunk, None, "the chunk left a transaction open, which was rolled back")
    with chunk_transaction(conn, chunk):
        conn.execute(record(chunk.index), prepare=False)


def retrying(run: Callable[[], None], step: Step, settings: Settings, reporter: Reporter) -> None:
    """Run, retrying with a doubling delay while the chunk fails on lock_timeout (55P03)."""
    for attempt in range(settings.lock_retries + 1):
        try:
            run()
            return
        except ChunkError as failure:
            wait_to_retry(failure, attempt, step, settings, reporter)


def wait_to_retry(
    failure: ChunkError, retries: int, step: Step, settings: Settings, reporter: Reporter
) -> None:
    """After a chunk's failure (retried `retries` times so far): raise it unless it is a
    lock_timeout (55P03) with retries left; else report the retry and wait the doubling delay."""
    if not isinstance(failure.error, pg_errors.LockNotAvailable):
        raise failure
    if retries == settings.lock_retries:
        failure.retries = retries
        raise failure
    delay = RETRY_DELAY * 2**retries
    reporter.chunk_retry(step, failure.chunk, retries + 1, delay)
    time.sleep(delay)


def _fail(
    conn: db.Connection,
    journal: Journal,
    step: Step,
    failure: ChunkError,
    kept: dict[str, Any] | None = None,
) -> MigratorError | _JournalDropped:
    """Describe the failure and mark the journal row failed, if the session is still there
    (or put the `kept` row back, the failure beside it)."""
    file = step.migration.file
    if conn.broken or conn.closed:
        return db.connection_lost(
            f"{file.path} ({failure.where or f'chunk {failure.chunk.index}'}"
            f" of {len(step.migration.chunks)})",
            failure.error,
        )
    broken = journal_broken(conn, journal, failure)
    if broken:
        reason, hint = BROKEN[broken]
        error = describe(step.migration, failure.chunk, None, reason, failure.offset)
        error.hint = hint
        if broken == LOCK_LOST:
            return error  # another runner may own the journal by now: nothing more is written
        progress = journal.progress(conn, file.version) if journal.exists(conn) else None
        if progress is None:  # outside a transaction, its removal stayed
            return _JournalDropped(error, failure.chunk.index)
        if progress >= failure.chunk.index:  # another run recorded it: its row is not ours
            error = describe(step.migration, failure.chunk, None, _MOVED_ON, failure.offset)
            error.hint = BROKEN[LOCK_LOST][1]
            return error
    else:
        error = describe(
            step.migration, failure.chunk, failure.error, failure.message, failure.offset
        )
    explain_lock_timeout(conn, error, failure)
    if kept:
        journal.keep(conn, file.version, kept, journaled(error))
        error.hint = (error.hint + " " if error.hint else "") + (
            f"The file stays {kept['status']} as it was before this run again (--force); the "
            "chunks before the failed one ran again and committed."
        )
    else:
        journal.fail(conn, file.version, journaled(error))
    return error


def explain_lock_timeout(conn: db.Connection, error: MigrationFailed, failure: ChunkError) -> None:
    """A chunk that gave up on a table lock (55P03): how often it was retried, who held the
    lock, and what to do."""
    if not isinstance(failure.error, pg_errors.LockNotAvailable):
        return
    if failure.retries:
        times = "once" if failure.retries == 1 else f"{failure.retries} times"
        error.message += f" (retried {times})"
    blocked = db.describe_blockers(db.blockers(conn))
    error.detail = f"{error.detail}\n{blocked}" if error.detail else blocked
    error.hint = error.hint or LOCK_HINT


def journaled(error: MigrationFailed) -> str:
    """A chunk's failure as the journal's error column keeps it."""
    lines = [f"{error.message} [SQLSTATE {error.sqlstate}]" if error.sqlstate else error.message]
    if error.detail:
        lines.append(f"DETAIL: {error.detail}")
    if error.hint:
        lines.append(f"HINT: {error.hint}")
    return "\n".join(lines)


def journal_broken(conn: db.Connection, journal: Journal, failure: ChunkError) -> str:
    """What a chunk did to the runner's own state, when its journal update failed for it:
    LOCK_LOST, ROW_GONE or TABLE_GONE (else "")."""
    refused, _ = journal_refusal(failure.error)
    if refused:
        return refused
    undefined = isinstance(failure.error, pg_errors.UndefinedTable)
    named = undefined and f'"{journal.schema}.{journal.table}"' in str(failure.error)
    return TABLE_GONE if named or (undefined and not journal.exists(conn)) else ""


TABLE_GONE = "migrator: the journal table was dropped"
_OUTSIDE = (
    " If it ran outside a transaction (an autocommit chunk, or a no-transaction file), what it "
    "did stayed, but the journal does not record it as done."
)
_MOVED_ON = (
    "another run recorded this chunk meanwhile: the chunk let go of the runner's advisory lock"
)
BROKEN = {
    LOCK_LOST: (
        "the chunk released the runner's advisory lock",
        "It called pg_advisory_unlock_all() or pg_advisory_unlock, which lets another runner "
        "in: its transaction was rolled back, and nothing more was run or recorded. Keep "
        "advisory-lock calls out of migrations." + _OUTSIDE,
    ),
    ROW_GONE: (
        "the chunk removed this file's journal row",
        "It deleted from or truncated the journal, and was rolled back with it. A migration "
        "must not write the journal: use migrator repair or migrator baseline.",
    ),
    TABLE_GONE: (
        "the chunk dropped the journal table",
        "It was rolled back with it. A migration must not touch the journal: use migrator "
        "repair or migrator baseline.",
    ),
}


class _JournalDropped(Exception):
    """A chunk outside a transaction dropped the journal: `error` once it is put back."""

    def __init__(self, error: MigrationFailed, chunk: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.chunk = chunk  # the chunk that dropped it, which committed


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
        path=migration.file.path,
        chunk=chunk.index,
        chunks_total=len(migration.chunks),
        location=location,
        reason=message,
        sqlstate=error.sqlstate if error else None,
        detail=error.diag.message_detail if error else None,
        hint=hint,
        excerpt=sqlfile.excerpt(text, line),
    )
