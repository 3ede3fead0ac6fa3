"""Reverts applied files with their down files: a transaction per down chunk, the rollback's
progress journaled in it, and the file's journal row deleted with the last one."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from psycopg.errors import UndefinedTable

from migrator import db, planner
from migrator.engine import (
    BROKEN,
    ChunkError,
    check_journals,
    chunk_transaction,
    describe,
    execute_chunk,
    explain_lock_timeout,
    journal_broken,
    journaled,
    ms_since,
    retrying,
    run_autocommit,
    run_single,
)
from migrator.errors import MigrationFailed, MigratorError
from migrator.journal import HISTORY_SUFFIX, LOCK_LOST, Journal
from migrator.model import (
    Chunk,
    ChunkKind,
    FileOutcome,
    JournalRow,
    Plan,
    Reporter,
    Reversal,
    SqlFile,
    TxMode,
)
from migrator.repeatable_journal import RepeatableJournal

if TYPE_CHECKING:
    from migrator.settings import Settings

Files = Mapping[str, Sequence[SqlFile]]
_HISTORY_GONE = "the rollback history table is gone: the down file dropped it"


def plan(
    conn: db.Connection,
    files: Files,
    table: str,
    steps: int | None,
    to: int | None,
    schema: str | None = None,
) -> tuple[str, dict[str, list[JournalRow]], tuple[Reversal, ...]]:
    """The schema to revert in (`schema`, else the only one, else the one whose journal has
    rows; "" when none has), every schema's journal rows, and what to revert, newest first."""
    rows = {name: Journal(name, table).read(conn, brief=True) or [] for name in files}
    if schema is None:
        schema = next(iter(files)) if len(files) == 1 else planner.rollback_schema(rows)
    if not schema:
        return "", rows, ()
    chosen = planner.plan_rollback(schema, files[schema], rows[schema], steps=steps, to=to)
    return schema, rows, chosen


def rollback(
    conn: db.Connection,
    files: Files,
    settings: Settings,
    reporter: Reporter,
    *,
    schema: str | None = None,
    steps: int | None = None,
    to: int | None = None,
    confirm: Callable[[str, tuple[Reversal, ...]], None] = lambda schema, plan: None,
) -> tuple[str, tuple[Reversal, ...], list[FileOutcome]]:
    """Under the advisory lock: plan, let `confirm` see the plan, then revert each file;
    MigrationFailed carries in `reverted` the files reverted before the failure."""
    with db.advisory_lock(conn, settings.lock_wait, reporter.lock_waiting):
        schema, journals, reversals = plan(conn, files, settings.journal_table, steps, to, schema)
        if not reversals:
            return schema, reversals, []
        journal = Journal(schema, settings.journal_table)
        journal.ensure_history(conn)  # before the confirmation: a history it cannot use stops it
        confirm(schema, reversals)
        journal.ensure(conn)
        # What a repeatable file made, in any schema, may rest on what a down drops (a
        # CASCADE): every one is run again by the next migrate.
        for name in files:
            RepeatableJournal(name, settings.journal_table).mark_due(conn, "a rollback ran")
        rows = journals[schema]
        # A down file must leave the other schemas' journals alone; checked after the run.
        others = {name: found for name, found in journals.items() if name != schema}
        outcomes: list[FileOutcome] = []
        for reversal in reversals:
            try:
                outcomes.append(_revert(conn, journal, reversal, settings, reporter))
            except _Stopped as stopped:
                if isinstance(stopped.error, MigrationFailed):
                    stopped.error.reverted = tuple(outcomes)
                if stopped.in_flight is not None:
                    _check_journal(conn, journal, rows, outcomes, stopped.in_flight)
                    _check_others(conn, others, settings.journal_table)
                raise stopped.error from None
        _check_journal(conn, journal, rows, outcomes)
        _check_others(conn, others, settings.journal_table)
        return schema, reversals, outcomes


def _check_others(
    conn: db.Connection, journals: Mapping[str, list[JournalRow]], table: str
) -> None:
    """The other schemas' journals still hold their rows; those a down file emptied or dropped
    are put back, and the run fails."""
    plans = [Plan(schema) for schema, rows in journals.items() if rows]
    check_journals(conn, dict(journals), plans, [], table)


def _revert(
    conn: db.Connection,
    journal: Journal,
    reversal: Reversal,
    settings: Settings,
    reporter: Reporter,
) -> FileOutcome:
    """Revert one file: its down chunks not yet done, each committing with its progress, the
    last one with the deletion of the file's row."""
    down, file = reversal.down, reversal.file
    lock_timeout = down.lock_timeout or settings.lock_timeout
    statement_timeout = down.statement_timeout or settings.statement_timeout
    db.reset_session(conn, journal.schema, lock_timeout, statement_timeout)
    resumed = "resumed" if reversal.row.down_chunks_done is not None else "started"
    if not journal.begin_revert(conn, file.version, down, f"rollback {resumed}"):
        raise MigratorError(f"{file.path}: its journal row is gone; nothing was reverted")
    reporter.revert_started(reversal)
    started = time.monotonic()
    update = journal.revert_update(conn, file, down.file)
    total = len(down.chunks)

    def record(done: int, before: int | None = None) -> str:
        before = done - 1 if before is None else before
        return update(done, before, ms_since(started) if done >= total else None)

    step = reversal.step
    left = down.chunks[reversal.chunks_done :]
    try:
        if not left or down.mode is TxMode.SINGLE:
            # What is left in one transaction with the row's deletion; none left (only
            # comments, or every chunk committed): the deletion alone.
            if left:
                reporter.chunks_started(step, left[0], left[-1])
            whole = partial(record, before=reversal.chunks_done)
            retrying(lambda: run_single(conn, step, whole), step, settings, reporter)
            for chunk in left:
                reporter.chunk_done(step, chunk, None)
        else:
            for chunk in left:
                chunk_started = time.monotonic()
                reporter.chunks_started(step, chunk, chunk)
                if down.mode is TxMode.NONE or chunk.kind is not ChunkKind.TRANSACTIONAL:
                    run_autocommit(conn, step, chunk, record, lock_timeout)
                else:
                    retrying(partial(_chunk, conn, chunk, record), step, settings, reporter)
                reporter.chunk_done(step, chunk, ms_since(chunk_started))
    except ChunkError as failure:
        raise _fail(conn, journal, reversal, failure) from failure
    outcome = FileOutcome(
        file.schema,
        file.version,
        file.name,
        file.path,
        total - reversal.chunks_done,
        total,
        ms_since(started),
    )
    reporter.file_reverted(outcome)
    return outcome


def _chunk(conn: db.Connection, chunk: Chunk, record: Callable[[int], str]) -> None:
    with chunk_transaction(conn, chunk):
        execute_chunk(conn, chunk)
        conn.execute(record(chunk.index), prepare=False)


class _Stopped(Exception):
    """A down chunk failed: `error` for the user; `in_flight`, unless the journal must not be
    written (the lock or the connection lost), the file's row as it stands now."""

    def __init__(self, error: MigratorError, in_flight: JournalRow | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.in_flight = in_flight


def _fail(
    conn: db.Connection, journal: Journal, reversal: Reversal, failure: ChunkError
) -> _Stopped:
    """Describe a down chunk's failure and keep it in the journal row (its progress stays),
    if the session is still there and the chunk left the runner's state alone."""
    down, row = reversal.down, reversal.row
    if conn.broken or conn.closed:
        where = f"{down.file.path} (chunk {failure.chunk.index} of {len(down.chunks)})"
        return _Stopped(db.connection_lost(where, failure.error), None)
    broken = journal_broken(conn, journal, failure)
    history = f'"{journal.schema}.{journal.table}{HISTORY_SUFFIX}"'
    if not broken and isinstance(failure.error, UndefinedTable) and history in str(failure.error):
        error = describe(down, failure.chunk, None, _HISTORY_GONE, failure.offset)
        error.hint = (
            "A down file must not touch migrator's tables. The chunk was rolled back with its "
            "journal update; the next rollback makes the history again and resumes here."
        )
        journal.fail_revert(conn, reversal.file.version, journaled(error))
        return _Stopped(error, replace(row, down_chunks_done=failure.chunk.index - 1))
    if broken:
        reason, hint = BROKEN[broken]
        error = describe(down, failure.chunk, None, reason, failure.offset)
        error.hint = hint
    else:
        error = describe(down, failure.chunk, failure.error, failure.message, failure.offset)
        explain_lock_timeout(conn, error, failure)
        error.hint = error.hint or (
            "Nothing more was reverted; the down chunks before it committed. Fix the failed "
            "chunk of the down file (not the ones before it) and run migrator rollback again: "
            "it resumes there."
        )
    if broken == LOCK_LOST:  # another runner may own the journal by now: nothing is written
        return _Stopped(error, None)
    if journal.exists(conn):
        journal.fail_revert(conn, reversal.file.version, journaled(error))
    # A chunk outside a transaction committed even though its journal update failed.
    outside = down.mode is TxMode.NONE or failure.chunk.kind is not ChunkKind.TRANSACTIONAL
    done = failure.chunk.index if broken and outside else failure.chunk.index - 1
    in_flight = replace(
        row,
        down_chunks_done=max(done, 0),
        down_chunk_hashes=down.chunk_hashes,
        error=journaled(error),
    )
    return _Stopped(error, in_flight)


def _check_journal(
    conn: db.Connection,
    journal: Journal,
    rows: Sequence[JournalRow],
    outcomes: Sequence[FileOutcome],
    in_flight: JournalRow | None = None,
) -> None:
    """After a rollback: the journal still holds every row it had but those of the files
    reverted (the file `in_flight` as it stands); one that a down file emptied or dropped is
    put back, and the run fails."""
    reverted = {outcome.version for outcome in outcomes}
    kept = [
        in_flight if in_flight is not None and row.version == in_flight.version else row
        for row in rows
        if row.version not in reverted
    ]
    if not kept or journal.holds(conn, [row.version for row in kept]):
        return
    journal.restore(conn, kept, {}, "put back after a down file removed it")
    raise MigratorError(
        f"a down file removed rows of the journal {journal.qualified(conn)} (or the table): "
        "migrator put back the rows it had read before the rollback, but those of the files "
        "it reverted",
        hint="A down file must not touch the journal. The times, users and applied texts of "
        "the rows put back were lost; check them with migrator status.",
    )
