"""The only module that imports rich: progress lines, the status table, failure panels."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from migrator.db import describe_holder
from migrator.errors import BadFile, DriftError, MigrationFailed, MigratorError
from migrator.model import (
    Chunk,
    FileOutcome,
    FileStatus,
    LockHolder,
    SeedOutcome,
    SeedState,
    Step,
)

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
}


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


class Output:
    """Renders results on stdout and progress, notices and failures on stderr."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def notice(self, message: str) -> None:
        """A line on stderr that the user must not miss, even with -q."""
        self.err.print(f"[bold yellow]{escape(message)}[/]")

    def info(self, message: str) -> None:
        """A progress line on stderr (hidden by -q)."""
        if not self.quiet:
            self.err.print(escape(message))

    # The Reporter protocol (model.Reporter).
    def lock_waiting(self, holder: LockHolder | None) -> None:
        who = describe_holder(holder) if holder else "another session"
        self.info(f"waiting for the migration lock, held by {who}")

    def file_started(self, step: Step) -> None:
        if self.verbose:
            resumed = f" (resuming at chunk {step.chunks_done + 1})" if step.chunks_done else ""
            self.info(f"applying {step.migration.file.path}{resumed}")

    def chunk_done(self, step: Step, chunk: Chunk, duration_ms: int) -> None:
        if self.verbose:
            total = len(step.migration.chunks)
            kind = f" [{chunk.reason}]" if chunk.reason else ""
            self.info(
                f"  chunk {chunk.index}/{total} line {chunk.line}{kind} {_duration(duration_ms)}"
            )

    def chunk_retry(self, step: Step, chunk: Chunk, attempt: int, delay: float) -> None:
        self.notice(
            f"{step.migration.file.path}: chunk {chunk.index} hit lock_timeout; "
            f"retry {attempt} in {delay:g}s"
        )

    def file_done(self, outcome: FileOutcome) -> None:
        resumed = f", resumed at chunk {outcome.resumed_at + 1}" if outcome.resumed_at else ""
        chunks = f"{outcome.chunks_run} chunk{'s' if outcome.chunks_run != 1 else ''}"
        self.info(f"applied {outcome.path} ({chunks}{resumed}) {_duration(outcome.duration_ms)}")

    def seed_done(self, outcome: SeedOutcome) -> None:
        took = f" {_duration(outcome.duration_ms)}" if outcome.action != "skipped" else ""
        reason = " (already SUCCESS)" if outcome.action == "skipped" else ""
        self.info(f"{outcome.action} {outcome.name}{reason}{took}")

    # Results.
    def migrated(self, outcomes: Sequence[FileOutcome], files: int) -> None:
        """The closing line of `migrate`."""
        if not outcomes:
            self.out.print(f"nothing to do: all {files} migration files are applied")
            return
        ms = sum(outcome.duration_ms for outcome in outcomes)
        chunks = sum(outcome.chunks_run for outcome in outcomes)
        self.out.print(
            f"applied {len(outcomes)} file{'s' if len(outcomes) != 1 else ''}, "
            f"{chunks} chunks, in {_duration(ms)}"
        )

    def status(self, target: str, statuses: Sequence[FileStatus]) -> None:
        """The per-file status table (plain columns when stdout is not a terminal)."""
        rows = [
            (
                status.schema,
                str(status.version),
                status.name,
                status.state.value,
                _chunks(status),
                f"{status.row.finished_at:%Y-%m-%d %H:%M:%S}"
                if status.row and status.row.finished_at
                else "",
                _duration(status.row.duration_ms) if status.row else "",
                status.detail,
            )
            for status in statuses
        ]
        headers = ("schema", "version", "file", "state", "chunks", "applied at", "took", "detail")
        self._table(f"migrations on {target}", headers, rows, 3)
        counts: dict[str, int] = {}
        for status in statuses:
            counts[status.state.value] = counts.get(status.state.value, 0) + 1
        summary = ", ".join(f"{count} {state}" for state, count in counts.items())
        self.out.print(summary or "no migration files", markup=False)

    def seeded(self, outcomes: Sequence[SeedOutcome]) -> None:
        """The closing line of `seed`."""
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.action] = counts.get(outcome.action, 0) + 1
        summary = ", ".join(f"{count} {action}" for action, count in counts.items())
        self.out.print(f"seeds: {summary or 'no seed processes'}", markup=False)

    def seed_status(self, states: Sequence[SeedState]) -> None:
        """The seeds table of `status`."""
        rows = [
            (
                state.name,
                state.state,
                str(state.row.runs) if state.row else "",
                f"{state.row.finished_at:%Y-%m-%d %H:%M:%S}"
                if state.row and state.row.finished_at
                else "",
                _duration(state.row.duration_ms) if state.row else "",
                state.detail,
            )
            for state in states
        ]
        self._table("seeds", ("process", "state", "runs", "last run", "took", "detail"), rows, 1)

    def _table(
        self, title: str, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], state: int
    ) -> None:
        """A table on a terminal, aligned plain columns otherwise; column `state` is coloured."""
        if self.out.is_terminal:
            table = Table(title=title, title_justify="left")
            for header in headers:
                table.add_column(header, overflow="fold")
            for row in rows:
                style = _STYLE.get(row[state], "")
                cells = [
                    Text(cell, style=style if i == state else "") for i, cell in enumerate(row)
                ]
                table.add_row(*cells)
            self.out.print(table)
            return
        self.out.print(title, markup=False)
        columns = zip(headers, *rows, strict=False)
        widths = [max(len(text) for text in column) for column in columns]
        for row in (headers, *rows):
            line = "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True))
            self.out.print(line.rstrip(), markup=False)

    def failure(self, error: MigratorError) -> None:
        """An expected error on stderr: one headline, then the context that helps fix it."""
        lines = [Text(error.message, style="bold")]
        if isinstance(error, MigrationFailed):
            if error.sqlstate:
                lines.append(Text(f"SQLSTATE {error.sqlstate}"))
            if error.detail:
                lines.append(Text(f"DETAIL: {error.detail}"))
            if error.excerpt:
                lines.append(Text(error.excerpt))
        if isinstance(error, DriftError) or (
            isinstance(error, BadFile) and len(error.problems) > 1
        ):
            lines.extend(Text(f"  {problem}") for problem in error.problems)
        if error.hint:
            lines.append(Text(f"hint: {error.hint}", style="cyan"))
        body = Text("\n").join(lines)
        if self.err.is_terminal:
            self.err.print(Panel(body, title="error", title_align="left", border_style="red"))
        else:
            self.err.print(Text("error: ").append(body))


def _chunks(status: FileStatus) -> str:
    row = status.row
    return f"{row.chunks_done}/{row.chunks_total}" if row else ""
