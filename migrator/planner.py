"""PURE. Files and journal rows in; the state of every file, or a plan to apply, out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from migrator import sqlfile
from migrator.errors import BadFile, DriftError
from migrator.model import (
    FileState,
    FileStatus,
    JournalRow,
    Migration,
    Plan,
    RowStatus,
    SqlFile,
    Step,
)

_DONE = (RowStatus.APPLIED, RowStatus.BASELINE)


def assess(schema: str, files: Sequence[SqlFile], rows: Sequence[JournalRow]) -> list[FileStatus]:
    """The state of every file and every journal row of one schema, in version order."""
    by_version = {row.version: row for row in rows}
    top = max((row.version for row in rows if row.status in _DONE), default=None)
    statuses = []
    for file in files:
        row = by_version.pop(file.version, None)
        state, detail = _state(file, row, top)
        statuses.append(FileStatus(schema, file.version, file.name, state, file.path, row, detail))
    for row in by_version.values():
        detail = f"journaled as {row.status.value}, but the file is gone"
        statuses.append(
            FileStatus(schema, row.version, row.name, FileState.MISSING, None, row, detail)
        )
    statuses.sort(key=lambda status: status.version)
    return statuses


def _state(file: SqlFile, row: JournalRow | None, top: int | None) -> tuple[FileState, str]:
    if row is None:
        if top is not None and file.version < top:
            return FileState.OUT_OF_ORDER, f"pending, but version {top} is already applied"
        return FileState.PENDING, ""
    if row.status in _DONE:
        if row.hash == file.hash:
            state = FileState.APPLIED if row.status is RowStatus.APPLIED else FileState.BASELINE
            return state, ""
        when = f" on {row.finished_at:%Y-%m-%d %H:%M}" if row.finished_at else ""
        return FileState.CHANGED, f"changed since it was applied{when}"
    at = f"chunk {row.chunks_done + 1} of {row.chunks_total}"
    if row.status is RowStatus.FAILED:
        reason = (row.error or "").split("\n", 1)[0]
        return FileState.FAILED, f"failed at {at}: {reason}" if reason else f"failed at {at}"
    return FileState.RUNNING, f"interrupted at {at}; the next run resumes there"


def plan(
    files: Mapping[str, Sequence[SqlFile]],
    rows: Mapping[str, Sequence[JournalRow]],
    *,
    to: int | None = None,
    allow_out_of_order: bool = False,
) -> list[Plan]:
    """One plan per schema, in the given order; refuses on drift or any bad pending file."""
    drift: list[str] = []
    bad: list[str] = []
    plans = []
    for schema, schema_files in files.items():
        statuses = assess(schema, schema_files, rows.get(schema, ()))
        by_version = {file.version: file for file in schema_files}
        steps = []
        for status in statuses:
            if status.is_problem and not (
                status.state is FileState.OUT_OF_ORDER and allow_out_of_order
            ):
                drift.append(f"{status.path or f'{schema}/{status.name}'}: {status.detail}")
                continue
            if status.state not in _TO_RUN or (to is not None and status.version > to):
                continue
            try:
                migration = sqlfile.parse(by_version[status.version])
            except BadFile as exc:
                bad.extend(exc.problems)
                continue
            done = status.row.chunks_done if status.row else 0
            problem = resume_problem(migration, status.row)
            if problem:
                drift.append(problem)
            steps.append(Step(migration, done))
        plans.append(Plan(schema, tuple(steps)))
    if bad:
        raise BadFile(bad, hint="Nothing was applied. Fix the files and run again.")
    if drift:
        raise DriftError(
            "the migrations on disk disagree with the journal; nothing was applied",
            problems=drift,
            hint="Restore changed or missing files as they were applied. A pending file older "
            "than an applied one needs --allow-out-of-order.",
        )
    return plans


_TO_RUN = (FileState.PENDING, FileState.OUT_OF_ORDER, FileState.FAILED, FileState.RUNNING)


def resume_problem(migration: Migration, row: JournalRow | None) -> str:
    """Why a failed or interrupted file cannot resume ("" when its done chunks are unchanged)."""
    if row is None or row.chunks_done == 0:
        return ""
    done = row.chunks_done
    if migration.chunk_hashes[:done] == row.chunk_hashes[:done]:
        return ""
    changed = [
        str(index + 1)
        for index in range(done)
        if index >= len(migration.chunks) or migration.chunks[index].hash != row.chunk_hashes[index]
    ]
    return (
        f"{migration.file.path}: chunk(s) {', '.join(changed)} changed after they ran "
        f"({done} of {row.chunks_total} chunks are done); only the chunks not yet run may be "
        "edited before resuming: restore the done ones"
    )
