"""The only module that imports rich: the three reporters (terminal, plain, JSON) that show the
core's progress as it happens and render its results and errors.

Results go to stdout; progress, notices, server messages and failures to stderr, so stdout
stays parseable. rich is imported only when a terminal shows the output: CI logs and
containers, where migrator runs most, do not pay for loading it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from migrator.db import describe_holder
from migrator.errors import (
    BadFile,
    Cancelled,
    ConfigError,
    DriftError,
    LintFailed,
    MigrationFailed,
    MigratorError,
    Refused,
)
from migrator.model import (
    AdoptResult,
    BaselineResult,
    Chunk,
    ChunkKind,
    ConfigResult,
    Drift,
    DumpResult,
    FileOutcome,
    FileStatus,
    FleetResult,
    ImportResult,
    LintResult,
    LockHolder,
    MigrateResult,
    Migration,
    NewResult,
    RepairResult,
    ResetResult,
    Reversal,
    RollbackResult,
    RowStatus,
    SeedOutcome,
    SeedResult,
    SeedState,
    ServerMessage,
    StatusResult,
    Step,
    TargetOutcome,
    TxMode,
    ValidateResult,
    VerifyResult,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

_STYLE = {
    "applied": "green",
    "baseline": "green",
    "SUCCESS": "green",
    "pending": "yellow",
    "changed": "bold red",
    "missing": "bold red",
    "failed": "bold red",
    "FAIL": "bold red",
    "running": "bold red",
    "out-of-order": "bold red",
    "reverting": "bold red",
    "due": "yellow",
}
Preview = MigrateResult | RollbackResult | SeedResult | Sequence[str]
_LOUD = ("WARNING", "ERROR", "FATAL", "PANIC")  # server messages that -q does not hide


# The lists each command's JSON document holds, even when empty, even after a failure.
LISTS = {
    "migrate": ("applied", "pending", "unlisted"),
    "rollback": ("reverted",),
    "status": ("migrations", "repeatables", "seeds", "drift"),
    "validate": ("unlisted", "drift"),
    "seed": ("seeds",),
    "repair": ("repaired", "drift"),
    "baseline": ("baselined",),
    "adopt": ("adopted", "without_file", "checksum_differs", "reverted"),
    "import": ("imported", "reported", "warnings"),
    "reset": ("reset", "applied", "pending", "unlisted"),
    "config": ("settings",),
    "fleet": ("targets",),
    "lint": ("findings",),
    "dump": ("drift",),
    "verify": ("drift",),
}


def reporter(
    command: str, *, json: bool = False, quiet: bool = False, verbose: bool = False
) -> PlainReporter:
    """The reporter for this run: JSON with --json, rich on a terminal, plain otherwise."""
    if json:
        return JsonReporter(LISTS.get(command, ()), quiet=quiet, verbose=verbose)
    if sys.stderr.isatty() or sys.stdout.isatty():
        return TerminalReporter(quiet=quiet, verbose=verbose)
    return PlainReporter(quiet=quiet, verbose=verbose)


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _when(moment: datetime | None) -> str:
    # isoformat, not strftime: a 10,000-row status formats 10,000 of them.
    return moment.isoformat(" ", "seconds")[:19] if moment else ""


def _was_applied(status: FileStatus) -> bool:
    """The journal records the file as applied (also when it changed or is gone since)."""
    return status.row is not None and status.row.status in (RowStatus.APPLIED, RowStatus.BASELINE)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.split("\n"))


def _span(first: Chunk, last: Chunk) -> str:
    return f"chunk {first.index}" if first is last else f"chunks {first.index}-{last.index}"


class PlainReporter:
    """Plain lines for logs and pipes: a line when a file starts and one when it ends."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.where = ""  # the file and chunks (or seed process) running, for server messages
        self.target = ""  # the database, once connected

    # Where the text goes; the terminal reporter sends it through rich.
    def _err(self, message: str, style: str = "") -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    def _out(self, message: str) -> None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    def _table(
        self, title: str, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], state: int
    ) -> None:
        """Aligned columns under a title; column `state` is coloured on a terminal."""
        columns = zip(headers, *rows, strict=False)
        widths = [max(len(text) for text in column) for column in columns]
        line = "  ".join(f"{{:<{width}}}" for width in widths)
        lines = [title, *(line.format(*row).rstrip() for row in (headers, *rows))]
        self._out("\n".join(lines))

    def _panel(self, title: str, body: str) -> None:
        self._out(f"{title}\n{body}")

    # Events (model.Reporter).
    def notice(self, message: str) -> None:
        """A line on stderr that the user must not miss, even with -q."""
        self._err(message, "bold yellow")

    def info(self, message: str) -> None:
        """A progress line on stderr (hidden by -q)."""
        if not self.quiet:
            self._err(message)

    def server_message(self, message: ServerMessage) -> None:
        """A NOTICE or WARNING from the server, prefixed with where it came from; -q hides all
        but warnings."""
        if self.quiet and message.severity not in _LOUD:
            return
        lines = [f"{self.where or 'server'}: {message.severity}: {message.message}"]
        if message.detail:
            lines.append(_indent(f"DETAIL: {message.detail}", "  "))
        if message.hint:
            lines.append(_indent(f"HINT: {message.hint}", "  "))
        self._err("\n".join(lines), "yellow" if message.severity == "WARNING" else "")

    def connected(self, target: str) -> None:
        """The session is open (shown with -v)."""
        self.target = target
        if self.verbose:
            self.info(f"connected to {target}")

    def lock_waiting(self, holder: LockHolder | None) -> None:
        """Another runner holds the lock."""
        who = describe_holder(holder) if holder else "another session"
        self.info(f"waiting for the migration lock, held by {who}")

    def file_started(self, step: Step) -> None:
        """A line as the file starts."""
        self.where = step.migration.file.path
        resumed = f" (resuming at chunk {step.chunks_done + 1})" if step.chunks_done else ""
        self.info(f"applying {step.migration.file.path}{resumed}")

    def chunks_started(self, step: Step, first: Chunk, last: Chunk) -> None:
        """Where the server messages that follow come from."""
        self.where = f"{step.migration.file.path} {_span(first, last)}"

    def chunk_done(self, step: Step, chunk: Chunk, duration_ms: int | None) -> None:
        """With -v, a line per chunk."""
        if self.verbose:
            total = len(step.migration.chunks)
            kind = f" [{chunk.reason}]" if chunk.reason else ""
            took = f" {_duration(duration_ms)}" if duration_ms is not None else ""
            self.info(f"  chunk {chunk.index}/{total} line {chunk.line}{kind}{took}")

    def chunk_retry(self, step: Step, chunk: Chunk, attempt: int, delay: float) -> None:
        """A chunk hit lock_timeout and runs again after `delay`."""
        self.notice(
            f"{step.migration.file.path}: chunk {chunk.index} hit lock_timeout; "
            f"retry {attempt} in {delay:g}s"
        )

    def file_done(self, outcome: FileOutcome) -> None:
        """A line as the file ends, with its time."""
        self._ended("applied", outcome, "chunk")

    def _ended(self, verb: str, outcome: FileOutcome, unit: str) -> None:
        self.where = ""
        resumed = ""
        if outcome.resumed:
            resumed = f", resumed at chunk {outcome.chunks_total - outcome.chunks_run + 1}"
        chunks = _plural(outcome.chunks_run, unit)
        self.info(f"{verb} {outcome.path} ({chunks}{resumed}) {_duration(outcome.duration_ms)}")

    def revert_started(self, reversal: Reversal) -> None:
        """A line as the file's rollback starts."""
        self.where = reversal.down.file.path
        resumed = f" (resuming at chunk {reversal.chunks_done + 1})" if reversal.chunks_done else ""
        self.info(f"reverting {reversal.file.path} with {reversal.down.file.name}{resumed}")

    def file_reverted(self, outcome: FileOutcome) -> None:
        """A line as the file's rollback ends, with its time."""
        self._ended("reverted", outcome, "down chunk")

    def seed_started(self, name: str) -> None:
        """Where the server messages that follow come from."""
        self.where = f"seed {name}"

    def seed_retry(self, name: str, attempt: int, delay: float) -> None:
        """A seed process hit lock_timeout, was rolled back, and runs again after `delay`."""
        self.notice(f"seed {name} hit lock_timeout; retry {attempt} in {delay:g}s")

    def seed_done(self, outcome: SeedOutcome) -> None:
        """A line per process."""
        self.where = ""
        took = f" {_duration(outcome.duration_ms)}" if outcome.action != "skipped" else ""
        reason = " (already SUCCESS)" if outcome.action == "skipped" else ""
        if outcome.detail:
            reason = f" (already SUCCESS; {outcome.detail})"
        self.info(f"{outcome.action} {outcome.name}{reason}{took}")

    def target_started(self, name: str) -> None:
        """A fleet's target starts (shown with -v)."""
        if self.verbose:
            self.info(f"{name}: started")

    def target_progress(self, name: str, applied: int) -> None:
        """A fleet's target applied one more file (the terminal's table counts them)."""

    def target_done(self, outcome: TargetOutcome) -> None:
        """A line per target: its state, what it did, its error."""
        line = f"{outcome.target}: {outcome.state}"
        if outcome.state == "done":
            line += f" ({outcome.detail}) {_duration(outcome.duration_ms)}"
        elif outcome.error:
            line += f": {outcome.error}"
        if outcome.state in ("failed", "locked"):
            self.notice(line)
        else:
            self.info(line)

    def drift(self, drift: Drift) -> None:
        """How an applied file differs from the text the journal keeps."""
        if drift.whitespace_only:
            self._out(
                f"{drift.path}: only whitespace differs from the applied text (if that is "
                "intended, record it: migrator repair --reason 'whitespace')"
            )
        else:
            self._panel(f"{drift.path}: {drift.what}", drift.diff)

    def review(self, preview: Preview) -> None:
        """What is about to change, before it is confirmed."""
        if isinstance(preview, MigrateResult):
            self._plan(preview, with_sql=False)
        elif isinstance(preview, RollbackResult):
            self._rollback_plan(preview, with_sql=False)
        elif isinstance(preview, SeedResult):
            self._seed_plan(preview)
        else:
            for line in preview:
                self._out(line)

    def ask(self, question: str) -> str | None:
        """The answer typed on the terminal; None when stdin is not one."""
        if not sys.stdin.isatty():
            return None
        self._prompt(question)
        try:
            answer = sys.stdin.readline()
        except KeyboardInterrupt:
            answer = ""
        if not answer:  # end of input or Ctrl-C at the question: not confirmed
            sys.stderr.write("\n")  # the error goes below the question, not after it
            raise Refused("no answer to the question; nothing was changed")
        return answer.strip()

    def _prompt(self, question: str) -> None:
        sys.stderr.write(f"{question}: ")
        sys.stderr.flush()

    # Results.
    def show(self, result: object) -> None:
        """Render a command's result on stdout."""
        _RENDER[type(result)](self, result)

    def finish(self, exit_code: int) -> None:
        """The command is over (nothing more to print, for text)."""

    def failure(self, error: MigratorError) -> None:
        """An expected error on stderr: one headline, then the context that helps fix it."""
        if isinstance(error, Cancelled):
            self._err(error.message)  # the answer given, not a fault
            return
        self._error(_failure_lines(error))

    def _error(self, lines: list[tuple[str, str]]) -> None:
        self._err("error: " + "\n".join(text for text, _ in lines))

    def _migrated(self, result: MigrateResult) -> None:
        if result.dry_run:
            self._plan(result, with_sql=True)
            return
        left = f"; {_plural(len(result.pending), 'file')} left pending" if result.pending else ""
        if not result.applied:
            if result.pending:
                self._out(f"nothing to apply{left}")
            else:
                every = (
                    "the migration file is"
                    if result.files == 1
                    else f"all {result.files} migration files are"
                )
                self._out(f"nothing to do: {every} applied")
            return
        chunks = sum(outcome.chunks_run for outcome in result.applied)
        self._out(
            f"applied {_plural(len(result.applied), 'file')}, {_plural(chunks, 'chunk')}, in "
            f"{_duration(result.duration_ms)}{left}"
        )

    def _plan(self, result: MigrateResult, *, with_sql: bool) -> None:
        """Per file its chunks and statements, and what runs outside a transaction."""
        steps = [step for plan in result.plans for step in plan.steps]
        repeatables = [migration for plan in result.plans for migration in plan.repeatables]
        on = f" on {result.target}" if result.target else ""
        if not steps and not repeatables:
            self._out(f"nothing to apply{on}")
            return
        self._out(f"plan{on}: {_plural(len(steps) + len(repeatables), 'file')}")
        how = {TxMode.SINGLE: ", one transaction", TxMode.NONE: ", no transaction"}
        for step in steps:
            migration = step.migration
            pending = migration.chunks[step.chunks_done :]
            statements = sum(chunk.statements for chunk in pending)
            extra = how.get(migration.mode, "")
            resume = f", resuming at chunk {step.chunks_done + 1}" if step.chunks_done else ""
            forced = ", again (--force)" if step.forced else ""
            self._out(
                f"  {migration.file.path}: {_plural(len(pending), 'chunk')}, "
                f"{_plural(statements, 'statement')}{extra}{resume}{forced}"
            )
            self._chunk_lines(migration, step.chunks_done, with_sql=with_sql)
        for migration in repeatables:
            whole = "no transaction" if migration.mode is TxMode.NONE else "one transaction"
            self._out(
                f"  {migration.file.path}: repeatable, {_plural(len(migration.chunks), 'chunk')}, "
                f"{whole}"
            )
            self._chunk_lines(migration, 0, with_sql=with_sql)

    def _rolled_back(self, result: RollbackResult) -> None:
        if result.dry_run:
            self._rollback_plan(result, with_sql=True)
            return
        if not result.reverted:
            where = f" in {result.schema}" if result.schema else ""
            self._out(f"nothing to roll back{where}")
            return
        chunks = sum(outcome.chunks_run for outcome in result.reverted)
        self._out(
            f"reverted {_plural(len(result.reverted), 'file')} of {result.schema}, "
            f"{_plural(chunks, 'down chunk')}, in {_duration(result.duration_ms)}; "
            f"{'it is' if len(result.reverted) == 1 else 'they are'} pending again"
        )

    def _rollback_plan(self, result: RollbackResult, *, with_sql: bool) -> None:
        """Per file its down file's chunks, what runs outside a transaction, and notes."""
        on = f" on {result.target}" if result.target else ""
        if not result.plan:
            where = f" in {result.schema}" if result.schema else ""
            self._out(f"nothing to roll back{where}{on}")
            return
        self._out(
            f"rollback plan{on}: revert {_plural(len(result.plan), 'file')} of {result.schema}"
        )
        how = {TxMode.SINGLE: ", one transaction", TxMode.NONE: ", no transaction"}
        for reversal in result.plan:
            down = reversal.down
            pending = down.chunks[reversal.chunks_done :]
            resume = (
                f", resuming at chunk {reversal.chunks_done + 1}" if reversal.chunks_done else ""
            )
            self._out(
                f"  {reversal.file.path} with {down.file.name}: "
                f"{_plural(len(pending), 'chunk')}{how.get(down.mode, '')}{resume}"
            )
            if reversal.note:
                self._out(f"    note: {reversal.note}")
            self._chunk_lines(down, reversal.chunks_done, with_sql=with_sql)

    def _chunk_lines(self, migration: Migration, done: int, *, with_sql: bool) -> None:
        """The chunks after `done` that run outside a transaction; with_sql: every one's SQL."""
        for chunk in migration.chunks[done:]:
            if migration.mode is TxMode.NONE or chunk.kind is not ChunkKind.TRANSACTIONAL:
                self._out(
                    f"    chunk {chunk.index} (line {chunk.line}) runs outside a "
                    f"transaction: {chunk.reason or 'no-transaction file'}"
                )
            if with_sql:
                self._out(f"    -- chunk {chunk.index}, line {chunk.line}")
                self._out(_indent(chunk.sql.strip("\n"), "    "))

    def _status(self, result: StatusResult) -> None:
        rows = [
            (
                status.schema,
                str(status.version),
                f"{status.name} (+down)" if status.has_down else status.name,
                status.state.value,
                _chunks(status),
                _when(status.row.finished_at if status.row and _was_applied(status) else None),
                _duration(status.row.duration_ms) if status.row else "",
                status.detail,
            )
            for status in result.migrations
        ]
        headers = ("schema", "version", "file", "state", "chunks", "applied at", "took", "detail")
        self._table(f"migrations on {result.target}", headers, rows, 3)
        counts: dict[str, int] = {}
        for status in result.migrations:
            counts[status.state.value] = counts.get(status.state.value, 0) + 1
        summary = ", ".join(f"{count} {state}" for state, count in counts.items())
        self._out(summary or "no migration files")
        if result.repeatables:
            repeated = [
                (
                    status.schema,
                    status.name,
                    status.state.value,
                    str(status.row.runs) if status.row else "",
                    _when(status.row.finished_at if status.row else None),
                    _duration(status.row.duration_ms) if status.row else "",
                    status.detail,
                )
                for status in result.repeatables
            ]
            columns = ("schema", "file", "state", "runs", "last applied", "took", "detail")
            self._table("repeatable files", columns, repeated, 2)
        for drift in result.drift:
            self.drift(drift)
        if result.seeds:
            self._seed_status(result.seeds)

    def _seed_status(self, states: Sequence[SeedState]) -> None:
        rows = [
            (
                state.name,
                state.state,
                str(state.row.runs) if state.row else "",
                _when(state.row.finished_at if state.row else None),
                _duration(state.row.duration_ms) if state.row else "",
                state.detail,
            )
            for state in states
        ]
        self._table("seeds", ("process", "state", "runs", "last run", "took", "detail"), rows, 1)

    def _validated(self, result: ValidateResult) -> None:
        self._out(f"ok: {result.files} migration files parse and match the journal")

    def _seeded(self, result: SeedResult) -> None:
        if result.dry_run:
            self._seed_plan(result)
            return
        counts: dict[str, int] = {}
        for outcome in result.outcomes:
            counts[outcome.action] = counts.get(outcome.action, 0) + 1
        summary = ", ".join(f"{count} {action}" for action, count in counts.items())
        self._out(f"seeds: {summary or 'no seed processes'}")

    def _seed_plan(self, result: SeedResult) -> None:
        on = f" on {result.target}" if result.target else ""
        if not result.plan:
            self._out(f"no seed process is due{on}")
            return
        self._out(f"seed plan{on}:")
        for entry in result.plan:
            self._out(f"  {entry.action} {entry.name}")
            if entry.sql:
                self._out(_indent(entry.sql.strip("\n"), "    "))

    def _repaired(self, result: RepairResult) -> None:
        count = len(result.repairs)
        self._out(f"repaired {_plural(count, 'journal row')}" if count else "nothing to repair")

    def _baselined(self, result: BaselineResult) -> None:
        self._out(
            f"baselined {_plural(len(result.baselined), 'file')} of {result.schema} up to version "
            f"{result.version}"
        )

    def _adopted(self, result: AdoptResult) -> None:
        verb = "would adopt" if result.dry_run else "adopted"
        for adopted in result.adopted:
            self._out(f"{verb} {adopted.path} ({result.source} {adopted.entry})")
        count = len(result.adopted)
        already = f" ({result.already} already journaled)" if result.already else ""
        files = "file" if count == 1 else "files"
        self._out(f"{verb} {count} {files} of {result.schema} from {result.source}{already}")
        if result.without_file or result.checksum_differs:
            self._out(
                f"reported: {_plural(len(result.without_file), 'recorded migration')} without "
                f"a file, {_plural(len(result.checksum_differs), 'file')} whose checksum differs"
            )

    def _imported(self, result: ImportResult) -> None:
        verb = "would write" if result.dry_run else "wrote"
        for file in result.files:
            state = "unchanged" if file.unchanged else verb
            self._out(f"{state} {file.path} (from {file.source})")
            if file.down:
                self._out(f"{state} {file.down}")
        for item in result.reported:
            self.notice(f"not imported: {item.path}: {item.reason}")
        for item in result.warnings:
            self.notice(f"warning: {item.path}: {item.reason}")
        fresh = [file for file in result.files if not file.unchanged]
        downs = sum(1 for file in fresh if file.down)
        unchanged = len(result.files) - len(fresh)
        self._out(
            f"{'would import' if result.dry_run else 'imported'} "
            f"{_plural(len(fresh), 'migration')} ({_plural(downs, 'down file')}) from "
            f"{result.kind} {result.source} into {result.schema}"
            + (f", {unchanged} unchanged" if unchanged else "")
            + f"; {_plural(len({item.path for item in result.reported}), 'file')} not imported"
            + (f", {_plural(len(result.warnings), 'warning')}" if result.warnings else "")
        )

    def _reset(self, result: ResetResult) -> None:
        self._migrated(result.migrate)

    def _created(self, result: NewResult) -> None:
        self._out(f"created {result.path}")
        if result.down:
            self._out(f"created {result.down}")

    def _fleeted(self, result: FleetResult) -> None:
        from migrator.fleets import describe

        rows = [
            (
                outcome.target,
                outcome.state,
                str(outcome.applied),
                str(outcome.left),
                _duration(outcome.duration_ms),
                outcome.error or outcome.detail,
            )
            for outcome in result.outcomes
        ]
        headers = ("target", "state", "applied", "left", "took", "detail")
        self._table(f"fleet of {_plural(len(rows), 'target')}", headers, rows, 1)
        stopped = f"; stopped by {result.signal}" if result.interrupted else ""
        self._out(f"{describe(result.outcomes)}{stopped}")

    def _linted(self, result: LintResult) -> None:
        for finding in result.findings:
            self._out(
                f"{finding.path}:{finding.line}:{finding.column}: {finding.rule} "
                f"({finding.severity}): {finding.message}"
            )
            self._out(_indent(finding.fix, "    "))
        warnings = len(result.findings) - result.errors
        if result.findings:
            self._out(
                f"lint: {_plural(result.files, 'file')}, {_plural(result.errors, 'error')}, "
                f"{_plural(warnings, 'warning')}"
            )
        else:
            self._out(f"lint: {_plural(result.files, 'file')}, nothing found")

    def _dumped(self, result: DumpResult) -> None:
        if result.checked:
            self._out(f"{result.path} matches the database's schema")
        else:
            self._out(f"wrote {result.path} ({_plural(result.lines, 'line')})")

    def _verified(self, result: VerifyResult) -> None:
        self._out(
            f"the schema of {result.target} matches what the migration files make "
            f"({', '.join(result.schemas)}; shadow database {result.shadow} dropped)"
        )

    def _configured(self, result: ConfigResult) -> None:
        rows = [(row.name, row.value, row.source) for row in result.settings]
        self._table("settings", ("setting", "value", "from"), rows, -1)


_RENDER: dict[type, Callable[[Any, Any], None]] = {
    MigrateResult: PlainReporter._migrated,
    RollbackResult: PlainReporter._rolled_back,
    StatusResult: PlainReporter._status,
    ValidateResult: PlainReporter._validated,
    SeedResult: PlainReporter._seeded,
    RepairResult: PlainReporter._repaired,
    BaselineResult: PlainReporter._baselined,
    AdoptResult: PlainReporter._adopted,
    ImportResult: PlainReporter._imported,
    ResetResult: PlainReporter._reset,
    NewResult: PlainReporter._created,
    ConfigResult: PlainReporter._configured,
    FleetResult: PlainReporter._fleeted,
    LintResult: PlainReporter._linted,
    DumpResult: PlainReporter._dumped,
    VerifyResult: PlainReporter._verified,
}


def _chunks(status: FileStatus) -> str:
    row = status.row
    if row and row.down_chunks_done is not None:
        return f"down {row.down_chunks_done}/{len(row.down_chunk_hashes)}"
    return f"{row.chunks_done}/{row.chunks_total}" if row else ""


def _failure_lines(error: MigratorError) -> list[tuple[str, str]]:
    """The headline and the context of an error, each with its style on a terminal."""
    problems = getattr(error, "problems", [])
    lines = [(error.message, "bold")]
    if isinstance(error, MigrationFailed):
        if error.sqlstate:
            lines.append((f"SQLSTATE {error.sqlstate}", ""))
        if error.detail:
            lines.append((f"DETAIL: {error.detail}", ""))
        if error.excerpt:
            lines.append((error.excerpt, ""))
    if isinstance(error, DriftError | ConfigError) or (
        isinstance(error, BadFile) and len(problems) > 1
    ):
        lines.extend((f"  {problem}", "") for problem in problems)
    if error.hint:
        lines.append((f"hint: {error.hint}", "cyan"))
    return lines


class _Progress:
    """The live line of the file being applied (or reverted): chunk k of n, and the time it
    has taken."""

    def __init__(self, path: str, total: int, verb: str = "applying") -> None:
        self.verb = verb
        self.path = path
        self.total = total
        self.chunks = ""
        self.started = time.monotonic()

    def __rich__(self) -> str:
        elapsed = time.monotonic() - self.started
        at = f" {self.chunks} of {self.total}" if self.chunks else ""
        return f"{self.verb} {self.path}{at}  {elapsed:.1f} s"


class _Board:
    """The live table of a fleet: the targets running, and how many are in each state."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[float, int]] = {}  # name: (started, files applied)
        self.counts: dict[str, int] = {}

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(box=None, title_justify="left")
        for header in ("target", "state", "applied", "time"):
            table.add_column(header)
        now = time.monotonic()
        for name, (started, applied) in list(self.running.items())[:20]:
            table.add_row(name, "running", str(applied), f"{now - started:.1f} s")
        done = ", ".join(f"{count} {state}" for state, count in list(self.counts.items()))
        table.caption = f"{len(self.running)} running" + (f"; {done}" if done else "")
        return table


class TerminalReporter(PlainReporter):
    """rich on a terminal: a live line for the file being applied, tables, panels."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        super().__init__(quiet=quiet, verbose=verbose)
        self.live: Live | None = None
        self.progress: _Progress | None = None
        self.board: _Board | None = None

    @cached_property
    def out(self) -> Console:
        """rich on stdout."""
        from rich.console import Console

        return Console(highlight=False)

    @cached_property
    def err(self) -> Console:
        """rich on stderr."""
        from rich.console import Console

        return Console(stderr=True, highlight=False)

    def _err(self, message: str, style: str = "") -> None:
        if self.err.is_terminal:  # soft_wrap: the terminal wraps a message, which copies whole
            self.err.print(message, style=style or None, markup=False, soft_wrap=True)
        else:
            super()._err(message, style)

    def _out(self, message: str) -> None:
        if self.out.is_terminal:
            self.out.print(message, markup=False, soft_wrap=True)
        else:
            super()._out(message)

    def _table(
        self, title: str, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], state: int
    ) -> None:
        if not self.out.is_terminal:
            super()._table(title, headers, rows, state)
            return
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, title_justify="left")
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            style = _STYLE.get(row[state], "") if state >= 0 else ""
            table.add_row(
                *(Text(cell, style=style if i == state else "") for i, cell in enumerate(row))
            )
        self.out.print(table)

    def _panel(self, title: str, body: str) -> None:
        if not self.out.is_terminal:
            super()._panel(title, body)
            return
        from rich.panel import Panel
        from rich.text import Text

        self.out.print(Panel(Text(body), title=title))

    def _error(self, lines: list[tuple[str, str]]) -> None:
        self._stop()
        if not self.err.is_terminal:
            super()._error(lines)
            return
        from rich.panel import Panel
        from rich.text import Text

        body = Text("\n").join(Text(text, style=style) for text, style in lines)
        self.err.print(Panel(body, title="error", title_align="left", border_style="red"))

    def _prompt(self, question: str) -> None:
        self._stop()
        super()._prompt(question)

    def file_started(self, step: Step) -> None:
        """The live line, redrawn while the file's chunks run (on a terminal)."""
        self.where = step.migration.file.path
        if self.quiet or not self.err.is_terminal:
            super().file_started(step)
            return
        from rich.live import Live

        self.progress = _Progress(step.migration.file.path, len(step.migration.chunks))
        self.live = Live(self.progress, console=self.err, transient=True, refresh_per_second=4)
        self.live.start()

    def revert_started(self, reversal: Reversal) -> None:
        """The live line, redrawn while the down file's chunks run (on a terminal)."""
        self.where = reversal.down.file.path
        if self.quiet or not self.err.is_terminal:
            super().revert_started(reversal)
            return
        from rich.live import Live

        self.progress = _Progress(reversal.down.file.path, len(reversal.down.chunks), "reverting")
        self.live = Live(self.progress, console=self.err, transient=True, refresh_per_second=4)
        self.live.start()

    def file_reverted(self, outcome: FileOutcome) -> None:
        """The live line becomes the file's closing line."""
        self._stop()
        super().file_reverted(outcome)

    def chunks_started(self, step: Step, first: Chunk, last: Chunk) -> None:
        """The live line's chunk numbers."""
        super().chunks_started(step, first, last)
        if self.progress is not None:
            self.progress.chunks = _span(first, last)

    def file_done(self, outcome: FileOutcome) -> None:
        """The live line becomes the file's closing line."""
        self._stop()
        super().file_done(outcome)

    def target_started(self, name: str) -> None:
        """The fleet's live table gains the target (on a terminal)."""
        if self.quiet or not self.err.is_terminal:
            super().target_started(name)
            return
        if self.board is None:
            from rich.live import Live

            self.board = _Board()
            self.live = Live(self.board, console=self.err, transient=True, refresh_per_second=4)
            self.live.start()
        self.board.running[name] = (time.monotonic(), 0)

    def target_progress(self, name: str, applied: int) -> None:
        """The target's count of files applied, in the live table."""
        if self.board is not None and name in self.board.running:
            self.board.running[name] = (self.board.running[name][0], applied)

    def target_done(self, outcome: TargetOutcome) -> None:
        """The target leaves the live table for a line above it, and the totals count it."""
        if self.board is not None:
            self.board.running.pop(outcome.target, None)
            self.board.counts[outcome.state] = self.board.counts.get(outcome.state, 0) + 1
        super().target_done(outcome)

    def finish(self, exit_code: int) -> None:
        """Stop the live line, whatever happened."""
        self._stop()

    def _stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = self.progress = None
            self.board = None


class JsonReporter(PlainReporter):
    """One JSON document on stdout, printed at the end; progress goes to stderr as plain lines."""

    def __init__(
        self, lists: Sequence[str] = (), *, quiet: bool = False, verbose: bool = False
    ) -> None:
        super().__init__(quiet=quiet, verbose=verbose)
        self.document: dict[str, Any] = {name: [] for name in lists}
        if "unlisted" in lists and "drift" in lists:  # validate: not valid until it says so
            self.document["valid"] = False
        self.document.update(notices=[], messages=[])

    def connected(self, target: str) -> None:
        """The document's `target`, known even when the command fails later."""
        super().connected(target)
        self.document["target"] = target

    def notice(self, message: str) -> None:
        """On stderr, and in the document's `notices`."""
        super().notice(message)
        self.document["notices"].append(message)

    def server_message(self, message: ServerMessage) -> None:
        """On stderr (unless -q), and in the document's `messages` with where it came from."""
        super().server_message(message)
        self.document["messages"].append({"where": self.where, **asdict(message)})

    def file_done(self, outcome: FileOutcome) -> None:
        """Kept for `applied`, which the document holds on failure too."""
        super().file_done(outcome)
        if "applied" in self.document:
            self.document["applied"].append(_value(outcome))

    def target_done(self, outcome: TargetOutcome) -> None:
        """Kept for `targets`, which the document holds when the fleet is stopped too."""
        super().target_done(outcome)
        if "targets" in self.document:
            self.document["targets"].append(_value(outcome))

    def file_reverted(self, outcome: FileOutcome) -> None:
        """Kept for `reverted`, which the document holds on failure too."""
        super().file_reverted(outcome)
        if "reverted" in self.document:
            self.document["reverted"].append(_value(outcome))

    def seed_done(self, outcome: SeedOutcome) -> None:
        """Kept for `seeds`, which the document holds on failure too."""
        super().seed_done(outcome)
        if "seeds" in self.document:
            self.document["seeds"].append(_value(outcome))

    def drift(self, drift: Drift) -> None:
        """In the document's `drift`."""
        self.document.setdefault("drift", []).append(asdict(drift))

    def review(self, preview: Preview) -> None:
        """In the document: the plan that is to be confirmed."""
        if isinstance(preview, MigrateResult):
            self.document["plan"] = _plan_document(preview, False)
        elif isinstance(preview, RollbackResult):
            self.document["plan"] = [_reversal(r, False) for r in preview.plan]
        elif isinstance(preview, SeedResult):
            self.document["plan"] = [asdict(entry) for entry in preview.plan]
        else:
            self.document["review"] = list(preview)

    def show(self, result: object) -> None:
        """The result's keys, into the document."""
        self.document.update(_DOCUMENT[type(result)](result))

    def failure(self, error: MigratorError) -> None:
        """The error on stderr, and into the document (which holds what was done before it)."""
        super().failure(error)
        self.document["error"] = {
            "type": type(error).__name__,
            "message": error.message,
            "problems": getattr(error, "problems", []),
            "hint": error.hint,
            **(
                {
                    "location": error.location,
                    "path": error.path,
                    "chunk": error.chunk,
                    "sqlstate": error.sqlstate,
                    "reason": error.reason,
                    "detail": error.detail,
                }
                if isinstance(error, MigrationFailed)
                else {}
            ),
        }
        if isinstance(error, MigrationFailed | LintFailed) and "pending" in self.document:
            self.document["pending"] = [_status_entry(status) for status in error.pending]

    def finish(self, exit_code: int) -> None:
        """Print the document."""
        self.document["exit_code"] = exit_code
        _dump(self.document, sys.stdout)


def _value(value: Any) -> Any:
    """A result value as JSON data: dataclasses as objects, enums as their values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {name: _value(item) for name, item in asdict(value).items()}
    if isinstance(value, dict):
        return {key: _value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_value(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path | Enum):
        return str(value.value if isinstance(value, Enum) else value)
    return str(value)


def _dump(document: dict[str, Any], stream: TextIO) -> None:
    stream.write(json.dumps(document, default=_default, indent=2) + "\n")
    stream.flush()


def _plan_document(result: MigrateResult, with_sql: bool) -> list[dict[str, Any]]:
    steps = [_step(step, with_sql) for plan in result.plans for step in plan.steps]
    return steps + [
        _step(Step(migration), with_sql) for plan in result.plans for migration in plan.repeatables
    ]


def _step(step: Step, with_sql: bool) -> dict[str, Any]:
    migration = step.migration
    return {
        "schema": migration.file.schema,
        "version": migration.file.version,
        "path": migration.file.path,
        "repeatable": migration.file.repeatable,
        "mode": migration.mode.value,
        "resume_at_chunk": step.chunks_done + 1,
        "forced": step.forced,
        "chunks": [
            {
                "index": chunk.index,
                "line": chunk.line,
                "statements": chunk.statements,
                "kind": chunk.kind.value,
                **({"sql": chunk.sql} if with_sql else {}),
            }
            for chunk in migration.chunks[step.chunks_done :]
        ],
    }


def _reversal(reversal: Reversal, with_sql: bool) -> dict[str, Any]:
    return {
        **_step(reversal.step, with_sql),
        "version": reversal.file.version,
        "path": reversal.file.path,
        "down": reversal.down.file.path,
        "note": reversal.note,
    }


def _status_entry(status: FileStatus) -> dict[str, Any]:
    row = status.row
    return {
        "schema": status.schema,
        "version": status.version,
        "name": status.name,
        "path": status.path,
        "state": status.state.value,
        "chunks_done": row.chunks_done if row else None,
        "chunks_total": row.chunks_total if row else None,
        "finished_at": row.finished_at if row else None,
        "duration_ms": row.duration_ms if row else None,
        "detail": status.detail,
        "has_down": status.has_down,
        "down_chunks_done": row.down_chunks_done if row else None,
    }


def _seed_entry(state: SeedState) -> dict[str, Any]:
    row = state.row
    return {
        "name": state.name,
        "path": state.path,
        "state": state.state,
        "runs": row.runs if row else 0,
        "finished_at": row.finished_at if row else None,
        "detail": state.detail,
    }


def _migrate_document(result: MigrateResult) -> dict[str, Any]:
    if result.dry_run:
        return {
            "target": result.target,
            "plan": _plan_document(result, True),
            "unlisted": list(result.unlisted),
        }
    return {
        "target": result.target,
        "applied": [_value(outcome) for outcome in result.applied],
        "pending": [_status_entry(status) for status in result.pending],
        "unlisted": list(result.unlisted),
        "duration_ms": result.duration_ms,
    }


_DOCUMENT: dict[type, Callable[[Any], dict[str, Any]]] = {
    MigrateResult: _migrate_document,
    RollbackResult: lambda result: {
        "target": result.target,
        "schema": result.schema,
        **(
            {"plan": [_reversal(reversal, True) for reversal in result.plan]}
            if result.dry_run
            else {
                "reverted": [_value(outcome) for outcome in result.reverted],
                "duration_ms": result.duration_ms,
            }
        ),
    },
    StatusResult: lambda result: {
        "target": result.target,
        "migrations": [_status_entry(status) for status in result.migrations],
        "repeatables": [
            {
                "schema": status.schema,
                "name": status.name,
                "path": status.path,
                "state": status.state.value,
                "runs": status.row.runs if status.row else 0,
                "finished_at": status.row.finished_at if status.row else None,
                "duration_ms": status.row.duration_ms if status.row else None,
                "detail": status.detail,
            }
            for status in result.repeatables
        ],
        "seeds": [_seed_entry(state) for state in result.seeds],
        "drift": [asdict(drift) for drift in result.drift],
    },
    ValidateResult: lambda result: {
        "valid": True,
        "files": result.files,
        "unlisted": list(result.unlisted),
    },
    SeedResult: lambda result: (
        {"target": result.target, "plan": [asdict(entry) for entry in result.plan]}
        if result.dry_run
        else {"target": result.target, "seeds": [_value(o) for o in result.outcomes]}
    ),
    RepairResult: lambda result: {
        "repaired": [
            {"path": r.path, "version": r.version, "action": r.action} for r in result.repairs
        ]
    },
    BaselineResult: lambda result: {"baselined": list(result.baselined)},
    AdoptResult: lambda result: {
        "tool": result.tool,
        "table": result.source,
        "schema": result.schema,
        "adopted": [asdict(adopted) for adopted in result.adopted],
        "already": result.already,
        "without_file": list(result.without_file),
        "checksum_differs": list(result.checksum_differs),
        "reverted": list(result.reverted),
        "dry_run": result.dry_run,
    },
    ImportResult: lambda result: {
        "imported": [asdict(file) for file in result.files],
        "reported": [asdict(item) for item in result.reported],
        "warnings": [asdict(item) for item in result.warnings],
        "dry_run": result.dry_run,
    },
    ResetResult: lambda result: {
        "reset": list(result.schemas),
        **_migrate_document(result.migrate),
    },
    NewResult: lambda result: {"created": result.path, "down": result.down or None},
    ConfigResult: lambda result: {"settings": [asdict(row) for row in result.settings]},
    DumpResult: lambda result: {
        "path": result.path,
        "lines": result.lines,
        "checked": result.checked,
    },
    VerifyResult: lambda result: {
        "target": result.target,
        "matched": True,
        "schemas": list(result.schemas),
        "shadow": result.shadow,
    },
    LintResult: lambda result: {
        "findings": [asdict(finding) for finding in result.findings],
        "files": result.files,
        "errors": result.errors,
    },
    FleetResult: lambda result: {
        "targets": [_value(outcome) for outcome in result.outcomes],
        "summary": {
            state: sum(o.state == state for o in result.outcomes)
            for state in dict.fromkeys(o.state for o in result.outcomes)
        },
        "interrupted": result.interrupted,
    },
}


def lint_formatted(result: LintResult, form: str) -> str:
    """Lint findings as SARIF 2.1.0 (code-scanning uploads) or GitHub workflow commands."""
    if form == "github":
        lines = [
            f"::{'error' if f.severity == 'error' else 'warning'} file={_property(f.path)},"
            f"line={f.line},col={f.column},title={_property(f.rule)}::"
            f"{_data(f.message + '. ' + f.fix)}"
            for f in result.findings
        ]
        return "".join(line + "\n" for line in lines)
    from urllib.parse import quote

    from migrator import __version__
    from migrator.linter import RULES

    used = sorted({finding.rule for finding in result.findings})
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "migrator",
                        "version": __version__,
                        "rules": [
                            {
                                "id": name,
                                "shortDescription": {"text": RULES[name].problem},
                                "help": {"text": RULES[name].fix},
                            }
                            for name in used
                        ],
                    }
                },
                "results": [
                    {
                        "ruleId": f.rule,
                        "level": f.severity,
                        "message": {"text": f"{f.message}. Instead: {f.fix}"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {
                                        "uri": quote(f.path),
                                        "uriBaseId": "%SRCROOT%",
                                    },
                                    "region": {"startLine": f.line, "startColumn": f.column},
                                }
                            }
                        ],
                    }
                    for f in result.findings
                ],
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _data(text: str) -> str:
    """Text as a GitHub workflow command's message: %, CR and LF escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """Text as a workflow command's property value: also : and , escaped."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")
