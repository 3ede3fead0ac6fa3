"""PURE. Files and journal rows in; the state of every file, or a plan to apply, out."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from migrator import sqlfile
from migrator.errors import BadFile, ConfigError, DriftError
from migrator.model import (
    FileState,
    FileStatus,
    JournalRow,
    Migration,
    Plan,
    RepeatableRow,
    RepeatableStatus,
    Reversal,
    RowStatus,
    Scope,
    SqlFile,
    Step,
)

_DONE = (RowStatus.APPLIED, RowStatus.BASELINE)
_TOLD = re.compile(r"(?P<where>\S+:[0-9]+:[0-9]+): chunk [0-9]+ of [0-9]+ failed: (?P<reason>.*)")


def assess(schema: str, files: Sequence[SqlFile], rows: Sequence[JournalRow]) -> list[FileStatus]:
    """The state of every file and every journal row of one schema, in version order."""
    by_version = {row.version: row for row in rows}
    top = max((row.version for row in rows if row.status in _DONE), default=None)
    statuses = []
    for file in files:
        row = by_version.pop(file.version, None)
        state, detail = _state(file, row, top)
        statuses.append(
            FileStatus(
                schema,
                file.version,
                file.name,
                state,
                file.path,
                row,
                detail,
                file.down is not None,
            )
        )
    for row in by_version.values():
        detail = f"journaled as {row.status.value}, but the file is gone"
        statuses.append(
            FileStatus(schema, row.version, row.name, FileState.MISSING, None, row, detail)
        )
    statuses.sort(key=lambda status: status.version)
    return statuses


def _state(file: SqlFile, row: JournalRow | None, top: int | None) -> tuple[FileState, str]:
    if row is not None and row.down_chunks_done is not None:
        at = f"down chunk {row.down_chunks_done + 1} of {len(row.down_chunk_hashes)}"
        reason = _told((row.error or "").split("\n", 1)[0], at)
        changed = "; the file changed since it was applied" if row.hash != file.hash else ""
        return (
            FileState.REVERTING,
            f"rollback unfinished, {reason}{changed}; migrator rollback resumes it",
        )
    if row is None:
        if top is not None and file.version < top:
            return FileState.OUT_OF_ORDER, f"pending, but version {top} is already applied"
        return FileState.PENDING, ""
    if row.status in _DONE:
        if row.hash == file.hash:
            state = FileState.APPLIED if row.status is RowStatus.APPLIED else FileState.BASELINE
            reason = (row.error or "").split("\n", 1)[0]  # a forced run again that failed
            return state, f"a run again with --force failed: {reason}" if reason else ""
        when = f" on {row.finished_at:%Y-%m-%d %H:%M}" if row.finished_at else ""
        return FileState.CHANGED, f"changed since it was applied{when}"
    at = f"chunk {row.chunks_done + 1} of {row.chunks_total}"
    if row.status is RowStatus.FAILED:
        return FileState.FAILED, _told((row.error or "").split("\n", 1)[0], at)
    return FileState.RUNNING, f"interrupted at {at}; the next run resumes there"


def _told(reason: str, at: str) -> str:
    """ "failed at `at` (where): reason", from the error as it was shown ("interrupted at ..."
    without one)."""
    if not reason:
        return f"interrupted at {at}"
    # The error names its place and chunk already: "FILE:LINE:COL: chunk K of N failed: ..."
    told = _TOLD.match(reason)
    if told:
        return f"failed at {at} ({told['where']}): {told['reason']}"
    return f"failed at {at}: {reason}"


def plan(
    files: Mapping[str, Sequence[SqlFile]],
    rows: Mapping[str, Sequence[JournalRow]],
    scope: Scope = Scope(),
    repeatables: Mapping[str, Sequence[SqlFile]] | None = None,
    repeatable_rows: Mapping[str, Mapping[str, RepeatableRow]] | None = None,
) -> list[Plan]:
    """One plan per schema, in the given order, with the repeatable files that are due after
    its steps (none with --to or --only, which may leave what they build on pending); refuses
    on drift or any bad pending file."""
    to, only, force = scope.to, scope.only, scope.force
    chosen_file = select(files, only) if only is not None else None
    drift: list[str] = []
    kinds: set[FileState] = set()
    bad: list[str] = []
    unfinished: list[str] = []
    plans = []
    for schema, schema_files in files.items():
        statuses = assess(schema, schema_files, rows.get(schema, ()))
        unfinished.extend(
            f"{shown_path(status, schema_files)}: {status.detail}"
            for status in statuses
            if status.state is FileState.REVERTING
        )
        by_version = {file.version: file for file in schema_files}
        steps = []
        left = []
        for status in statuses:
            file = by_version.get(status.version)
            chosen = chosen_file is not None and file is chosen_file
            if chosen_file is not None and not chosen:
                if status.state in (FileState.CHANGED, FileState.MISSING):
                    drift.append(f"{shown_path(status, schema_files)}: {status.detail}")
                    kinds.add(status.state)
                elif status.state in _TO_RUN:
                    left.append(status)
                continue
            forced = chosen and status.state in _DONE_STATES
            if forced and not force:
                raise ConfigError(
                    f"{status.path} is already applied",
                    hint="Add --force to run it again (it is recorded in the journal).",
                )
            tolerated = chosen or (
                status.state is FileState.OUT_OF_ORDER and scope.allow_out_of_order
            )
            if status.is_problem and not tolerated:
                drift.append(f"{shown_path(status, schema_files)}: {status.detail}")
                kinds.add(status.state)
                continue
            runnable = status.state in _TO_RUN or forced
            if not runnable or file is None:
                continue
            if to is not None and status.version > to:
                left.append(status)
                continue
            if scope.require_down and file.down is None and not forced:
                down = file.name[: -len(".sql")] + ".down.sql"
                bad.append(f"{file.path}: no down file {down}, and require_down is set")
                continue
            try:
                migration = sqlfile.parse(file)
            except BadFile as exc:
                bad.extend(exc.problems)
                continue
            done = status.row.chunks_done if status.row and not forced else 0
            problem = "" if forced else resume_problem(migration, status.row)
            if problem:
                drift.append(problem)
                kinds.add(FileState.FAILED)
            steps.append(Step(migration, done, forced))
        due: list[Migration] = []
        if to is None and only is None:
            found = {file.name: file for file in (repeatables or {}).get(schema, ())}
            states = assess_repeatables(
                schema, tuple(found.values()), (repeatable_rows or {}).get(schema, {})
            )
            for repeatable in states:
                if repeatable.name not in found or repeatable.state not in _DUE:
                    continue
                try:
                    due.append(sqlfile.parse(found[repeatable.name]))
                except BadFile as exc:
                    bad.extend(exc.problems)
        plans.append(Plan(schema, tuple(steps), tuple(left), tuple(due)))
    if unfinished:
        raise DriftError(
            "a rollback is unfinished; nothing was applied",
            problems=unfinished,
            hint=_HINTS[FileState.REVERTING],
        )
    if bad:
        raise BadFile(bad, hint="Nothing was applied. Fix the files and run again.")
    if drift:
        raise DriftError(
            "the migrations on disk disagree with the journal; nothing was applied",
            problems=drift,
            hint=drift_hint(kinds),
        )
    return plans


_HINTS = {
    FileState.CHANGED: "An applied file was edited: restore it as it was applied, or, if the "
    "edit is intended, record it with migrator repair --reason '...'.",
    FileState.MISSING: "A journaled file is gone: restore it, or, if it was deleted on purpose, "
    "forget its row with migrator repair --reason '...'.",
    FileState.OUT_OF_ORDER: "A pending file is older than an applied one (a merged branch?): "
    "apply it with migrate --allow-out-of-order.",
    FileState.FAILED: "Chunks that already ran were edited: restore them, or keep them as done "
    "with the file as it is now: migrator repair --reason '...'.",
    FileState.REVERTING: "Finish it with migrator rollback SCHEMA, which resumes where it "
    "stopped; or, once you have undone the down chunks that committed, clear it with migrator "
    "repair --restart --reason '...' (the file then counts as applied again).",
}


def drift_hint(kinds: set[FileState]) -> str:
    """What to do about each kind of drift found (FAILED: edited chunks that already ran)."""
    return " ".join(_HINTS[kind] for kind in _HINTS if kind in kinds)


_TO_RUN = (FileState.PENDING, FileState.OUT_OF_ORDER, FileState.FAILED, FileState.RUNNING)
_DONE_STATES = (FileState.APPLIED, FileState.BASELINE, FileState.CHANGED)


def shown_path(status: FileStatus, files: Sequence[SqlFile]) -> str:
    """The file's path as messages show it; for a journaled file that is gone, where it was."""
    if status.path:
        return status.path
    folder = files[0].path.rsplit("/", 1)[0] if files else status.schema
    return f"{folder}/{status.name}"


def select(files: Mapping[str, Sequence[SqlFile]], pattern: str) -> SqlFile:
    """The one file whose version equals `pattern` or whose name contains it; else ConfigError."""
    every = [file for found in files.values() for file in found]
    if pattern.isdigit():
        matches = [file for file in every if file.version == int(pattern)]
    else:
        matches = [file for file in every if pattern.lower() in file.name.lower()]
    if len(matches) == 1:
        return matches[0]
    shown = matches or every
    listing = ", ".join(file.path for file in shown[:20]) or "none"
    more = f" and {len(shown) - 20} more" if len(shown) > 20 else ""
    what = "several migrations match" if matches else "no migration matches"
    raise ConfigError(
        f"--only {pattern}: {what}",
        hint=f"{'Candidates' if matches else 'Migrations'}: {listing}{more}.",
    )


def resume_problem(migration: Migration, row: JournalRow | None) -> str:
    """Why a failed or interrupted file cannot resume ("" when its done chunks are unchanged)."""
    if row is None:
        return ""
    return _edited(migration, row.chunks_done, row.chunk_hashes, row.chunks_total)


def down_resume_problem(down: Migration, row: JournalRow | None) -> str:
    """Why an unfinished rollback cannot resume with this down file ("" when its committed
    chunks are unchanged)."""
    if row is None or row.down_chunks_done is None:
        return ""
    hashes = row.down_chunk_hashes
    return _edited(down, row.down_chunks_done, hashes, len(hashes))


def _edited(migration: Migration, done: int, hashes: Sequence[str], total: int) -> str:
    if done == 0 or migration.chunk_hashes[:done] == tuple(hashes[:done]):
        return ""
    changed = [
        str(index + 1)
        for index in range(done)
        if index >= len(migration.chunks) or migration.chunks[index].hash != hashes[index]
    ]
    return (
        f"{migration.file.path}: chunk{'s' if len(changed) > 1 else ''} {', '.join(changed)} "
        f"changed after {'they' if len(changed) > 1 else 'it'} ran ({done} of "
        f"{total} chunks {'are' if done > 1 else 'is'} done); only the chunks not "
        "yet run may be edited before resuming: restore the done ones"
    )


def diff(applied: str, current: str, path: str) -> tuple[str, bool]:
    """A unified diff of the applied text against the file, and whether only whitespace differs."""
    text = unified(applied, current, f"{path} (applied)", f"{path} (now)")
    return text.rstrip("\n"), applied.split() == current.split()


def unified(before: str, after: str, before_name: str, after_name: str) -> str:
    """A unified diff of two texts ("" when they are the same)."""
    import difflib

    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=before_name,
        tofile=after_name,
    )
    return "".join(lines)


_REPAIRS = {
    FileState.CHANGED: "accept the edit",
    FileState.FAILED: "clear the failed run",
    FileState.RUNNING: "clear the interrupted run",
    FileState.MISSING: "forget the journal row",
}


def repair_action(status: FileStatus, *, restart: bool = False) -> str:
    """What `repair` does to a journal row ("" when it leaves it alone): a failed or
    interrupted run whose first chunks committed keeps them as done, unless `restart`; an
    unfinished rollback goes on with the down file as it is now, or is cleared with `restart`."""
    if status.state is FileState.REVERTING and status.row:
        done, total = status.row.down_chunks_done or 0, len(status.row.down_chunk_hashes)
        if restart:
            return (
                f"clear the unfinished rollback ({done} of {total} down chunks committed): the "
                "file counts as applied again (undo those chunks first)"
            )
        return (
            f"go on with the down file as it is now, keeping {done} of {total} down chunks as "
            f"done; the next rollback resumes at down chunk {done + 1}"
        )
    action = _REPAIRS.get(status.state, "")
    done = status.row.chunks_done if status.row and status.state in _RESUMABLE else 0
    if not done:
        return action
    total = status.row.chunks_total if status.row else done
    committed = f"chunk 1 of {total}" if done == 1 else f"chunks 1-{done} of {total}"
    if restart:
        return f"{action}: {committed} committed and will run again (undo them first)"
    return (
        f"accept the file as it is now, keeping {committed} as done (they committed); the "
        f"next run resumes at chunk {done + 1}"
    )


def keeps_progress(status: FileStatus, *, restart: bool = False) -> bool:
    """True when `repair` keeps the committed chunks of a failed or interrupted run."""
    return bool(
        status.state in _RESUMABLE
        and status.row
        and status.row.chunks_done
        and status.path
        and not restart
    )


_RESUMABLE = (FileState.FAILED, FileState.RUNNING)


_REVERTIBLE = (FileState.APPLIED, FileState.BASELINE, FileState.REVERTING)


def rollback_schema(rows: Mapping[str, Sequence[JournalRow]]) -> str | None:
    """The one schema whose journal has rows (None when none has); ConfigError when several
    have, naming them."""
    journaled = [schema for schema, found in rows.items() if found]
    if len(journaled) > 1:
        raise ConfigError(
            f"rollback reverts in one schema, and {len(journaled)} have applied files: "
            f"{', '.join(journaled)}",
            hint=f"Name the schema: migrator rollback {journaled[0]}.",
        )
    return journaled[0] if journaled else None


def plan_rollback(
    schema: str,
    files: Sequence[SqlFile],
    rows: Sequence[JournalRow],
    *,
    steps: int | None = None,
    to: int | None = None,
) -> tuple[Reversal, ...]:
    """The journaled files of `schema` to revert, newest first: the newest one, the last
    `steps`, or every one above version `to`; each with its down file read and split.
    Refuses, before anything runs, when one of them has no down file, is not applied (a
    failed or interrupted run), changed or is gone, or when a rollback left unfinished is not
    the first to go on."""
    statuses = [s for s in reversed(assess(schema, files, rows)) if s.row is not None]
    chosen = [s for s in statuses if s.version > to] if to is not None else statuses[: steps or 1]
    unfinished = [s for s in statuses if s.state is FileState.REVERTING]
    # Resumed with --steps N, a rollback that stopped after reverting some files would revert
    # N more than the run that stopped was asked to: finish the file first, then go on.
    if unfinished and (not chosen or chosen[0] is not unfinished[0] or (steps or 1) > 1):
        where = shown_path(unfinished[0], files)
        raise ConfigError(
            f"the rollback of {where} is unfinished ({unfinished[0].detail}); nothing was reverted",
            hint=f"Finish it first with migrator rollback {schema} (without --steps), then "
            "revert more; --to VERSION goes on down to a version.",
        )
    by_version = {file.version: file for file in files}
    bad: list[str] = []
    drift: list[str] = []
    kinds: set[FileState] = set()
    reversals = []
    for status in chosen:
        file = by_version.get(status.version)
        where = shown_path(status, files)
        if status.state in (FileState.CHANGED, FileState.MISSING):
            drift.append(f"{where}: {status.detail}")
            kinds.add(status.state)
            continue
        if status.state not in _REVERTIBLE or file is None or status.row is None:
            bad.append(
                f"{where}: {status.detail}: only an applied file can be reverted; finish it "
                "with migrator migrate, or clear the run with migrator repair"
            )
            continue
        if status.state is FileState.REVERTING and status.row.hash != file.hash:
            drift.append(f"{where}: changed since it was applied, while its rollback is unfinished")
            kinds.add(FileState.CHANGED)
            continue
        if file.down is None:
            expected = file.name[: -len(".sql")] + ".down.sql"
            bad.append(f"{where}: no down file {expected} beside it")
            continue
        try:
            down = sqlfile.parse(file.down)
        except BadFile as exc:
            bad.extend(exc.problems)
            continue
        problem = down_resume_problem(down, status.row)
        if problem:
            drift.append(problem)
            kinds.add(FileState.REVERTING)
        row = status.row
        note = ""
        if row.down_hash is None and row.down_chunks_done is None:
            note = "no down file was journaled when it was applied"
        elif row.down_hash not in (None, file.down.hash):
            note = "its down file changed since it was applied"
        reversals.append(Reversal(file, row, down, row.down_chunks_done or 0, note))
    if bad:
        raise BadFile(bad, hint="Nothing was reverted. Fix what is listed and run again.")
    if drift:
        raise DriftError(
            "the files to revert disagree with the journal; nothing was reverted",
            problems=drift,
            hint=drift_hint(kinds - {FileState.REVERTING})
            or "Restore the down chunks that already ran, or go on with the down file as it is "
            "now: migrator repair --reason '...'.",
        )
    return tuple(reversals)


_DUE = (FileState.PENDING, FileState.DUE, FileState.FAILED, FileState.RUNNING)


def assess_repeatables(
    schema: str, files: Sequence[SqlFile], rows: Mapping[str, RepeatableRow]
) -> list[RepeatableStatus]:
    """The state of every repeatable file and row of one schema, by name."""
    left = dict(rows)
    statuses = []
    for file in files:
        row = left.pop(file.name, None)
        state, detail = _repeatable_state(file, row)
        statuses.append(RepeatableStatus(schema, file.name, state, file.path, row, detail))
    for row in left.values():
        detail = "the file is gone; what it made stays (forget the row: migrator repair)"
        statuses.append(RepeatableStatus(schema, row.name, FileState.MISSING, None, row, detail))
    statuses.sort(key=lambda status: status.name)
    return statuses


def _repeatable_state(file: SqlFile, row: RepeatableRow | None) -> tuple[FileState, str]:
    if row is None:
        return FileState.PENDING, "never applied"
    if row.status == "failed":
        reason = (row.error or "").split("\n", 1)[0]
        return FileState.FAILED, f"failed: {reason}; the next migrate runs it again"
    if row.status == "running":
        return FileState.RUNNING, "interrupted; the next migrate runs it again"
    if row.status == "due":
        return FileState.DUE, "a rollback ran since it was applied: the next migrate runs it"
    if row.hash != file.hash:
        return FileState.DUE, "changed since it was applied: the next migrate runs it"
    return FileState.APPLIED, ""
