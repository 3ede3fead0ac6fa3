"""The command line: global options, thin commands, and the one place errors become exit codes."""

# No `from __future__ import annotations` here: typer reads every command's annotations at each
# start, and evaluating them from strings cost ~8 ms; names imported only for type checking
# are quoted instead.
import enum
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from migrator import __version__
from migrator.errors import (
    ConfigError,
    DriftError,
    MigratorError,
    PendingWork,
    Refused,
    Terminated,
)

if TYPE_CHECKING:  # the commands import these lazily, to keep start-up fast
    from migrator.db import Connection
    from migrator.drizzle import DrizzleRow
    from migrator.model import FileStatus, SqlFile
    from migrator.output import Output
    from migrator.runner import Options
    from migrator.settings import Settings

app = typer.Typer(
    name="migrator",
    help="Apply numbered .sql files to PostgreSQL, one transaction per statement, with a "
    "resumable journal per schema; and seed data, with SUCCESS or FAIL recorded per process.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)


@dataclass(frozen=True, slots=True)
class Globals:
    """The global options, handed to every command."""

    database_url: str | None
    sql_dir: Path | None
    seeds_dir: Path | None
    env: str | None
    wait_for_db: float | None
    quiet: bool
    verbose: bool
    json: bool


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"migrator {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="postgresql://user:password@host:port/dbname. Default: MIGRATOR_DATABASE_URL, "
            "DATABASE_URL, libpq's PG* variables, else an embedded server in development.",
            show_default=False,
        ),
    ] = None,
    sql_dir: Annotated[
        Path | None,
        typer.Option("--sql-dir", help="Migrations folder, one subfolder per schema (sql)."),
    ] = None,
    seeds_dir: Annotated[
        Path | None, typer.Option("--seeds-dir", help="Seed processes folder (seeds).")
    ] = None,
    env: Annotated[
        str | None,
        typer.Option("--env", help="development (default), staging or production."),
    ] = None,
    wait_for_db: Annotated[
        float | None,
        typer.Option(
            "--wait-for-db",
            metavar="SECONDS",
            help="Keep trying to connect for this long (containers starting up).",
        ),
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout; logs on stderr.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors and results.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show every chunk.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Global options come before the command: migrator --database-url URL migrate."""
    ctx.obj = Globals(database_url, sql_dir, seeds_dir, env, wait_for_db, quiet, verbose, json)


Schemas = Annotated[
    list[str] | None,
    typer.Argument(help="Schemas (folders under the migrations folder); default: all."),
]
Confirm = Annotated[
    str | None,
    typer.Option(
        "--confirm",
        metavar="DBNAME",
        help="In production, the target database's name: confirms without a prompt "
        "(or set CONFIRM_PROD).",
    ),
]


class AdoptFrom(enum.StrEnum):
    drizzle = "drizzle"


DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan and the SQL; change nothing.")
]


@contextmanager
def reported_errors(output: "Output") -> Iterator[None]:
    """Turn expected errors into a message on stderr and their exit code; nothing else."""
    import psycopg

    from migrator.db import scrub

    try:
        yield
    except MigratorError as error:
        output.failure(error)
        output.finish(error.exit_code)
        raise typer.Exit(error.exit_code) from None
    except psycopg.Error as error:
        message = " ".join(str(error).split())
        for name in ("MIGRATOR_DATABASE_URL", "DATABASE_URL"):
            message = scrub(message, os.environ.get(name, ""))
        output.failure(MigratorError(f"database error: {message}"))
        output.finish(1)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as interrupt:
        # psycopg cancelled the statement in progress and its transaction rolled back; the
        # advisory lock was released on the way here.
        code = interrupt.exit_code if isinstance(interrupt, Terminated) else 130
        by = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
        output.notice(
            f"interrupted ({by}): a statement in progress was cancelled and rolled back, and the "
            "journal records what was done; run again to resume"
        )
        output.finish(code)
        raise typer.Exit(code) from None
    output.finish(0)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _output(ctx: typer.Context) -> "Output":
    from migrator.output import Output

    options: Globals = ctx.obj
    return Output(quiet=options.quiet, verbose=options.verbose, json=options.json)


def _settings(ctx: typer.Context) -> "Settings":
    from migrator import settings

    options: Globals = ctx.obj
    return settings.load(
        database_url=options.database_url,
        sql_dir=options.sql_dir,
        seeds_dir=options.seeds_dir,
        env=options.env,
        wait_for_db=options.wait_for_db,
    )


@contextmanager
def _connect(config: "Settings", output: "Output") -> Iterator["Connection"]:
    """The session for a command, closed after it; a connection lost midway is ConnectionLost."""
    import psycopg

    from migrator import db, embedded, settings

    target = settings.target(config)
    if target is not None:
        conninfo = target.conninfo
    elif config.env != "development":
        raise ConfigError(
            f"no database configured for the {config.env} environment",
            hint="Set MIGRATOR_DATABASE_URL (or DATABASE_URL, or --database-url).",
        )
    else:
        output.notice(
            f"No database configured: using the embedded PostgreSQL in {config.embedded_dir}/ "
            "(set MIGRATOR_DATABASE_URL to use your own)."
        )
        conninfo = embedded.start(config.embedded_dir)
    with db.connect(conninfo, wait=config.wait_for_db if target else 0) as conn:
        try:
            yield conn
        except psycopg.Error as error:
            if conn.broken:
                raise db.connection_lost("", error) from error
            raise


def _files(config: "Settings", schemas: list[str] | None) -> dict[str, tuple["SqlFile", ...]]:
    from migrator import discovery

    available = discovery.find_schemas(config.sql_dir, config.schemas)
    selected = discovery.select_schemas(available, tuple(schemas or ()))
    return discovery.load(config.sql_dir, selected)


def _unlisted(config: "Settings", files: dict[str, tuple["SqlFile", ...]]) -> list[tuple[str, str]]:
    """(schema, path) of every .sql file a drizzle-kit journal does not list."""
    from migrator import discovery

    return [
        (schema, path)
        for schema, found in files.items()
        for path in discovery.unlisted(config.sql_dir, schema, found)
    ]


def _warn_unlisted(
    config: "Settings", output: "Output", files: dict[str, tuple["SqlFile", ...]]
) -> None:
    unlisted = _unlisted(config, files)
    for _, path in unlisted:
        output.notice(f"warning: {path} is not in its folder's meta/_journal.json: not applied")
    output.set(unlisted=[path for _, path in unlisted])


def _writing(config: "Settings") -> None:
    """The RUN_MODE guard, for every command that writes."""
    from migrator import guard

    guard.check_run_mode(config.require_run_mode, os.environ.get("RUN_MODE"))


def _target(conn: "Connection") -> str:
    from migrator.db import target

    return target(conn)


def _confirmer(
    config: "Settings", conn: "Connection", output: "Output", confirm: str | None
) -> Callable[[Callable[[], None]], None]:
    """A check to run before any change: in production, show it and have it confirmed."""
    from migrator import guard

    def check(show: Callable[[], None]) -> None:
        if config.env != "production":
            return
        dbname = conn.info.dbname
        output.notice(f"production: {_target(conn)} (database {dbname}, user {conn.info.user})")
        show()
        interactive = sys.stdin.isatty()
        decision = guard.confirmation(
            config.env, dbname, confirm, os.environ.get("CONFIRM_PROD"), interactive
        )
        if decision is guard.Decision.ASK:
            try:
                answer = typer.prompt(f"Type the database name ({dbname}) to go ahead", err=True)
            except typer.Abort:  # end of input or Ctrl-C at the question: not confirmed
                raise Refused("production: no answer; nothing was changed") from None
            guard.check_answer(answer, dbname)

    return check


def _runner_options(
    config: "Settings",
    *,
    to: int | None = None,
    allow_out_of_order: bool = False,
    only: str | None = None,
    force: bool = False,
) -> "Options":
    from migrator import runner

    return runner.Options(
        journal_table=config.journal_table,
        lock_timeout=config.lock_timeout,
        statement_timeout=config.statement_timeout,
        lock_retries=config.lock_retries,
        lock_wait=config.lock_wait,
        to=to,
        allow_out_of_order=allow_out_of_order,
        only=only,
        force=force,
    )


@app.command()
def migrate(
    ctx: typer.Context,
    schemas: Schemas = None,
    to: Annotated[int | None, typer.Option("--to", help="Stop after this version.")] = None,
    only: Annotated[
        str | None,
        typer.Option("--only", help="Just this migration: a version, or part of its name."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --only: run it again even if applied.")
    ] = False,
    allow_out_of_order: Annotated[
        bool,
        typer.Option(
            "--allow-out-of-order",
            help="Apply pending files older than the newest applied one (merged branches).",
        ),
    ] = False,
    dry_run: DryRun = False,
    confirm: Confirm = None,
) -> None:
    """Apply every pending migration, schema by schema; resume failed or interrupted ones."""
    from migrator import runner

    output = _output(ctx)
    with reported_errors(output):
        if force and only is None:
            raise ConfigError("--force goes with --only: name the migration to run again")
        config = _settings(ctx)
        files = _files(config, schemas)
        _warn_unlisted(config, output, files)
        options = _runner_options(
            config, to=to, allow_out_of_order=allow_out_of_order, only=only, force=force
        )
        if not dry_run:
            _writing(config)
        with _connect(config, output) as conn:
            if dry_run:
                output.plan(_target(conn), runner.preview(conn, files, options), with_sql=True)
                return
            check = _confirmer(config, conn, output, confirm)
            started = time.monotonic()
            outcomes = runner.migrate(
                conn, files, options, output, lambda plans: check(lambda: output.plan("", plans))
            )
        output.migrated(outcomes, sum(len(found) for found in files.values()), _ms_since(started))


@app.command()
def status(
    ctx: typer.Context,
    schemas: Schemas = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 3 when anything is pending, failed or drifted.")
    ] = False,
) -> None:
    """Show every migration (applied, pending, failed at chunk k, changed, missing) and seed."""
    from migrator import journal, runner, seeds
    from migrator.model import FileState

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        files = _files(config, schemas)
        seed_files = [] if schemas else seeds.discover(config.seeds_dir)
        with _connect(config, output) as conn:
            statuses = runner.assess(conn, files, config.journal_table)
            statuses += _unlisted_statuses(config, files)
            output.status(_target(conn), statuses)
            _show_drift(conn, config, output, statuses, files)
            seed_rows = journal.read_seeds(conn, config.seeds_table) or {}
            seed_states = seeds.assess(seed_files, seed_rows)
            if seed_states:
                output.seed_status(seed_states)
        open_work = [s for s in statuses if not s.is_done and s.state is not FileState.UNLISTED] + [
            s for s in seed_states if s.state in ("pending", "FAIL")
        ]
        if check and open_work:
            raise PendingWork(f"{len(open_work)} migrations or seeds pending, failed or drifted")


def _unlisted_statuses(
    config: "Settings", files: dict[str, tuple["SqlFile", ...]]
) -> list["FileStatus"]:
    from migrator import sqlfile
    from migrator.model import FileState, FileStatus

    found = []
    for schema, path in _unlisted(config, files):
        name = path.rsplit("/", 1)[-1]
        version = (sqlfile.parse_name(name) or (0, ""))[0]
        detail = "not in meta/_journal.json: never applied"
        found.append(FileStatus(schema, version, name, FileState.UNLISTED, path, detail=detail))
    return found


def _show_drift(
    conn: "Connection",
    config: "Settings",
    output: "Output",
    statuses: list["FileStatus"],
    files: dict[str, tuple["SqlFile", ...]],
) -> None:
    """Show each changed file's diff against the text the journal keeps."""
    from migrator import journal, planner
    from migrator.model import FileState

    current = {file.path: file.text for found in files.values() for file in found}
    for status in statuses:
        if status.state is FileState.CHANGED and status.path:
            applied = journal.content(conn, status.schema, config.journal_table, status.version)
            text, whitespace_only = planner.diff(applied, current[status.path], status.path)
            output.drift(status.path, text, whitespace_only)


@app.command()
def validate(ctx: typer.Context, schemas: Schemas = None) -> None:
    """Check every file parses and matches the journal; exit 3 on drift."""
    from migrator import planner, runner, sqlfile
    from migrator.errors import BadFile
    from migrator.model import FileState

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        files = _files(config, schemas)
        _warn_unlisted(config, output, files)
        problems: list[str] = []
        parsed = {}
        for file in (file for found in files.values() for file in found):
            try:
                parsed[file.path] = sqlfile.parse(file)
            except BadFile as exc:
                problems.extend(exc.problems)
        if problems:
            raise BadFile(problems)
        with _connect(config, output) as conn:
            statuses = runner.assess(conn, files, config.journal_table)
            _show_drift(conn, config, output, statuses, files)
        drift = [f"{s.path or s.name}: {s.detail}" for s in statuses if s.is_problem]
        # A failed or interrupted file whose done chunks were edited cannot resume: drift too.
        drift.extend(
            problem
            for s in statuses
            if s.state in (FileState.FAILED, FileState.RUNNING) and s.path in parsed
            if (problem := planner.resume_problem(parsed[s.path], s.row))
        )
        if drift:
            raise DriftError("the migrations on disk disagree with the journal", problems=drift)
        output.set(valid=True, files=len(statuses))
        output.line(f"ok: {len(statuses)} migration files parse and match the journal")


@app.command()
def seed(
    ctx: typer.Context,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run just this process (repeatable), whatever its status."),
    ] = None,
    clean: Annotated[
        bool, typer.Option("--clean", help="First call each process's clean(), last first.")
    ] = False,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="After a failure, go on with the next process.")
    ] = False,
    dry_run: DryRun = False,
    confirm: Confirm = None,
) -> None:
    """Run the seed processes under seeds/ that are due; record SUCCESS or FAIL for each."""
    from migrator import journal, seeds

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        processes, hooks = seeds.load(seeds.discover(config.seeds_dir), config.seeds_dir)
        options = seeds.Options(
            table=config.seeds_table,
            only=tuple(only or ()),
            clean=clean,
            keep_going=keep_going,
            lock_wait=config.lock_wait,
            lock_timeout=config.lock_timeout,
            statement_timeout=config.statement_timeout,
            lock_retries=config.lock_retries,
        )
        seeds.check_only(processes, options.only)
        if not dry_run:
            _writing(config)
        with _connect(config, output) as conn:
            if dry_run:
                rows = journal.read_seeds(conn, config.seeds_table) or {}
                to_clean, to_run = seeds.plan(processes, rows, options)
                output.seed_plan(_target(conn), seeds.describe_plan(to_clean, to_run))
                return
            check = _confirmer(config, conn, output, confirm)

            def show(to_clean: list[seeds.Process], to_run: list[seeds.Process]) -> None:
                check(lambda: output.seed_plan("", seeds.describe_plan(to_clean, to_run)))

            outcomes = seeds.seed(conn, processes, hooks, options, output, show)
        output.seeded(outcomes)


@app.command()
def repair(
    ctx: typer.Context,
    schemas: Schemas = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why; kept with who and when in the journal's note.")
    ] = "",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask (outside production).")
    ] = False,
    confirm: Confirm = None,
) -> None:
    """Accept intended edits of applied files, clear failed runs, forget deleted files."""
    from migrator import db, runner

    output = _output(ctx)
    with reported_errors(output):
        if not reason.strip():
            raise ConfigError("repair needs --reason: say why; it is kept in the journal")
        config = _settings(ctx)
        _writing(config)
        files = _files(config, schemas)
        with (
            _connect(config, output) as conn,
            db.advisory_lock(conn, config.lock_wait, output.lock_waiting),
        ):
            repairs = runner.repairs(conn, files, config.journal_table)
            _show_drift(conn, config, output, [status for status, _ in repairs], files)
            for status, action in repairs:
                output.line(f"{action}: {status.path or status.name} ({status.detail})")
            if repairs:
                _confirmer(config, conn, output, confirm)(lambda: None)
                _ask_unless(yes or config.env == "production", "Apply these repairs?")
                runner.repair(conn, files, repairs, config.journal_table, reason)
        output.set(
            repaired=[{"path": s.path, "version": s.version, "action": a} for s, a in repairs]
        )
        output.line(f"repaired {len(repairs)} journal rows" if repairs else "nothing to repair")


def _ask_unless(skip: bool, question: str) -> None:
    """Ask on a terminal; off a terminal, --yes is needed."""
    if skip:
        return
    if not sys.stdin.isatty():
        raise ConfigError("this changes the journal: pass --yes to go ahead without a terminal")
    if not typer.confirm(question, err=True):
        raise ConfigError("cancelled; nothing was changed")


@app.command()
def baseline(
    ctx: typer.Context,
    schema: Annotated[str, typer.Argument(help="The schema folder to baseline.")],
    version: Annotated[
        int, typer.Option("--version", help="Journal every file up to this version, unrun.")
    ],
    confirm: Confirm = None,
) -> None:
    """Mark an existing database as migrated up to a version, without running anything."""
    from migrator import db, runner

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        _writing(config)
        files = _files(config, [schema])[schema]
        with (
            _connect(config, output) as conn,
            db.advisory_lock(conn, config.lock_wait, output.lock_waiting),
        ):
            targets = runner.baseline_targets(conn, schema, files, version, config.journal_table)

            def show() -> None:
                for file in targets:
                    output.line(f"  baseline {file.path}")

            if targets:
                _confirmer(config, conn, output, confirm)(show)
                runner.baseline(conn, schema, targets, config.journal_table)
        output.set(baselined=[file.path for file in targets])
        output.line(f"baselined {len(targets)} files of {schema} up to version {version}")


@app.command()
def adopt(
    ctx: typer.Context,
    tool: Annotated[
        AdoptFrom,
        typer.Argument(metavar="drizzle", help="The runner that migrated the database."),
    ],
    schema: Annotated[
        str, typer.Option("--schema", help="The schema folder holding the migrations.")
    ] = "public",
    table: Annotated[
        str,
        typer.Option(
            "--table",
            metavar="SCHEMA.TABLE",
            help="Where Drizzle's migrate() recorded what it ran.",
        ),
    ] = "drizzle.__drizzle_migrations",
    dry_run: DryRun = False,
    confirm: Confirm = None,
) -> None:
    """Journal the files another runner already applied (matched by hash), without running
    them; refuses, changing nothing, when a recorded migration matches no file."""
    from migrator import db, runner

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        source = _qualified(table)
        files = _files(config, [schema])[schema]
        if not dry_run:
            _writing(config)
        with _connect(config, output) as conn, ExitStack() as held:
            if not dry_run:  # a dry run takes no lock, like every other
                held.enter_context(db.advisory_lock(conn, config.lock_wait, output.lock_waiting))
            found, targets, warnings = runner.adoption(
                conn, schema, files, source, config.journal_table
            )
            if found.unmatched:
                raise DriftError(
                    f"{len(found.unmatched)} migrations recorded in {table} match no file "
                    f"of {schema}; nothing was adopted",
                    problems=[_describe_row(row) for row in found.unmatched],
                    hint="Put the files Drizzle ran into the schema folder, unchanged (or with "
                    "the same journal `when`), and run again.",
                )
            for warning in warnings:
                output.notice(f"warning: {warning}")
            notes = {file.path: _adoption_note(file, row, table) for file, row in targets}

            def show(verb: str = "adopt") -> None:
                for file, row in targets:
                    output.line(f"{verb} {file.path} ({table} id {row.id})")

            if dry_run:
                show("would adopt")
            elif targets:
                _confirmer(config, conn, output, confirm)(show)
                runner.baseline(conn, schema, [f for f, _ in targets], config.journal_table, notes)
                show("adopted")
        adopted = [{"path": file.path, "drizzle_id": row.id} for file, row in targets]
        already = len(found.matched) - len(targets)
        output.set(adopted=adopted, dry_run=dry_run, already=already)
        verb = "would adopt" if dry_run else "adopted"
        output.line(
            f"{verb} {len(targets)} file{'' if len(targets) == 1 else 's'} of {schema} from {table}"
            + (f" ({already} already journaled)" if already else "")
        )


def _adoption_note(file: "SqlFile", row: "DrizzleRow", table: str) -> str:
    changed = "" if file.hash == row.hash else f"; its hash then was {row.hash}"
    return f"adopted from Drizzle ({table} id {row.id}{changed})"


def _qualified(table: str) -> tuple[str, str]:
    """SCHEMA.TABLE as its two names; ConfigError otherwise."""
    schema, dot, name = table.partition(".")
    if not (dot and schema and name) or "." in name:
        raise ConfigError(
            f"--table {table!r} is not SCHEMA.TABLE",
            hint="For example --table drizzle.__drizzle_migrations.",
        )
    return schema, name


def _describe_row(row: "DrizzleRow") -> str:
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


@app.command()
def reset(ctx: typer.Context, schemas: Schemas = None) -> None:
    """Drop the schemas' objects and journals, then migrate again (development only)."""
    from migrator import db, guard, runner

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        guard.check_development(config.env, "reset")
        _writing(config)
        files = _files(config, schemas)
        options = _runner_options(config)
        with _connect(config, output) as conn:
            with db.advisory_lock(conn, config.lock_wait, output.lock_waiting):
                for schema in files:
                    db.drop_schema(conn, schema)
                    output.info(f"dropped schema {schema}")
            started = time.monotonic()
            outcomes = runner.migrate(conn, files, options, output)
        output.set(reset=list(files))
        output.migrated(outcomes, sum(len(found) for found in files.values()), _ms_since(started))


@app.command()
def config(ctx: typer.Context) -> None:
    """Print the effective settings and where each one came from (password masked)."""
    from migrator import settings

    output = _output(ctx)
    with reported_errors(output):
        options: Globals = ctx.obj
        output.settings(
            settings.explain(
                database_url=options.database_url,
                sql_dir=options.sql_dir,
                seeds_dir=options.seeds_dir,
                env=options.env,
                wait_for_db=options.wait_for_db,
            )
        )


@app.command()
def new(
    ctx: typer.Context,
    schema: Annotated[str, typer.Argument(help="Schema folder to add the file to.")],
    name: Annotated[str, typer.Argument(help="What the migration does, e.g. add_orders.")],
) -> None:
    """Create the next numbered migration file in a schema folder."""
    from migrator import discovery

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        folder = config.sql_dir / schema
        files = discovery.load_schema(config.sql_dir, schema) if folder.is_dir() else ()
        path = discovery.new_file(config.sql_dir, schema, name, files)
        output.set(created=discovery.display(path))
        output.line(f"created {discovery.display(path)}")


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main() -> None:
    """The console script. SIGTERM is handled like Ctrl-C (the statement in progress cancelled
    and rolled back, the lock released, "run again to resume"), but exits 143 instead of 130."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="migrator")
