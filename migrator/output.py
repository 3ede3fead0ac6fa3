"""The only module that imports rich: progress lines, tables, plans, diffs, failure panels.

Results go to stdout: rich on a terminal, plain columns otherwise, or with --json one JSON
document built up by the command and printed when it ends. Progress, notices and failures go to
stderr, so stdout stays parseable. rich is imported only when a terminal will show its output:
CI logs and containers, where migrator runs most, do not pay for loading it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from migrator.db import describe_holder
from migrator.errors import BadFile, DriftError, MigrationFailed, MigratorError

if TYPE_CHECKING:
    from rich.console import Console

from migrator.model import (
    Chunk,
    ChunkKind,
    FileOutcome,
    FileStatus,
    LockHolder,
    Plan,
    SeedOutcome,
    SeedState,
    Step,
    TxMode,
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


def _when(moment: datetime | None) -> str:
    # isoformat, not strftime: a 10,000-row status formats 10,000 of them.
    return moment.isoformat(" ", "seconds")[:19] if moment else ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class Output:
    """Renders results on stdout and progress, notices and failures on stderr."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, json: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.document: dict[str, Any] | None = {} if json else None
        self.out_is_terminal = sys.stdout.isatty()
        self.err_is_terminal = sys.stderr.isatty()

    @cached_property
    def out(self) -> Console:
        """rich on stdout, for a terminal."""
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)

    @cached_property
    def err(self) -> Console:
        """rich on stderr, for a terminal."""
        from rich.console import Console

        return Console(stderr=True, highlight=False, soft_wrap=True)

    def _write(self, message: str, *, stderr: bool = False, style: str = "") -> None:
        if stderr and self.err_is_terminal:
            self.err.print(message, style=style or None, markup=False)
        elif not stderr and self.out_is_terminal:
            self.out.print(message, style=style or None, markup=False)
        else:
            stream = sys.stderr if stderr else sys.stdout
            stream.write(message + "\n")
            stream.flush()

    def set(self, **values: Any) -> None:
        """Add keys to the JSON document (ignored without --json)."""
        if self.document is not None:
            self.document.update(values)

    def line(self, message: str) -> None:
        """A result line on stdout (the JSON document carries results instead)."""
        if self.document is None:
            self._write(message)

    def finish(self, exit_code: int) -> None:
        """Print the JSON document, if there is one."""
        if self.document is not None:
            self.document["exit_code"] = exit_code
            sys.stdout.write(json.dumps(self.document, default=str, indent=2) + "\n")
            sys.stdout.flush()

    def notice(self, message: str) -> None:
        """A line on stderr that the user must not miss, even with -q."""
        self._write(message, stderr=True, style="bold yellow")

    def info(self, message: str) -> None:
        """A progress line on stderr (hidden by -q)."""
        if not self.quiet:
            self._write(message, stderr=True)

    # The Reporter protocol (model.Reporter).
    def lock_waiting(self, holder: LockHolder | None) -> None:
        who = describe_holder(holder) if holder else "another session"
        self.info(f"waiting for the migration lock, held by {who}")

    def file_started(self, step: Step) -> None:
        if self.verbose:
            resumed = f" (resuming at chunk {step.chunks_done + 1})" if step.chunks_done else ""
            self.info(f"applying {step.migration.file.path}{resumed}")

    def chunk_done(self, step: Step, chunk: Chunk, duration_ms: int | None) -> None:
        if self.verbose:
            total = len(step.migration.chunks)
            kind = f" [{chunk.reason}]" if chunk.reason else ""
            took = f" {_duration(duration_ms)}" if duration_ms is not None else ""
            self.info(f"  chunk {chunk.index}/{total} line {chunk.line}{kind}{took}")

    def chunk_retry(self, step: Step, chunk: Chunk, attempt: int, delay: float) -> None:
        self.notice(
            f"{step.migration.file.path}: chunk {chunk.index} hit lock_timeout; "
            f"retry {attempt} in {delay:g}s"
        )

    def seed_retry(self, name: str, attempt: int, delay: float) -> None:
        """A seed process hit lock_timeout, was rolled back, and runs again after `delay`."""
        self.notice(f"seed {name} hit lock_timeout; retry {attempt} in {delay:g}s")

    def file_done(self, outcome: FileOutcome) -> None:
        resumed = f", resumed at chunk {outcome.resumed_at + 1}" if outcome.resumed_at else ""
        chunks = _plural(outcome.chunks_run, "chunk")
        self.info(f"applied {outcome.path} ({chunks}{resumed}) {_duration(outcome.duration_ms)}")

    def seed_done(self, outcome: SeedOutcome) -> None:
        took = f" {_duration(outcome.duration_ms)}" if outcome.action != "skipped" else ""
        reason = " (already SUCCESS)" if outcome.action == "skipped" else ""
        self.info(f"{outcome.action} {outcome.name}{reason}{took}")

    # Results.
    def migrated(self, outcomes: Sequence[FileOutcome], files: int, elapsed_ms: int) -> None:
        """The closing line of `migrate`."""
        if self.document is not None:  # built only for --json
            self.set(applied=[asdict(outcome) for outcome in outcomes])
        if not outcomes:
            self.line(f"nothing to do: all {files} migration files are applied")
            return
        chunks = sum(outcome.chunks_run for outcome in outcomes)
        self.line(
            f"applied {_plural(len(outcomes), 'file')}, {chunks} chunks, in {_duration(elapsed_ms)}"
        )

    def plan(self, target: str, plans: Sequence[Plan], *, with_sql: bool = False) -> None:
        """What `migrate` would do: per file its chunks and statements, and what runs unwrapped."""
        steps = [step for plan in plans for step in plan.steps]
        if self.document is not None:  # built only for --json
            self.set(plan=[_step_document(step, with_sql) for step in steps])
        if target:
            self.set(target=target)
        if self.document is not None:
            return
        on = f" on {target}" if target else ""
        if not steps:
            self.line(f"nothing to apply{on}")
            return
        self.line(f"plan{on}: {_plural(len(steps), 'file')}")
        for step in steps:
            migration = step.migration
            pending = migration.chunks[step.chunks_done :]
            statements = sum(chunk.statements for chunk in pending)
            how = {TxMode.SINGLE: ", one transaction", TxMode.NONE: ", no transaction"}
            extra = how.get(migration.mode, "")
            resume = f", resuming at chunk {step.chunks_done + 1}" if step.chunks_done else ""
            forced = ", again (--force)" if step.forced else ""
            self.line(
                f"  {migration.file.path}: {_plural(len(pending), 'chunk')}, "
                f"{_plural(statements, 'statement')}{extra}{resume}{forced}"
            )
            for chunk in pending:
                outside = migration.mode is TxMode.NONE or chunk.kind is not ChunkKind.TRANSACTIONAL
                if outside:
                    self.line(
                        f"    chunk {chunk.index} (line {chunk.line}) runs outside a transaction: "
                        f"{chunk.reason or 'no-transaction file'}"
                    )
                if with_sql:
                    self.line(f"    -- chunk {chunk.index}, line {chunk.line}")
                    self.line(_indent(chunk.sql.strip("\n"), "    "))

    def status(self, target: str, statuses: Sequence[FileStatus]) -> None:
        """The per-file status table."""
        if self.document is not None:  # built only for --json
            self.set(target=target, migrations=[_status_document(status) for status in statuses])
        rows = (
            []
            if self.document is not None
            else [
                (
                    status.schema,
                    str(status.version),
                    status.name,
                    status.state.value,
                    _chunks(status),
                    _when(status.row.finished_at if status.row else None),
                    _duration(status.row.duration_ms) if status.row else "",
                    status.detail,
                )
                for status in statuses
            ]
        )
        headers = ("schema", "version", "file", "state", "chunks", "applied at", "took", "detail")
        self._table(f"migrations on {target}", headers, rows, 3)
        counts: dict[str, int] = {}
        for status in statuses:
            counts[status.state.value] = counts.get(status.state.value, 0) + 1
        summary = ", ".join(f"{count} {state}" for state, count in counts.items())
        self.line(summary or "no migration files")

    def drift(self, path: str, diff: str, whitespace_only: bool) -> None:
        """How an applied file differs from the text the journal keeps."""
        if self.document is not None:
            entry = {"path": path, "diff": diff, "whitespace_only": whitespace_only}
            self.document.setdefault("drift", []).append(entry)
            return
        if whitespace_only:
            self.line(f"{path}: only whitespace differs from the applied text")
        elif self.out_is_terminal:
            from rich.panel import Panel
            from rich.text import Text

            self.out.print(Panel(Text(diff), title=f"{path}: changed since applied"))
        else:
            self.line(f"{path}: changed since applied\n{diff}")

    def seeded(self, outcomes: Sequence[SeedOutcome]) -> None:
        """The closing line of `seed`."""
        if self.document is not None:  # built only for --json
            self.set(seeds=[asdict(outcome) for outcome in outcomes])
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.action] = counts.get(outcome.action, 0) + 1
        summary = ", ".join(f"{count} {action}" for action, count in counts.items())
        self.line(f"seeds: {summary or 'no seed processes'}")

    def seed_plan(self, target: str, due: Sequence[tuple[str, str, str]]) -> None:
        """What `seed` would do: (name, action, SQL or description) per process."""
        self.set(plan=[{"name": n, "action": a, "sql": s} for n, a, s in due])
        if target:
            self.set(target=target)
        on = f" on {target}" if target else ""
        if not due:
            self.line(f"no seed process is due{on}")
            return
        self.line(f"seed plan{on}:")
        for name, action, text in due:
            self.line(f"  {action} {name}")
            if text:
                self.line(_indent(text.strip("\n"), "    "))

    def seed_status(self, states: Sequence[SeedState]) -> None:
        """The seeds table of `status`."""
        if self.document is not None:  # built only for --json
            self.set(seeds=[_seed_document(state) for state in states])
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

    def settings(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """`config`: every setting, its value and where it came from."""
        self.set(settings=[{"name": n, "value": v, "source": s} for n, v, s in rows])
        self._table("settings", ("setting", "value", "from"), rows, -1)

    def _table(
        self, title: str, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], state: int
    ) -> None:
        """A table on a terminal, aligned plain columns otherwise; column `state` is coloured."""
        if self.document is not None:
            return
        if self.out_is_terminal:
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
            return
        columns = zip(headers, *rows, strict=False)
        widths = [max(len(text) for text in column) for column in columns]
        line = "  ".join(f"{{:<{width}}}" for width in widths)
        lines = [title, *(line.format(*row).rstrip() for row in (headers, *rows))]
        sys.stdout.write("\n".join(lines) + "\n")

    def failure(self, error: MigratorError) -> None:
        """An expected error on stderr: one headline, then the context that helps fix it."""
        problems = getattr(error, "problems", [])
        self.set(
            error={
                "type": type(error).__name__,
                "message": error.message,
                "problems": problems,
                "hint": error.hint,
                **(
                    {"location": error.location, "sqlstate": error.sqlstate}
                    if isinstance(error, MigrationFailed)
                    else {}
                ),
            }
        )
        lines = [(error.message, "bold")]
        if isinstance(error, MigrationFailed):
            if error.sqlstate:
                lines.append((f"SQLSTATE {error.sqlstate}", ""))
            if error.detail:
                lines.append((f"DETAIL: {error.detail}", ""))
            if error.excerpt:
                lines.append((error.excerpt, ""))
        if isinstance(error, DriftError) or (isinstance(error, BadFile) and len(problems) > 1):
            lines.extend((f"  {problem}", "") for problem in problems)
        if error.hint:
            lines.append((f"hint: {error.hint}", "cyan"))
        if self.err_is_terminal:
            from rich.panel import Panel
            from rich.text import Text

            body = Text("\n").join(Text(text, style=style) for text, style in lines)
            self.err.print(Panel(body, title="error", title_align="left", border_style="red"))
        else:
            sys.stderr.write("error: " + "\n".join(text for text, _ in lines) + "\n")
            sys.stderr.flush()


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.split("\n"))


def _chunks(status: FileStatus) -> str:
    row = status.row
    return f"{row.chunks_done}/{row.chunks_total}" if row else ""


def _step_document(step: Step, with_sql: bool) -> dict[str, Any]:
    migration = step.migration
    return {
        "schema": migration.file.schema,
        "version": migration.file.version,
        "path": migration.file.path,
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


def _status_document(status: FileStatus) -> dict[str, Any]:
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
    }


def _seed_document(state: SeedState) -> dict[str, Any]:
    row = state.row
    return {
        "name": state.name,
        "path": state.path,
        "state": state.state,
        "runs": row.runs if row else 0,
        "finished_at": row.finished_at if row else None,
        "detail": state.detail,
    }
