"""The command layer and public Python API: one function per command, each taking the settings
(a Settings object, or its fields as keyword arguments) and a reporter, returning a result."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from migrator.errors import BadFile, Cancelled, ConfigError, DriftError, MigrationFailed
from migrator.model import (
    Adopted,
    AdoptResult,
    BaselineResult,
    ConfigResult,
    Drift,
    DumpResult,
    FileOutcome,
    FileState,
    FileStatus,
    FleetResult,
    ImportedFile,
    ImportResult,
    LintResult,
    MigrateResult,
    Migration,
    NewResult,
    Plan,
    Repair,
    RepairResult,
    Reported,
    Reporter,
    ResetResult,
    Reversal,
    RollbackResult,
    Scope,
    SeedPlanEntry,
    SeedResult,
    SettingRow,
    SilentReporter,
    SqlFile,
    StatusResult,
    TxMode,
    ValidateResult,
    VerifyResult,
)

if TYPE_CHECKING:
    from pathlib import Path

    from migrator import importer
    from migrator.db import Connection
    from migrator.drizzle import DrizzleRow
    from migrator.journal import Journal
    from migrator.settings import Settings

Files = Mapping[str, Sequence[SqlFile]]


def migrate(
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    select: Sequence[str] = (),
    to: int | None = None,
    only: str | None = None,
    force: bool = False,
    allow_out_of_order: bool = False,
    dry_run: bool = False,
    confirm: str | None = None,
    tenant: str | None = None,
    lint: bool = False,
    **values: Any,
) -> MigrateResult:
    """Apply every pending migration of the selected schemas (all by default), resuming failed
    ones; MigrationFailed carries what this run applied before the failure. `dry_run` plans
    and changes nothing; `confirm` names the database in production; `tenant` applies the
    tenant template folder to that schema instead."""
    from migrator import db, engine

    settings, reporter = _setup(settings, reporter, values)
    if force and only is None:
        raise ConfigError("--force goes with --only: name the migration to run again")
    scope = Scope(to, only, force, allow_out_of_order, settings.require_down)
    files, repeatables = _project(settings, select, tenant)
    unlisted = _warn_unlisted(settings, reporter, files)
    if not dry_run:
        _writing(settings)
    with _session(settings, reporter) as conn:
        target = _target(conn)
        started = time.monotonic()
        if dry_run:
            journals = engine.read_journals(conn, files, settings.journal_table)
            rows = engine.read_repeatables(conn, repeatables, settings.journal_table)
            plans = engine.plan(files, journals, scope, repeatables, rows)
            if lint or settings.lint_on_migrate:
                _lint_before(settings, reporter, plans, files, repeatables)
            return _migrated(
                target, files, plans, [], unlisted, 0, dry_run=True, repeatables=repeatables
            )

        planned: list[Plan] = []  # what the run is about to apply, for a failure's `pending`

        def check(plans: list[Plan]) -> None:
            nonlocal started
            planned.extend(plans)
            if lint or settings.lint_on_migrate:  # before the confirmation: nothing to confirm
                _lint_before(settings, reporter, plans, files, repeatables)
            preview = _migrated("", files, plans, [], (), 0, dry_run=True)
            _confirm(settings, conn, reporter, confirm, preview)
            started = time.monotonic()  # the total leaves out the time at the prompt

        # A tenant schema has a lock of its own: the tenants of a database migrate in parallel.
        key = db.tenant_lock_key(tenant) if tenant else db.LOCK_KEY
        try:
            plans, outcomes = engine.migrate(
                conn, files, settings, scope, reporter, check, repeatables, key
            )
        except MigrationFailed as error:
            error.pending = _migrated(
                target, files, planned, error.applied, (), 0, repeatables=repeatables
            ).pending
            raise
    took = _ms_since(started)
    if outcomes and settings.dump_after_migrate and settings.env == "development" and not tenant:
        written = dump(settings, reporter=reporter)  # every schema: reviews see all it made
        reporter.info(f"wrote {written.path} (dump_after_migrate)")
    return _migrated(target, files, plans, outcomes, unlisted, took, repeatables=repeatables)


def rollback(
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    schema: str | None = None,
    steps: int | None = None,
    to: int | None = None,
    dry_run: bool = False,
    confirm: str | None = None,
    **values: Any,
) -> RollbackResult:
    """Revert the newest applied file of `schema` (of the one schema with applied files when
    not given), or the last `steps`, or every one above version `to`, with their down files,
    newest first; each file reverted is pending again. MigrationFailed carries in `reverted`
    what was reverted before the failure; the next rollback resumes at the failed chunk."""
    from migrator import revert

    settings, reporter = _setup(settings, reporter, values)
    if steps is not None and to is not None:
        raise ConfigError("--steps and --to go alone: give one of them")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps {steps}: give 1 or more")
    if to is not None and to < 0:
        raise ConfigError(f"--to {to}: give a version, 0 or more (0 reverts every file)")
    files = _files(settings, ())  # every schema: a down file must leave the others' journals be
    if schema is not None:
        from migrator import discovery

        discovery.select_schemas(list(files), (schema,))  # ConfigError: no such schema folder
    if not dry_run:
        _writing(settings)
    with _session(settings, reporter) as conn:
        target = _target(conn)
        started = time.monotonic()
        if dry_run:
            chosen, _, plan = revert.plan(conn, files, settings.journal_table, steps, to, schema)
            return RollbackResult(target, chosen, (), plan, 0, dry_run=True)

        def check(chosen: str, plan: tuple[Reversal, ...]) -> None:
            nonlocal started
            preview = RollbackResult("", chosen, (), plan, 0, dry_run=True)
            _confirm(settings, conn, reporter, confirm, preview)
            started = time.monotonic()  # the total leaves out the time at the prompt

        chosen, plan, outcomes = revert.rollback(
            conn, files, settings, reporter, schema=schema, steps=steps, to=to, confirm=check
        )
    return RollbackResult(target, chosen, tuple(outcomes), plan, _ms_since(started))


def status(
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    select: Sequence[str] = (),
    tenant: str | None = None,
    **values: Any,
) -> StatusResult:
    """Every migration file and journal row of the selected schemas (or of a `tenant` schema)
    with its state, the drift diffs, and (with no schema selected) every seed process; reads,
    never locks or writes."""
    from migrator import seed_journal, seeds

    settings, reporter = _setup(settings, reporter, values)
    files, repeatables = _project(settings, select, tenant)
    select = select or ((tenant,) if tenant else ())  # a tenant's status leaves out the seeds
    seed_files = [] if select else seeds.discover(settings.seeds_dir)
    with _session(settings, reporter) as conn:
        statuses = _assess(conn, files, settings.journal_table)
        statuses += _unlisted_statuses(settings, files)
        drift = _drift(conn, settings, statuses, files)
        repeated = _assess_repeatables(conn, repeatables, settings.journal_table)
        seed_rows = {} if select else seed_journal.read(conn, settings.seeds_table) or {}
        seed_states = seeds.assess(seed_files, seed_rows)
        return StatusResult(
            _target(conn), tuple(statuses), tuple(seed_states), tuple(drift), tuple(repeated)
        )


def validate(
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    select: Sequence[str] = (),
    tenant: str | None = None,
    **values: Any,
) -> ValidateResult:
    """Every file parses and the applied ones match the journal (of a `tenant` schema: the
    template's files); BadFile or DriftError (after reporting each diff) otherwise."""
    from migrator import planner, sqlfile

    settings, reporter = _setup(settings, reporter, values)
    files, repeatables = _project(settings, select, tenant)
    unlisted = _warn_unlisted(settings, reporter, files)
    problems: list[str] = []
    parsed: dict[str, Migration] = {}
    downs: dict[str, Migration] = {}  # by the up file's path
    for file in (file for found in repeatables.values() for file in found):
        try:  # checked, never drift: a changed repeatable file is due, not wrong
            sqlfile.parse(file)
        except BadFile as exc:
            problems.extend(exc.problems)
    for file in (file for found in files.values() for file in found):
        try:
            parsed[file.path] = sqlfile.parse(file)
        except BadFile as exc:
            problems.extend(exc.problems)
        try:
            if file.down is not None:
                downs[file.path] = sqlfile.parse(file.down)
        except BadFile as exc:
            problems.extend(exc.problems)
    if problems:
        raise BadFile(problems)
    with _session(settings, reporter) as conn:
        statuses = _assess(conn, files, settings.journal_table)
        for drift in _drift(conn, settings, statuses, files):
            reporter.drift(drift)
    drifted = [s for s in statuses if s.is_problem]
    found = [f"{planner.shown_path(s, files.get(s.schema, ()))}: {s.detail}" for s in drifted]
    kinds = {s.state for s in drifted}
    # A failed or interrupted file whose done chunks were edited cannot resume: drift too.
    edited = [
        problem
        for s in statuses
        if s.state in (FileState.FAILED, FileState.RUNNING) and s.path in parsed
        if (problem := planner.resume_problem(parsed[s.path], s.row))
    ]
    if edited:
        found.extend(edited)
        kinds.add(FileState.FAILED)
    # So does an unfinished rollback whose committed down chunks were edited.
    found.extend(
        problem
        for s in statuses
        if s.state is FileState.REVERTING and s.path in downs
        if (problem := planner.down_resume_problem(downs[s.path], s.row))
    )
    if found:
        raise DriftError(
            "the migrations on disk disagree with the journal",
            problems=found,
            hint=planner.drift_hint(kinds),
        )
    return ValidateResult(len(statuses) + sum(map(len, repeatables.values())), unlisted)


def seed(
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    only: Sequence[str] = (),
    clean: bool = False,
    keep_going: bool = False,
    dry_run: bool = False,
    confirm: str | None = None,
    **values: Any,
) -> SeedResult:
    """Run the seed processes that are due (or just `only`, after their clean() with `clean`);
    SeedFailed after a failure, with FAIL recorded."""
    from migrator import seed_journal, seeds

    settings, reporter = _setup(settings, reporter, values)
    processes, hooks = seeds.load(seeds.discover(settings.seeds_dir), settings.seeds_dir)
    choice = seeds.Choice(_names(only), clean, keep_going)
    seeds.check_only(processes, choice.only)
    if not dry_run:
        _writing(settings)
    with _session(settings, reporter) as conn:
        target = _target(conn)
        if dry_run:
            rows = seed_journal.read(conn, settings.seeds_table) or {}
            plan = seeds.describe_plan(*seeds.plan(processes, rows, choice))
            return SeedResult(target, (), plan, dry_run=True)

        def check(plan: tuple[SeedPlanEntry, ...]) -> None:
            _confirm(settings, conn, reporter, confirm, SeedResult("", (), plan, dry_run=True))

        outcomes = seeds.seed(conn, processes, hooks, settings, choice, reporter, check)
        return SeedResult(target, tuple(outcomes))


def repair(
    settings: Settings | None = None,
    *,
    reason: str,
    reporter: Reporter | None = None,
    select: Sequence[str] = (),
    yes: bool = False,
    confirm: str | None = None,
    restart: bool = False,
    **values: Any,
) -> RepairResult:
    """Accept intended edits of applied files, settle failed or interrupted runs (their
    committed chunks kept as done, with the file as it is now; cleared entirely if `restart`),
    forget rows whose file is gone (seed processes' too), noting who, when and `reason`; asks
    first unless `yes`."""
    from migrator import db, planner, seed_journal
    from migrator.discovery import display
    from migrator.repeatable_journal import RepeatableJournal

    settings, reporter = _setup(settings, reporter, values)
    if not reason.strip():
        raise ConfigError("repair needs --reason: say why; it is kept in the journal")
    _writing(settings)
    files, repeatables = _project(settings, select)
    with (
        _session(settings, reporter) as conn,
        db.advisory_lock(conn, settings.lock_wait, reporter.lock_waiting),
    ):
        statuses = _assess(conn, files, settings.journal_table)
        gone_repeatables = [
            status
            for status in _assess_repeatables(conn, repeatables, settings.journal_table)
            if status.state is FileState.MISSING
        ]
        found = [
            (s, action) for s in statuses if (action := planner.repair_action(s, restart=restart))
        ]
        for drift in _drift(conn, settings, [status for status, _ in found], files):
            reporter.drift(drift)
        gone = [] if select else _gone_seeds(conn, settings)
        repairs = tuple(
            Repair(
                s.schema,
                s.version,
                planner.shown_path(s, files.get(s.schema, ())),
                action,
                s.detail,
            )
            for s, action in found
        )
        repairs += tuple(
            Repair(
                s.schema, 0, f"{display(settings.sql_dir / s.schema)}/{s.name}", FORGET, s.detail
            )
            for s in gone_repeatables
        )
        repairs += tuple(Repair("", 0, path, FORGET_SEED, "its file is gone") for path, _ in gone)
        if repairs:
            reporter.review([f"{r.action}: {r.path} ({r.detail})" for r in repairs])
            _confirm(settings, conn, reporter, confirm)
            if not (yes or settings.env == "production"):
                _agreed(reporter, "Apply these repairs? [y/N]")
            _repair(conn, files, found, settings.journal_table, reason, restart)
            with conn.transaction():
                for _, name in gone:
                    seed_journal.forget(conn, settings.seeds_table, name)
                for status in gone_repeatables:
                    table = RepeatableJournal(status.schema, settings.journal_table)
                    table.forget(conn, status.name)
    return RepairResult(repairs)


def baseline(
    settings: Settings | None = None,
    *,
    schema: str,
    version: int,
    reporter: Reporter | None = None,
    confirm: str | None = None,
    **values: Any,
) -> BaselineResult:
    """Journal every file of `schema` up to `version` that has no journal row as `baseline`,
    without running it."""
    from migrator import db
    from migrator.journal import Journal

    settings, reporter = _setup(settings, reporter, values)
    _writing(settings)
    files = _files(settings, [schema])[schema]
    journal = Journal(schema, settings.journal_table)
    with (
        _session(settings, reporter) as conn,
        db.advisory_lock(conn, settings.lock_wait, reporter.lock_waiting),
    ):
        rows = journal.read(conn) or []
        _no_unfinished_rollback(rows, schema, "baseline")
        known = {row.version for row in rows}
        chosen = [file for file in files if file.version <= version and file.version not in known]
        if chosen:
            _confirm(settings, conn, reporter, confirm, [f"  baseline {f.path}" for f in chosen])
            _baseline(conn, journal, chosen, {})
    return BaselineResult(schema, version, tuple(file.path for file in chosen))


def adopt(
    settings: Settings | None = None,
    *,
    tool: str = "drizzle",
    schema: str = "public",
    table: str | None = None,
    reporter: Reporter | None = None,
    dry_run: bool = False,
    confirm: str | None = None,
    **values: Any,
) -> AdoptResult:
    """Journal as `baseline` the files another runner recorded as applied in its history
    `table` (the tool's default when None), without running them. Drizzle's rows match by
    hash, else by the journal's `when`, and one that matches no file is DriftError; the
    other tools' entries match the files `import` wrote, by version, and failed, rolled-back
    or dirty entries are DriftError; entries without a file and checksums that differ are
    reported. Nothing is changed when anything is refused."""
    from migrator import db, importer
    from migrator.journal import Journal

    settings, reporter = _setup(settings, reporter, values)
    if tool not in importer.TABLES:
        raise ConfigError(
            f"cannot adopt from {tool!r}", hint=f"Supported: {', '.join(importer.TABLES)}."
        )
    table = importer.TABLES[tool] if table is None else table
    source = _qualified(table)
    if tool != "drizzle" and not (settings.sql_dir / schema).is_dir():
        raise ConfigError(
            f"no schema folder {settings.sql_dir / schema}: nothing to adopt",
            hint=f"Write {importer.TOOL_NAMES[tool]}'s migrations there first: migrator "
            f"import {tool} SOURCE --schema {schema}.",
        )
    files = _files(settings, [schema])[schema]
    if not dry_run:
        _writing(settings)
    with _session(settings, reporter) as conn, ExitStack() as held:
        if not dry_run:  # a dry run takes no lock, like every other
            held.enter_context(db.advisory_lock(conn, settings.lock_wait, reporter.lock_waiting))
        if tool == "drizzle":
            matched, drizzled = _adoption(conn, settings, reporter, schema, files, source)
            chosen: list[tuple[SqlFile, str, int | None]] = [
                (file, f"id {row.id}", row.id) for file, row in drizzled
            ]
            notes = {file.path: _adoption_note(file, row, table) for file, row in drizzled}
            without: tuple[str, ...] = ()
            differs: tuple[str, ...] = ()
            runs: dict[str, str | None] = {}
        else:
            matched, chosen, without, differs, notes, runs = _tool_adoption(
                conn, settings, reporter, tool, schema, files, source
            )
        chosen, reverted = _not_reverted(conn, settings, reporter, schema, chosen)
        repeatables = _flyway_repeatables(conn, settings, reporter, schema, runs) if runs else []
        every = [(file, entry) for file, entry, _ in chosen] + repeatables
        if every and not dry_run:
            lines = [f"adopt {file.path} ({table} {entry})" for file, entry in every]
            _confirm(settings, conn, reporter, confirm, lines)
            with conn.transaction():
                journal = Journal(schema, settings.journal_table)
                _baseline(conn, journal, [f for f, _, _ in chosen], notes)
                if repeatables:
                    _adopt_repeatables(conn, settings, schema, repeatables, table)
    adopted = tuple(Adopted(file.path, id_, entry) for file, entry, id_ in chosen) + tuple(
        Adopted(file.path, None, entry) for file, entry in repeatables
    )
    return AdoptResult(
        schema,
        table,
        adopted,
        matched - len(chosen) - len(reverted),
        dry_run,
        tool,
        without,
        differs,
        reverted,
    )


def _flyway_repeatables(
    conn: Connection,
    settings: Settings,
    reporter: Reporter,
    schema: str,
    runs: Mapping[str, str | None],
) -> list[tuple[SqlFile, str]]:
    """The schema's repeatable files whose newest Flyway run (`runs`: its checksum by
    description) recorded them as they are now and that have no row of migrator's yet;
    those changed since are left due (Flyway would run them again too), and said so."""
    from migrator import discovery, importer
    from migrator.repeatable_journal import RepeatableJournal

    files = _project(settings, [schema])[1].get(schema, ())
    if not files:
        return []
    rows = RepeatableJournal(schema, settings.journal_table).read(conn) or {}
    chosen = []
    for file in files:
        recorded = runs.get(importer.repeatable_key(file.name))
        if file.name in rows or recorded is None:
            continue  # migrator's own row, or Flyway never ran it: migrate decides
        data = discovery.read_bytes(str(settings.sql_dir / schema / file.name))
        original = importer.unsplit(data.decode("utf-8")).encode("utf-8")
        if importer.flyway_agrees(data, recorded) or importer.flyway_agrees(original, recorded):
            chosen.append((file, f"repeatable {importer.repeatable_key(file.name)}"))
        else:
            reporter.notice(
                f"warning: {file.path} changed since Flyway last ran it (checksum {recorded}): "
                "left due, migrate applies it"
            )
    return chosen


def _adopt_repeatables(
    conn: Connection,
    settings: Settings,
    schema: str,
    files: Sequence[tuple[SqlFile, str]],
    table: str,
) -> None:
    from migrator.repeatable_journal import RepeatableJournal

    journal = RepeatableJournal(schema, settings.journal_table)
    journal.ensure(conn)
    for file, entry in files:
        journal.adopt(conn, file, f"adopted from Flyway ({table} {entry})")


def _not_reverted(
    conn: Connection,
    settings: Settings,
    reporter: Reporter,
    schema: str,
    chosen: list[tuple[SqlFile, str, int | None]],
) -> tuple[list[tuple[SqlFile, str, int | None]], tuple[str, ...]]:
    """The files to adopt but those `rollback` reverted (the other tool still lists them:
    adopting them again would journal objects that are gone), which are reported."""
    from migrator.journal import Journal

    reverted = Journal(schema, settings.journal_table).reverted(conn) if chosen else {}
    kept = [item for item in chosen if item[0].version not in reverted]
    skipped = tuple(file.path for file, _, _ in chosen if file.version in reverted)
    for file, _, _ in chosen:
        if file.version in reverted:
            reporter.notice(
                f"warning: {file.path} was reverted by migrator rollback at "
                f"{reverted[file.version]}: not adopted again (migrate applies it)"
            )
    return kept, skipped


def _tool_adoption(
    conn: Connection,
    settings: Settings,
    reporter: Reporter,
    tool: str,
    schema: str,
    files: Sequence[SqlFile],
    source: tuple[str, str],
) -> tuple[
    int,
    list[tuple[SqlFile, str, int | None]],
    tuple[str, ...],
    tuple[str, ...],
    dict[str, str],
    dict[str, str | None],
]:
    """How many recorded migrations match a file, the matched files without a journal row
    (with the entry's label), the entries without a file, the files whose checksum differs,
    the journal notes, and (Flyway) each repeatable's newest run's checksum by description;
    DriftError when an entry failed, was rolled back or is dirty."""
    from pathlib import Path

    from migrator import discovery, histories, importer
    from migrator.journal import Journal

    where = ".".join(source)
    versions: list[object] = [file.version for file in files]
    keyed = [(file, importer.file_key(tool, file.name, file.version)) for file in files]
    if tool == "flyway":
        versions = [importer.flyway_version(key) for _, key in keyed]
    entries = histories.read(conn, tool, *source, versions)
    if entries is None:
        raise ConfigError(
            f"no table {where} in database {conn.info.dbname}: nothing to adopt",
            hint=f"Name the table {importer.TOOL_NAMES[tool]} wrote with --table SCHEMA.TABLE.",
        )
    refused = [entry for entry in entries if entry.state != "applied"]
    if refused:
        raise DriftError(
            f"{len(refused)} migration{'s' if len(refused) > 1 else ''} in {where} "
            f"{'are' if len(refused) > 1 else 'is'} not cleanly applied; nothing was adopted",
            problems=[f"{entry.label}: {entry.state}" for entry in refused],
            hint=_REFUSED_HINTS[tool],
        )
    runs = {entry.key: entry.checksum for entry in entries if entry.repeatable}
    entries = [entry for entry in entries if not entry.repeatable]
    agrees = {"prisma": importer.prisma_agrees, "flyway": importer.flyway_agrees}.get(tool)
    by_name = {file.name: file for file in files}
    raw = [
        (file.name, key, discovery.read_bytes(str(settings.sql_dir / schema / file.name)))
        if agrees is not None and Path(settings.sql_dir / schema / file.name).is_file()
        else (file.name, key, file.text.encode("utf-8"))
        for file, key in keyed
    ]
    found = importer.match(entries, raw, agrees)
    for entry in found.without_file:
        reporter.notice(f"warning: {where} records {entry.label}, but no file of {schema} has it")
    for name, entry in found.mismatched:
        reporter.notice(
            f"warning: {by_name[name].path} differs from what {importer.TOOL_NAMES[tool]} ran "
            f"({entry.label}: checksum {entry.checksum}); adopted as the file is now"
        )
    journal = Journal(schema, settings.journal_table)
    journaled = journal.read(conn, brief=True) or []
    _no_unfinished_rollback(journaled, schema, "adopt")
    known = {row.version for row in journaled}
    chosen: list[tuple[SqlFile, str, int | None]] = [
        (by_name[name], entry.label, None)
        for name, entry in found.matched
        if by_name[name].version not in known
    ]
    differs = {name for name, _ in found.mismatched}
    notes = {
        by_name[name].path: f"adopted from {importer.TOOL_NAMES[tool]} ({where} {entry.label}"
        + ("; its checksum differs)" if name in differs else ")")
        for name, entry in found.matched
    }
    return (
        len(found.matched),
        chosen,
        tuple(entry.label for entry in found.without_file),
        tuple(by_name[name].path for name, _ in found.mismatched),
        notes,
        runs,
    )


_REFUSED_HINTS = {
    "prisma": "A failed migration may be half applied: undo what it did, then prisma migrate "
    "resolve --rolled-back NAME (and apply it again with prisma migrate deploy), or mark it "
    "applied with prisma migrate resolve --applied NAME once it is; a rolled-back one is not "
    "applied: apply it with prisma migrate deploy. Then adopt again.",
    "golang-migrate": "A dirty version may be half applied: finish or undo it by hand, then "
    "migrate force VERSION, and adopt again.",
    "flyway": "A failed migration may be half applied: undo what it did, run flyway repair, "
    "and adopt again.",
    "dbmate": "Fix the entries, and adopt again.",
    "goose": "Fix the entries, and adopt again.",
    "diesel": "Fix the entries, and adopt again.",
}


def import_(
    settings: Settings | None = None,
    *,
    kind: str,
    source: str | os.PathLike[str],
    schema: str = "public",
    split: bool = False,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    **values: Any,
) -> ImportResult:
    """Write the migrations of another runner's folder into the schema folder as migrator
    files (statements split with `split`); files the tool would not run, or runs by
    accident, are reported and left out. ConfigError, writing nothing, when a file to write
    clashes with one already there."""
    from pathlib import Path

    from migrator import discovery, importer

    settings, reporter = _setup(settings, reporter, values)
    if kind not in importer.KINDS:
        raise ConfigError(
            f"cannot import from {kind!r}", hint=f"Supported: {', '.join(importer.KINDS)}."
        )
    folder = Path(source)
    if kind in ("prisma", "diesel") and _holds_migrations(folder / "migrations", kind):
        folder = folder / "migrations"  # prisma/ given for prisma/migrations, a crate's root
    _apart(folder, settings.sql_dir)
    source_files, unreadable = discovery.source_files(folder)
    found = importer.plan(kind, source_files, split_statements=split)
    if not found.migrations and not found.reported:
        raise ConfigError(
            f"no {importer.TOOL_NAMES[kind]} migrations in {discovery.display(folder)}",
            hint="Give the folder the tool reads its migrations from.",
        )
    target = settings.sql_dir / schema
    written = _import_targets(settings, schema, found.migrations)
    _warn_upper_case(reporter, schema)
    files = tuple(
        ImportedFile(
            discovery.display(target / item.name),
            f"{discovery.display(folder)}/{item.source}",
            discovery.display(target / item.down_name) if item.down is not None else "",
            unchanged,
        )
        for item, unchanged in written
    )
    if not dry_run:
        _write_imported(target, [item for item, unchanged in written if not unchanged])
    prefix = discovery.display(folder)
    return ImportResult(
        kind,
        prefix,
        schema,
        files,
        tuple(Reported(f"{prefix}/{r.path}", r.reason) for r in (*unreadable, *found.reported)),
        tuple(Reported(f"{prefix}/{r.path}", r.reason) for r in found.warnings),
        dry_run,
    )


def _apart(folder: Path, sql_dir: Path) -> None:
    """ConfigError when the source folder is migrator's migrations folder, in it, or holds
    it: the files written would be read as the source's, and the source's as migrator's."""
    from migrator import discovery

    source, ours = folder.resolve(), sql_dir.resolve()
    if source == ours or ours in source.parents or source in ours.parents:
        raise ConfigError(
            f"{discovery.display(folder)} and the migrations folder "
            f"{discovery.display(sql_dir)} overlap: nothing was written",
            hint="Move the tool's migrations elsewhere first (e.g. mv sql flyway-sql), or "
            "point --sql-dir at another folder.",
        )


def _holds_migrations(folder: Path, kind: str) -> bool:
    """Whether a folder's sub-folders hold Prisma's migration.sql or Diesel's up.sql."""
    script = "migration.sql" if kind == "prisma" else "up.sql"
    return folder.is_dir() and any((entry / script).is_file() for entry in folder.iterdir())


def _import_targets(
    settings: Settings, schema: str, items: Sequence[importer.Imported]
) -> list[tuple[importer.Imported, bool]]:
    """Each file to write, with whether it is there already with the same bytes; ConfigError
    naming every clash with the folder's files (another file, or another version's name)."""
    from migrator import discovery

    discovery.check_new_schema(schema)
    target = settings.sql_dir / schema
    if target.is_dir() and discovery.is_drizzle(target):
        raise ConfigError(
            f"{discovery.display(target)} is a drizzle-kit folder: import into another schema"
        )
    existing = {entry.name for entry in os.scandir(target)} if target.is_dir() else set()
    versions: dict[int, list[str]] = {}
    for name in sorted(existing):
        parsed = _file_version(name)
        if parsed is not None:
            versions.setdefault(parsed, []).append(name)
    clashes, plan = [], []
    for item in items:
        unchanged = True
        pairs = [(item.name, item.up)] + ([(item.down_name, item.down)] if item.down else [])
        for name, data in pairs:
            if name in existing:
                if discovery.read_bytes(str(target / name)) != data:
                    clashes.append(f"{discovery.display(target / name)}: there already, different")
            else:
                unchanged = False
        if item.down is None and item.down_name in existing and not item.name.startswith("R__"):
            clashes.append(
                f"{discovery.display(target / item.down_name)}: there already, but the source "
                "has no down part for it"
            )
        others = [] if item.name.startswith("R__") else versions.get(item.version, [])
        clashes.extend(
            f"{discovery.display(target / item.name)}: version {item.version} is "
            f"{discovery.display(target / other)} there"
            for other in others
            if other not in (item.name, item.down_name)
        )
        plan.append((item, unchanged))
    if clashes:
        count = (
            f"{len(clashes)} file to import clashes"
            if len(clashes) == 1
            else (f"{len(clashes)} files to import clash")
        )
        raise ConfigError(
            f"{count} with files in {discovery.display(target)}; nothing was written",
            problems=clashes,
            hint="Import into an empty schema folder (--schema NAME), or move those files.",
        )
    return plan


def _file_version(name: str) -> int | None:
    """The version of a migration or down file's name; None for other names."""
    from migrator import sqlfile

    if name.endswith(".down.sql"):
        name = name[: -len(".down.sql")] + ".sql"
    parsed = sqlfile.parse_name(name)
    return parsed[0] if parsed else None


def _write_imported(target: Path, items: Sequence[importer.Imported]) -> None:
    """Write the files, each whole (a temporary name, then renamed), all or none: on a
    failure the ones written are removed again (none was there before)."""
    from pathlib import Path

    from migrator import discovery

    written: list[Path] = []
    try:
        if items:
            target.mkdir(parents=True, exist_ok=True)
        for item in items:
            pairs = [(item.name, item.up)] + ([(item.down_name, item.down)] if item.down else [])
            for name, data in pairs:
                temporary = target / f".{name}.importing"
                try:
                    temporary.write_bytes(data)
                    os.replace(temporary, target / name)
                finally:
                    temporary.unlink(missing_ok=True)
                written.append(target / name)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        where = exc.filename or target
        raise ConfigError(
            f"cannot write {discovery.display(Path(str(where)))}: {exc.strerror or exc}; "
            "nothing was written"
        ) from None


def reset(
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    select: Sequence[str] = (),
    confirm: str | None = None,
    **values: Any,
) -> ResetResult:
    """Drop the selected schemas with everything in them (journals too), then migrate them
    again; Refused outside development, and unless the database's name is confirmed (given
    as `confirm`, or typed) when it is not the embedded server."""
    from migrator import db, engine, guard
    from migrator.repeatable_journal import RepeatableJournal
    from migrator.settings import conninfo as configured

    settings, reporter = _setup(settings, reporter, values)
    guard.check_development(settings.env, "reset")
    _writing(settings)
    files, repeatables = _project(settings, select)
    with _session(settings, reporter) as conn:
        if configured(settings) is not None:  # a server of someone's: say which, and confirm
            lines = [f"drop schema {schema} and everything in it" for schema in files]
            _confirm(settings, conn, reporter, confirm, lines, command="reset")
        with db.advisory_lock(conn, settings.lock_wait, reporter.lock_waiting):
            for schema in files:
                db.drop_schema(conn, schema)
                reporter.info(f"dropped schema {schema}")
            # A CASCADE may have dropped what another schema's repeatable file made.
            for schema in _project(settings, ())[0]:
                if schema not in files:
                    table = RepeatableJournal(schema, settings.journal_table)
                    table.mark_due(conn, f"a reset of {', '.join(files)} ran")
        started = time.monotonic()
        scope = Scope(require_down=settings.require_down)
        plans, outcomes = engine.migrate(
            conn, files, settings, scope, reporter, repeatables=repeatables
        )
        migrated = _migrated(_target(conn), files, plans, outcomes, (), _ms_since(started))
    return ResetResult(tuple(files), migrated)


def new(
    settings: Settings | None = None,
    *,
    schema: str,
    name: str,
    timestamp: bool = False,
    down: bool = False,
    repeatable: bool = False,
    reporter: Reporter | None = None,
    **values: Any,
) -> NewResult:
    """Create the next migration file in a schema folder (made when missing), named by `name`
    slugified to [a-z0-9_] (ConfigError when nothing is left of it), versioned by the UTC time
    (YYYYMMDDHHMMSS) with `timestamp` or when the folder's newest file is; warns when the
    folder's name is not lower case; `down` creates its .down.sql too; `repeatable` creates
    R__<name>.sql instead."""
    from migrator import discovery

    settings, reporter = _setup(settings, reporter, values)
    folder = settings.sql_dir / schema
    files = discovery.load_schema(settings.sql_dir, schema) if folder.is_dir() else ()
    if repeatable and (down or timestamp):
        given = "--down" if down else "--timestamp"
        raise ConfigError(
            f"--repeatable and {given} do not go together: a repeatable file has no version "
            "and no down file (it is applied again whole whenever it changes)"
        )
    path, down_path = discovery.new_file(
        settings.sql_dir, schema, name, files, stamped=timestamp, down=down, repeatable=repeatable
    )
    _warn_upper_case(reporter, schema)
    return NewResult(discovery.display(path), discovery.display(down_path) if down_path else "")


def _warn_upper_case(reporter: Reporter, schema: str) -> None:
    if schema != schema.lower():
        reporter.notice(
            f"warning: schema folder {schema} is not lower case: its migrations run in schema "
            f'"{schema}" (quoted), but PostgreSQL reads an unquoted {schema} in SQL as '
            f"{schema.lower()}, another schema; consider renaming the folder to {schema.lower()}"
        )


def fleet(
    settings: Settings | None = None,
    *,
    command: str = "migrate",
    targets: Sequence[str] = (),
    targets_file: str | os.PathLike[str] | None = None,
    targets_query: str | None = None,
    tenant_schemas: str | None = None,
    parallel: int = 4,
    canary: int = 0,
    keep_going: bool = False,
    shard: str | None = None,
    confirm: str | None = None,
    reporter: Reporter | None = None,
    **values: Any,
) -> FleetResult:
    """Run `command` (migrate, status, validate or seed) on every target, `parallel` at a
    time, each with its own connection and lock: databases (URLs given, or from a targets
    file, or a query's rows) or tenant schemas (a query's rows) of the configured database.
    `canary` targets run first, alone; no new target starts after a failure unless
    `keep_going`; `shard` "I/N" takes a share. In production the fleet is confirmed once, with
    the number of targets. Every target's outcome; nothing raised for a target's failure."""
    from migrator import fleets

    settings, reporter = _setup(settings, reporter, values)
    if command not in fleets.COMMANDS:
        raise ConfigError(
            f"fleet {command}: not a fleet command", hint=f"One of {', '.join(fleets.COMMANDS)}."
        )
    if parallel < 1 or canary < 0:
        raise ConfigError("--parallel takes 1 or more, --canary 0 or more")
    if tenant_schemas is not None and command == "seed":
        raise ConfigError(
            "fleet seed --tenant-schemas: seeds run once per database, not per schema",
            hint="Run migrator seed on the database, or fleet seed over --targets.",
        )
    writes = command in ("migrate", "seed")
    if writes:
        _writing(settings)
    if tenant_schemas is not None:
        _project(settings, (), "-")  # ConfigError now, not per tenant, without a template folder
    chosen = _fleet_targets(
        settings, reporter, targets, targets_file, targets_query, tenant_schemas
    )
    if shard is not None:
        chosen = fleets.shard(chosen, *fleets.parse_shard(shard))
    options = fleets.Options(parallel, canary, keep_going)
    if writes and settings.env == "production" and chosen:
        preview = fleets.run(
            chosen, settings, _FLEET_PREVIEW[command], fleets.Options(parallel), SilentReporter()
        )
        if all(o.state == "done" and not o.left for o in preview.outcomes):
            return fleets.run(chosen, settings, _FLEET_RUNNERS[command], options, reporter)
        lines = [
            f"  {o.target}: {o.left} to run" if o.state == "done" else f"  {o.target}: {o.error}"
            for o in preview.outcomes
        ]
        reporter.review([f"{command} on {len(chosen)} targets:", *lines])
        _confirm_fleet(reporter, confirm, len(chosen))
    return fleets.run(chosen, settings, _FLEET_RUNNERS[command], options, reporter)


def lint(
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    select: Sequence[str] = (),
    every: bool = False,
    paths: Sequence[str | os.PathLike[str]] = (),
    **values: Any,
) -> LintResult:
    """Lint the pending files of the selected schemas (every file, down files too, with
    `every` or when no database is configured; or just `paths`), each chunk parsed by
    PostgreSQL's parser; the findings. Connects only to read the journals of a configured
    database, never starts the embedded one."""
    from migrator import sqlfile
    from migrator.settings import conninfo as configured

    settings, reporter = _setup(settings, reporter, values)
    chosen = _lint_rules(settings)
    found = list({file.path: file for file in map(_read_path, paths)}.values())
    if select or every or not paths:  # schemas named with files: both
        versioned, repeatables = _project(settings, select)
        if every or configured(settings) is None:
            every_file = [f for files in versioned.values() for f in files]
            every_file += [f.down for f in every_file if f.down is not None]
            every_file += [f for files in repeatables.values() for f in files]
        else:
            every_file = _pending_files(settings, reporter, versioned, repeatables)
        named = {file.path for file in found}
        found += [file for file in every_file if file.path not in named]
    problems: list[str] = []
    migrations = []
    for file in found:
        try:
            migrations.append(sqlfile.parse(file))
        except BadFile as exc:
            problems.extend(exc.problems)
    if problems:
        raise BadFile(problems, hint="Fix the files and run lint again.")
    return _linted(migrations, chosen)


def dump(
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    select: Sequence[str] = (),
    out: str | os.PathLike[str] | None = None,
    check: bool = False,
    **values: Any,
) -> DumpResult:
    """Write the schema-only dump of the selected schemas (all by default; migrator's own
    tables left out), the same bytes for the same schema, to `out` (sql/schema.sql); with
    `check`, compare it with the file instead: DriftError (exit 3), with the diff, when the
    file differs from what the database holds."""
    from pathlib import Path

    from migrator import discovery, planner, snapshot

    settings, reporter = _setup(settings, reporter, values)
    schemas = list(_files(settings, select))
    with _session(settings, reporter) as conn:
        program = snapshot.pg_dump(conn.info.server_version // 10000)
        conninfo = _conninfo_of(conn)
        present = _present(conn, schemas)
    excluded = snapshot.excluded_tables(schemas, settings.journal_table, settings.seeds_table)
    text = snapshot.dump(program, conninfo, present, excluded)
    path = Path(out) if out is not None else settings.sql_dir / discovery.SCHEMA_DUMP
    shown = discovery.display(path)
    lines = text.count("\n")
    if check:
        try:
            committed = path.read_text(encoding="utf-8")
        except OSError:
            raise DriftError(
                f"there is no {shown} to check",
                problems=[],
                hint=f"Write it with migrator dump (--out {shown}) and commit it.",
            ) from None
        if committed != text:
            difference = planner.unified(committed, text, f"{shown} (committed)", "the database")
            what = "differs from the database's schema"
            reporter.drift(Drift(shown, difference.rstrip("\n"), False, what))
            raise DriftError(
                f"{shown} differs from the schema the database holds",
                problems=_object_lines(difference, "only in the committed file"),
                hint=f"Regenerate it with migrator dump (--out {shown}) and commit it.",
            )
        return DumpResult(shown, lines, checked=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {shown}: {exc.strerror or exc}") from None
    return DumpResult(shown, lines)


def verify(
    settings: Settings | None = None,
    *,
    reporter: Reporter | None = None,
    select: Sequence[str] = (),
    shadow_url: str | None = None,
    **values: Any,
) -> VerifyResult:
    """Apply every migration file, in order, to a fresh shadow database (on the embedded
    server, or on `shadow_url`'s), dump it and the target's schema, and compare: DriftError
    (exit 3) naming what differs when the target drifted. The shadow database is dropped
    afterwards, whatever happened."""
    import uuid

    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo
    from pydantic import SecretStr

    from migrator import db, embedded, planner, snapshot

    settings, reporter = _setup(settings, reporter, values)
    files = _files(settings, select)
    schemas = list(files)
    with _session(settings, reporter) as conn:
        target_name, target_major = _target(conn), conn.info.server_version // 10000
        target = _conninfo_of(conn)
        present = _present(conn, schemas)
        pending = [
            s.path or s.name
            for s in _assess(conn, files, settings.journal_table)
            if s.state in (FileState.PENDING, FileState.FAILED, FileState.RUNNING)
        ]
    if pending:  # then it differs, but not by drift
        raise DriftError(
            f"{len(pending)} migration files are not applied to {target_name}: verify compares "
            "what all the files make",
            problems=pending[:20],
            hint="Apply them first (migrator migrate), then verify.",
        )
    base = shadow_url or embedded.start(settings.embedded_dir)
    name = f"migrator_shadow_{uuid.uuid4().hex[:12]}"
    try:
        with db.connect(base, wait=0) as admin:
            admin.autocommit = True
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            shadow_major = admin.info.server_version // 10000
    except psycopg.Error as exc:
        raise ConfigError(
            f"cannot make the shadow database on {db.mask(base)}: "
            f"{exc.diag.message_primary or exc}",
            hint="Give --shadow-url a server where this user may CREATE DATABASE (the embedded "
            "server, without --shadow-url).",
        ) from None
    shadow = make_conninfo(base, dbname=name)
    try:
        applying = settings.model_copy(  # the shadow only: no guard, no lint, no dump file
            update={
                "database_url": SecretStr(shadow),
                "env": "development",
                "require_run_mode": False,
                "lint_on_migrate": False,
                "dump_after_migrate": False,
            }
        )
        try:
            migrate(applying, reporter=SilentReporter(), select=select)
        except MigrationFailed as error:
            error.hint = (
                f"{error.hint} " if error.hint else ""
            ) + "verify applies every file to an empty shadow database: they must apply there."
            raise
        program = snapshot.pg_dump(max(target_major, shadow_major))
        excluded = snapshot.excluded_tables(schemas, settings.journal_table, settings.seeds_table)
        with db.connect(shadow, wait=0) as made:
            shadow_present = _present(made, schemas)
            shadow = _conninfo_of(made)
        expected = snapshot.dump(program, shadow, shadow_present, excluded)
        actual = snapshot.dump(program, target, present, excluded)
    finally:  # also after a failure or Ctrl-C: the shadow database never stays
        with db.connect(base, wait=0) as admin:
            admin.autocommit = True
            dropping = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(dropping.format(sql.Identifier(name)))
    if expected != actual:
        difference = planner.unified(expected, actual, "what the files make", "the database")
        what = "differs from what the migration files make"
        reporter.drift(Drift(target_name, difference.rstrip("\n"), False, what))
        raise DriftError(
            "the database's schema differs from what the migration files make",
            problems=_object_lines(difference, "only in what the files make"),
            hint="Something changed the database outside the migrations (a hotfix, an index "
            "made by hand): undo it, or write it into a migration.",
        )
    return VerifyResult(target_name, name, tuple(schemas))


def config(**values: Any) -> ConfigResult:
    """Every setting, its value (the password masked) and where it came from."""
    from migrator import settings

    return ConfigResult(tuple(SettingRow(*row) for row in settings.explain(**values)))


# What the commands share.


def _conninfo_of(conn: Connection) -> str:
    """The session's connection string, password included, for pg_dump: only the settings
    given (an older pg_dump's libpq refuses keywords a newer one adds)."""
    from psycopg.conninfo import make_conninfo

    given = dict(conn.info.get_parameters())
    if conn.info.password:
        given["password"] = conn.info.password
    return make_conninfo("", **given)


def _present(conn: Connection, schemas: Sequence[str]) -> list[str]:
    """Those of the schemas that the database has (pg_dump refuses a pattern matching none)."""
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(schemas),)
    ).fetchall()
    there = {str(row[0]) for row in rows}
    return [schema for schema in schemas if schema in there]


def _object_lines(difference: str, left: str) -> list[str]:
    """The lines of a dump diff on one side only (a trailing comma aside, and without bare
    punctuation), each labelled with its side (`left` for the first)."""
    removed: list[str] = []
    added: list[str] = []
    for line in difference.splitlines():
        if line.startswith(("+++", "---")) or not line.startswith(("+", "-")):
            continue
        body = line[1:].strip().rstrip(",")
        if not body or body.startswith("--") or not any(c.isalnum() for c in body):
            continue
        (added if line.startswith("+") else removed).append(body)
    found = [f"{left}: {body}" for body in removed if body not in added]
    found += [f"only in the database: {body}" for body in added if body not in removed]
    if len(found) > 50:
        found = [*found[:50], f"… and {len(found) - 50} more lines (see the diff)"]
    return found


def _lint_before(
    settings: Settings,
    reporter: Reporter,
    plans: Sequence[Plan],
    files: Files,
    repeatables: Files,
) -> None:
    """Lint the files a migrate is about to run; LintFailed, nothing run, on an error, with
    those files as its `pending`."""
    from migrator.errors import LintFailed

    migrations = [step.migration for plan in plans for step in plan.steps]
    migrations += [migration for plan in plans for migration in plan.repeatables]
    result = _linted(migrations, _lint_rules(settings))
    for f in result.findings:
        place = f"{f.path}:{f.line}:{f.column}"
        reporter.notice(f"{place}: {f.rule} ({f.severity}): {f.message}\n    {f.fix}")
    if result.errors:
        errors = f"{result.errors} error{'' if result.errors == 1 else 's'}"
        refused = LintFailed(
            f"lint: {errors} in the files to apply; nothing was applied",
            hint="Fix them (migrator lint shows the safe way), or quiet a rule for a chunk "
            "with -- migrator: lint-ignore=RULE.",
        )
        left = _migrated("", files, list(plans), [], (), 0, repeatables=repeatables)
        refused.pending = left.pending
        raise refused


def _lint_rules(settings: Settings) -> dict[str, str]:
    """The rules' severities; ConfigError when pglast, which lint needs, is not installed."""
    from migrator import linter

    try:
        import pglast  # noqa: F401
    except ImportError:
        raise ConfigError(
            "lint needs PostgreSQL's parser, pglast, which is not installed",
            hint="pip install 'migrator-sql[lint]'",
        ) from None
    return linter.severities(settings.lint)


def _linted(migrations: Sequence[Migration], chosen: Mapping[str, str]) -> LintResult:
    from migrator import linter

    findings = [finding for m in migrations for finding in linter.lint(m, chosen)]
    return LintResult(tuple(findings), len(migrations))


def _read_path(path: str | os.PathLike[str]) -> SqlFile:
    """A file named on the command line, as a file of the schema its folder names."""
    from pathlib import Path

    from migrator import discovery, sqlfile

    file = Path(path)
    shown = discovery.display(file)
    if file.suffix != ".sql":
        raise ConfigError(f"{shown}: not a .sql file", hint="lint takes .sql files and schemas.")
    try:
        data = discovery.read_bytes(str(file))
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read it ({exc.strerror or exc})") from None
    schema = file.resolve().parent.name
    if sqlfile.parse_name(file.name) is None and not sqlfile.REPEATABLE.fullmatch(file.name):
        text = sqlfile.normalize(data, shown)  # any .sql file: linted as version 0
        return SqlFile(schema, 0, file.name, shown, text, sqlfile.sha256(text))
    return sqlfile.read(schema, file.name, shown, data)


def _pending_files(
    settings: Settings, reporter: Reporter, versioned: Files, repeatables: Files
) -> list[SqlFile]:
    """The files a migrate would run: not applied yet (or failed), and the due repeatables."""
    from migrator import engine, planner

    with _session(settings, reporter) as conn:
        journals = engine.read_journals(conn, versioned, settings.journal_table)
        rows = engine.read_repeatables(conn, repeatables, settings.journal_table)
    due = (FileState.PENDING, FileState.OUT_OF_ORDER, FileState.FAILED, FileState.RUNNING)
    found = []
    for schema, files in versioned.items():
        by_version = {file.version: file for file in files}
        for status in planner.assess(schema, files, journals[schema] or []):
            if status.state in due and status.version in by_version:
                found.append(by_version[status.version])
    for schema, files in repeatables.items():
        by_name = {file.name: file for file in files}
        for repeatable in planner.assess_repeatables(schema, files, rows.get(schema, {})):
            if repeatable.state is not FileState.APPLIED and repeatable.name in by_name:
                found.append(by_name[repeatable.name])
    return found


def _fleet_targets(
    settings: Settings,
    reporter: Reporter,
    given: Sequence[str],
    targets_file: str | os.PathLike[str] | None,
    targets_query: str | None,
    tenant_schemas: str | None,
) -> list[Any]:
    """The fleet's targets, from exactly one of the ways of naming them."""
    from pathlib import Path

    from migrator import fleets
    from migrator.settings import conninfo as configured

    ways = [way for way in (given, targets_file, targets_query, tenant_schemas) if way]
    if len(ways) != 1:
        raise ConfigError(
            "a fleet needs its targets, one way: --targets FILE, --targets-query SQL or "
            "--tenant-schemas SQL"
        )
    if given:
        return fleets.parse_targets("\n".join(_names(given)), os.environ, "targets")
    if targets_file is not None:
        path = Path(targets_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--targets {path}: cannot read it ({exc})") from None
        return fleets.parse_targets(text, os.environ, str(path))
    import psycopg

    query = targets_query or tenant_schemas or ""
    with _session(settings, reporter) as conn:
        try:
            found = conn.execute(query).fetchall()
        except psycopg.Error as exc:
            option = "--tenant-schemas" if tenant_schemas else "--targets-query"
            raise ConfigError(f"{option}: the query failed: {' '.join(str(exc).split())}") from None
        base = configured(settings)
        dsn = base.text if base is not None else conn.info.dsn
    if tenant_schemas:
        return fleets.schema_targets([row[0] if row else None for row in found])
    rows = [str(row[0]) for row in found if row and row[0] is not None]
    return fleets.database_targets(rows, dsn)


def _confirm_fleet(reporter: Reporter, confirm: str | None, count: int) -> None:
    """The number of targets, given (`confirm`, CONFIRM_PROD) or typed; Refused otherwise."""
    from migrator.errors import Refused

    given = confirm if confirm is not None else os.environ.get("CONFIRM_PROD")
    if given is None:
        given = reporter.ask(f"Type the number of targets ({count}) to go ahead")
    if given is None:
        raise Refused(
            f"production: nothing was changed, because nobody confirmed the {count} targets",
            hint=f"Pass --confirm {count} or set CONFIRM_PROD={count} (there is no terminal).",
        )
    if given.strip() != str(count):
        raise Refused(
            f"production: '{given.strip()}' is not the number of targets ({count}); nothing "
            "was changed"
        )


def _fleet_migrate(settings: Settings, target: Any, reporter: Reporter) -> tuple[int, str]:
    from migrator.guard import Confirmed

    result = migrate(settings, reporter=reporter, tenant=target.schema or None, confirm=Confirmed())
    return len(result.pending), f"{len(result.applied)} applied, {len(result.pending)} left"


def _fleet_preview(settings: Settings, target: Any, reporter: Reporter) -> tuple[int, str]:
    result = migrate(settings, reporter=reporter, tenant=target.schema or None, dry_run=True)
    due = sum(len(plan.steps) + len(plan.repeatables) for plan in result.plans)
    return due, ""


def _fleet_status(settings: Settings, target: Any, reporter: Reporter) -> tuple[int, str]:
    result = status(settings, reporter=reporter, tenant=target.schema or None)
    return len(result.open_work), f"{len(result.open_work)} pending, failed or drifted"


def _fleet_validate(settings: Settings, target: Any, reporter: Reporter) -> tuple[int, str]:
    result = validate(settings, reporter=reporter, tenant=target.schema or None)
    return 0, f"{result.files} files match"


def _fleet_seed(settings: Settings, target: Any, reporter: Reporter) -> tuple[int, str]:
    from migrator.guard import Confirmed

    result = seed(settings, reporter=reporter, confirm=Confirmed())
    ran = sum(outcome.action == "ran" for outcome in result.outcomes)
    return 0, f"{ran} process{'' if ran == 1 else 'es'} ran"


def _seed_preview(settings: Settings, target: Any, reporter: Reporter) -> tuple[int, str]:
    return len(seed(settings, reporter=reporter, dry_run=True).plan), ""


_FLEET_RUNNERS = {
    "migrate": _fleet_migrate,
    "status": _fleet_status,
    "validate": _fleet_validate,
    "seed": _fleet_seed,
}
_FLEET_PREVIEW = {"migrate": _fleet_preview, "seed": _seed_preview}


def _setup(
    settings: Settings | None, reporter: Reporter | None, values: dict[str, Any]
) -> tuple[Settings, Reporter]:
    """The one settings object (loaded from `values` when not given) and the reporter."""
    if settings is None:
        from migrator.settings import load

        settings = load(**values)
    elif values:
        raise TypeError(f"settings given twice: a Settings object and {', '.join(values)}")
    return settings, reporter or SilentReporter()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


@contextmanager
def _session(settings: Settings, reporter: Reporter) -> Iterator[Connection]:
    """The command's connection, closed after it: the configured database or, in development
    with none configured, the embedded server; a connection lost midway is ConnectionLost."""
    import psycopg

    from migrator import db, embedded
    from migrator.settings import conninfo as configured

    found = configured(settings)
    if found is not None:
        conninfo = found.text
    elif settings.env != "development":
        raise ConfigError(
            f"no database configured for the {settings.env} environment",
            hint="Set MIGRATOR_DATABASE_URL (or DATABASE_URL, or --database-url).",
        )
    else:
        reporter.notice(
            "No database configured: using the embedded PostgreSQL in "
            f"{settings.embedded_dir}/ (set MIGRATOR_DATABASE_URL to use your own)."
        )
        conninfo = embedded.start(settings.embedded_dir)
    wait = settings.wait_for_db if found else 0
    with db.connect(conninfo, wait=wait, on_wait=reporter.notice) as conn:
        db.relay_messages(conn, reporter.server_message)
        reporter.connected(db.target(conn))
        # The journals are read and written before any file sets its own: no wait is endless.
        db.set_lock_timeout(conn, settings.lock_timeout)
        try:
            yield conn
        except psycopg.Error as error:
            if conn.broken:
                raise db.connection_lost("", error) from error
            if isinstance(error, psycopg.errors.LockNotAvailable):  # chunks' are MigrationFailed
                raise db.journal_locked(conn) from None
            raise


def _target(conn: Connection) -> str:
    from migrator.db import target

    return target(conn)


def _files(settings: Settings, select: Sequence[str]) -> dict[str, tuple[SqlFile, ...]]:
    return _project(settings, select)[0]


def _project(
    settings: Settings, select: Sequence[str], tenant: str | None = None
) -> tuple[dict[str, tuple[SqlFile, ...]], dict[str, tuple[SqlFile, ...]]]:
    """The versioned and the repeatable files of the selected schemas (never the tenant
    template folder); with `tenant`, the template's files, to run in schema `tenant`."""
    from migrator import discovery

    available = discovery.find_schemas(settings.sql_dir, settings.schemas)
    template = settings.tenant_template
    if tenant is not None:
        if template is None or template not in available:
            raise ConfigError(
                f"no tenant template folder {settings.sql_dir}/{template or '<tenant_template>'}",
                hint="Set tenant_template (MIGRATOR_TENANT_TEMPLATE, or in pyproject.toml) to "
                "the folder under sql_dir whose files each tenant schema gets.",
            )
        versioned, repeatables = discovery.load_project(settings.sql_dir, [template])
        return (
            {tenant: discovery.for_schema(versioned[template], tenant)},
            {tenant: discovery.for_schema(repeatables[template], tenant)},
        )
    available = [name for name in available if name != template]
    chosen = discovery.select_schemas(available, _names(select))
    return discovery.load_project(settings.sql_dir, chosen)


def _assess_repeatables(conn: Connection, repeatables: Files, table: str) -> list[Any]:
    """The state of every repeatable file and row of the given schemas."""
    from migrator import planner
    from migrator.repeatable_journal import RepeatableJournal

    return [
        status
        for schema, found in repeatables.items()
        for status in planner.assess_repeatables(
            schema, found, RepeatableJournal(schema, table).read(conn) or {}
        )
    ]


def _names(names: Sequence[str]) -> tuple[str, ...]:
    """A sequence of names; one name given alone is not a sequence of its letters."""
    return (names,) if isinstance(names, str) else tuple(names)


def _unlisted(settings: Settings, files: Files) -> list[tuple[str, str]]:
    """(schema, path) of every .sql file a drizzle-kit journal does not list."""
    from migrator import discovery

    return [
        (schema, path)
        for schema, found in files.items()
        for path in discovery.unlisted(settings.sql_dir, schema, found)
    ]


def _warn_unlisted(settings: Settings, reporter: Reporter, files: Files) -> tuple[str, ...]:
    unlisted = tuple(path for _, path in _unlisted(settings, files))
    for path in unlisted:
        reporter.notice(f"warning: {path} is not in its folder's meta/_journal.json: not applied")
    return unlisted


def _unlisted_statuses(settings: Settings, files: Files) -> list[FileStatus]:
    from migrator import sqlfile

    found = []
    for schema, path in _unlisted(settings, files):
        name = path.rsplit("/", 1)[-1]
        version = (sqlfile.parse_name(name) or (0, ""))[0]
        detail = "not in meta/_journal.json: never applied"
        found.append(FileStatus(schema, version, name, FileState.UNLISTED, path, detail=detail))
    return found


def _assess(conn: Connection, files: Files, table: str) -> list[FileStatus]:
    """The state of every file and journal row of the given schemas."""
    from migrator import planner
    from migrator.journal import Journal

    return [
        status
        for schema, found in files.items()
        for status in planner.assess(schema, found, Journal(schema, table).read(conn) or [])
    ]


def _drift(
    conn: Connection, settings: Settings, statuses: Sequence[FileStatus], files: Files
) -> list[Drift]:
    """Each changed file's diff against the text the journal keeps."""
    from migrator import planner
    from migrator.journal import Journal

    current = {file.path: file.text for found in files.values() for file in found}
    found = []
    for status in statuses:
        if status.state is FileState.CHANGED and status.path:
            journal = Journal(status.schema, settings.journal_table)
            applied = journal.content(conn, status.version)
            text, whitespace_only = planner.diff(applied, current[status.path], status.path)
            found.append(Drift(status.path, text, whitespace_only))
    return found


def _migrated(
    target: str,
    files: Files,
    plans: Sequence[Plan],
    outcomes: Sequence[FileOutcome],
    unlisted: tuple[str, ...],
    duration_ms: int,
    *,
    dry_run: bool = False,
    repeatables: Files | None = None,
) -> MigrateResult:
    applied = {(o.schema, o.version) for o in outcomes if not o.repeatable}
    reapplied = {(o.schema, o.name) for o in outcomes if o.repeatable}
    pending = [
        status
        for plan in plans
        for status in plan.left
        + tuple(
            _pending(step.migration.file)
            for step in plan.steps
            if (plan.schema, step.migration.file.version) not in applied
        )
    ]
    pending.sort(key=lambda status: (status.schema, status.version))
    pending += [  # due repeatable files the run did not get to, after the versioned ones
        FileStatus(plan.schema, 0, m.file.name, FileState.DUE, m.file.path)
        for plan in plans
        for m in plan.repeatables
        if (plan.schema, m.file.name) not in reapplied
    ]
    count = sum(len(found) for found in files.values())
    count += sum(len(found) for found in (repeatables or {}).values())
    return MigrateResult(
        target, tuple(outcomes), tuple(pending), tuple(plans), unlisted, count, duration_ms, dry_run
    )


def _pending(file: SqlFile) -> FileStatus:
    return FileStatus(file.schema, file.version, file.name, FileState.PENDING, file.path)


def _writing(settings: Settings) -> None:
    """The RUN_MODE guard, for every command that writes."""
    from migrator import guard

    guard.check_run_mode(settings.require_run_mode, os.environ.get("RUN_MODE"))


def _confirm(
    settings: Settings,
    conn: Connection,
    reporter: Reporter,
    confirm: str | None,
    preview: MigrateResult | RollbackResult | SeedResult | Sequence[str] = (),
    *,
    command: str = "",
) -> None:
    """In production, or always for `command`: show the target and what will change, and have
    it confirmed (`confirm`, CONFIRM_PROD in production, or the database name typed when the
    reporter can ask); Refused otherwise."""
    from migrator import db, guard

    if settings.env != "production" and not command:
        return
    dbname = conn.info.dbname
    where = command or "production"
    reporter.notice(f"{where}: {db.target(conn)} (database {dbname}, user {conn.info.user})")
    reporter.review(preview)
    given = None if command else os.environ.get("CONFIRM_PROD")
    decision = guard.confirmation(
        settings.env, dbname, confirm, given, interactive=True, command=command
    )
    if decision is guard.Decision.ASK:
        answer = reporter.ask(f"Type the database name ({dbname}) to go ahead")
        if answer is None:  # nobody to ask: refused, saying how to confirm
            guard.confirmation(settings.env, dbname, None, None, interactive=False, command=command)
        guard.check_answer(answer or "", dbname)


def _agreed(reporter: Reporter, question: str) -> None:
    """A yes to `question`; ConfigError when there is nobody to ask, or the answer is no."""
    answer = reporter.ask(question)
    if answer is None:
        raise ConfigError("this changes the journal: pass --yes to go ahead without a terminal")
    if answer.strip().lower() not in ("y", "yes"):
        raise Cancelled("cancelled; nothing was changed")


FORGET_SEED = "forget the seed journal row"
FORGET = "forget the repeatable file's row"


def _gone_seeds(conn: Connection, settings: Settings) -> list[tuple[str, str]]:
    """(path shown, name) of each seed journal row whose process file is gone."""
    from migrator import seed_journal, seeds
    from migrator.discovery import display

    rows = seed_journal.read(conn, settings.seeds_table) or {}
    if not rows:
        return []
    states = seeds.assess(seeds.discover(settings.seeds_dir), rows)
    folder = display(settings.seeds_dir)
    return [(f"{folder}/{s.name}", s.name) for s in states if s.state == "missing"]


def _repair(
    conn: Connection,
    files: Files,
    found: Sequence[tuple[FileStatus, str]],
    table: str,
    reason: str,
    restart: bool,
) -> None:
    """Accept changed files, and failed runs' committed chunks with the file as it is now
    (new hash, chunks and text, with the reason); delete the rest."""
    from migrator import planner, sqlfile
    from migrator.journal import Journal

    by_path = {file.path: file for found in files.values() for file in found}
    for schema in {status.schema for status, _ in found}:
        Journal(schema, table).ensure(conn)  # the columns an older migrator's journal lacks
    with conn.transaction():
        for status, _ in found:
            journal = Journal(status.schema, table)
            if status.state is FileState.REVERTING:
                down = by_path[status.path].down if status.path else None
                if restart:
                    journal.settle_revert(conn, status.version, None, f"repaired: {reason}")
                elif down is None:
                    raise ConfigError(
                        f"{status.path or status.name}: its rollback is unfinished, but its down "
                        "file is gone: nothing was repaired",
                        hint="Restore the down file, or clear the rollback with --restart once "
                        "you have undone its committed chunks.",
                    )
                else:
                    migration = sqlfile.parse(down)
                    done = status.row.down_chunks_done or 0 if status.row else 0
                    if len(migration.chunks) < done:
                        raise ConfigError(
                            f"{down.path} now has {len(migration.chunks)} chunks, but {done} of "
                            "it committed: nothing was repaired",
                            hint="Restore the down chunks that ran, or clear the rollback with "
                            "--restart once you have undone what they did.",
                        )
                    note = f"repaired, committed down chunks kept: {reason}"
                    journal.settle_revert(conn, status.version, migration, note)
            elif status.state is FileState.CHANGED and status.path:
                journal.accept(conn, sqlfile.parse(by_path[status.path]), f"repaired: {reason}")
            elif planner.keeps_progress(status, restart=restart) and status.path:
                migration = sqlfile.parse(by_path[status.path])
                done = status.row.chunks_done if status.row else 0
                if len(migration.chunks) < done:
                    raise ConfigError(
                        f"{status.path} now has {len(migration.chunks)} chunks, but {done} of "
                        "it committed: nothing was repaired",
                        hint="Restore the chunks that ran, or clear the run with --restart once "
                        "you have undone what they did.",
                    )
                note = f"repaired, committed chunks kept: {reason}"
                journal.accept(conn, migration, note, keep_progress=True)
            else:
                journal.forget(conn, status.version)


def _baseline(
    conn: Connection, journal: Journal, chosen: Sequence[SqlFile], notes: Mapping[str, str]
) -> None:
    """Journal the files as `baseline` without running them (`notes` by path, else
    "baseline")."""
    from migrator import sqlfile

    journal.ensure(conn)
    with conn.transaction():
        for file in chosen:
            try:
                migration = sqlfile.parse(file)
            except BadFile:  # an old file this lexer cannot split is still a baseline
                migration = Migration(file, TxMode.STATEMENT, ())
            journal.baseline(conn, migration, notes.get(file.path, "baseline"))


def _adoption(
    conn: Connection,
    settings: Settings,
    reporter: Reporter,
    schema: str,
    files: Sequence[SqlFile],
    source: tuple[str, str],
) -> tuple[int, list[tuple[SqlFile, DrizzleRow]]]:
    """How many of Drizzle's recorded migrations match a file, and the matched files that have
    no journal row yet; warnings reported for files matched by their journal `when` only
    (changed since Drizzle ran them) and for files journaled with another hash than Drizzle's.
    ConfigError when there is no such table; DriftError when a row matches no file."""
    from migrator import drizzle
    from migrator.journal import Journal, read_drizzle

    where = ".".join(source)
    rows = read_drizzle(conn, *source)
    if rows is None:
        raise ConfigError(
            f"no table {where} in database {conn.info.dbname}: nothing to adopt",
            hint="Name the table Drizzle's migrate() wrote with --table SCHEMA.TABLE "
            "(its migrationsSchema and migrationsTable).",
        )
    found = drizzle.match(rows, files, _raw_hashes(settings, schema, files))
    if found.unmatched:
        count = len(found.unmatched)
        raise DriftError(
            f"{count} migration{'s' if count > 1 else ''} recorded in {where} "
            f"match{'' if count > 1 else 'es'} no file of {schema}; nothing was adopted",
            problems=[_describe_row(row) for row in found.unmatched],
            hint="Put the files Drizzle ran into the schema folder, unchanged (or, in a "
            "drizzle-kit folder, with the same journal `when`), and run again; adopt before "
            "import drizzle, which drops the journal, when files changed since Drizzle ran "
            "them.",
        )
    journal = Journal(schema, settings.journal_table)
    journaled = journal.read(conn, brief=True) or []
    _no_unfinished_rollback(journaled, schema, "adopt")
    known = {row.version: row for row in journaled}
    for file, row in found.matched:
        if file.hash != row.hash:
            reporter.notice(
                f"warning: {file.path} matched {where} id {row.id} by its journal `when` only: "
                "the file changed since Drizzle ran it"
            )
        if file.version in known and known[file.version].hash != row.hash:
            reporter.notice(
                f"warning: {file.path} is journaled already with hash "
                f"{known[file.version].hash}, but {row.hash} in Drizzle's row {row.id}: "
                "`migrator status` shows the difference"
            )
    chosen = [(file, row) for file, row in found.matched if file.version not in known]
    return len(found.matched), chosen


def _no_unfinished_rollback(rows: Sequence[Any], schema: str, command: str) -> None:
    """ConfigError when a rollback in the schema is unfinished: journaling more files would
    put one above the file being reverted."""
    unfinished = [row for row in rows if row.down_chunks_done is not None]
    if unfinished:
        raise ConfigError(
            f"the rollback of {unfinished[0].name} in {schema} is unfinished: {command} "
            "changed nothing",
            hint=f"Finish it first with migrator rollback {schema}, or clear it with migrator "
            "repair --restart --reason '...'.",
        )


def _raw_hashes(
    settings: Settings, schema: str, files: Sequence[SqlFile]
) -> dict[str, tuple[str, ...]]:
    """Each file's sha256 of its bytes as they are, and without what import --split added:
    the hashes Drizzle may have recorded besides migrator's (of the text with LF)."""
    import hashlib

    from migrator import discovery, importer

    found: dict[str, tuple[str, ...]] = {}
    for file in files:
        try:
            data = discovery.read_bytes(str(settings.sql_dir / schema / file.name))
        except OSError:
            continue
        original = importer.unsplit(data.decode("utf-8", "surrogateescape"))
        found[file.path] = (
            hashlib.sha256(data).hexdigest(),
            hashlib.sha256(original.encode("utf-8", "surrogateescape")).hexdigest(),
        )
    return found


def _adoption_note(file: SqlFile, row: DrizzleRow, table: str) -> str:
    changed = "" if file.hash == row.hash else f"; its hash then was {row.hash}"
    return f"adopted from Drizzle ({table} id {row.id}{changed})"


def _qualified(table: str) -> tuple[str, str]:
    """[SCHEMA.]TABLE as its two names (schema public when not given), each plain or in
    double quotes (a dot inside quotes is part of the name, "" a quote); ConfigError else."""
    import re

    part = r'"((?:[^"]|"")+)"|([^".]+)'
    match = re.fullmatch(rf"(?:(?:{part})\.)?(?:{part})", table.strip())
    if match is None:
        raise ConfigError(
            f"--table {table!r} is not [SCHEMA.]TABLE",
            hint='For example --table drizzle.__drizzle_migrations, or --table \'"my schema"."'
            "my.table\"' for names with dots or spaces.",
        )
    quoted_schema, schema, quoted_name, name = match.groups()
    schema = quoted_schema.replace('""', '"') if quoted_schema else (schema or "public")
    name = quoted_name.replace('""', '"') if quoted_name else name
    return schema, name


def _describe_row(row: DrizzleRow) -> str:
    from datetime import UTC, datetime

    when = ""
    if row.created_at is not None:
        when = f", created_at {row.created_at}"
        try:
            moment = datetime.fromtimestamp(row.created_at / 1000, UTC)
            when += f" ({moment:%Y-%m-%d %H:%M:%S} UTC)"
        except (OverflowError, ValueError, OSError):
            pass  # not a time a datetime can hold: the number alone
    return f"id {row.id}: hash {row.hash}{when}"
