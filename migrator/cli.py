"""The command line: global options, thin commands, and the one place errors become exit codes."""

# No `from __future__ import annotations`: typer would evaluate every annotation string at each
# start (docs/performance.md); names imported only for type checking are quoted instead.
import copy
import dataclasses
import enum
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer._click as click  # typer vendors click, and re-exports little of it
from typer.core import TyperGroup

from migrator import __version__
from migrator.errors import MigratorError, PendingWork, Terminated, UsageError

if TYPE_CHECKING:  # the commands import these lazily, to keep start-up fast
    from migrator.output import PlainReporter
    from migrator.settings import Settings


@dataclass(frozen=True, slots=True)
class Globals:
    """The global options, handed to every command (given before it or after it)."""

    database_url: str | None
    sql_dir: Path | None
    seeds_dir: Path | None
    env: str | None
    wait_for_db: float | None
    quiet: bool
    verbose: bool
    json: bool
    db: str | None
    all_databases: bool


_GLOBALS = frozenset(field.name for field in dataclasses.fields(Globals))
_ARGS = "migrator.args"  # the command line as given, in the click context's shared meta


def _replace_global(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A global option given after the command replaces the value given before it."""
    source = ctx.get_parameter_source(param.name or "")
    if isinstance(ctx.obj, Globals) and source is click.core.ParameterSource.COMMANDLINE:
        ctx.obj = dataclasses.replace(ctx.obj, **{param.name or "": value})
    return value


def _asks_json(args: Sequence[str]) -> bool:
    """--json anywhere on the command line (before a lone --), whether or not the rest parses."""
    end = args.index("--") if "--" in args else len(args)
    return "--json" in args[:end]


def _early_reporter(args: Sequence[str], command: str) -> "PlainReporter":
    """The reporter for what goes wrong before a command has its own."""
    from migrator.output import reporter

    return reporter(command, json=_asks_json(args))


def _interrupted(reporter: "PlainReporter", interrupt: KeyboardInterrupt) -> int:
    """Say what SIGINT or SIGTERM cut short; the exit code, 130 or 143."""
    code = interrupt.exit_code if isinstance(interrupt, Terminated) else 130
    by = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
    if reporter.target:
        # psycopg cancelled the statement in progress and its transaction rolled back; the
        # advisory lock was released on the way here.
        reporter.notice(
            f"interrupted ({by}): a statement in progress was cancelled and rolled back, and the "
            "journal records what was done; run again to resume"
        )
    else:
        reporter.notice(f"interrupted ({by}) before connecting to the database: nothing was done")
    reporter.finish(code)
    return code


@contextmanager
def _before_the_command(args: Sequence[str], ctx: click.Context | None = None) -> Iterator[None]:
    """What goes wrong before a command's own error edge, reported as the commands report
    theirs: a usage error (click's message, or one JSON document with --json), an interrupt
    (typer alone would exit 130 for SIGTERM too)."""
    try:
        yield
    except click.exceptions.UsageError as error:
        if not _asks_json(args):
            raise
        within = error.ctx if error.ctx is not None and error.ctx.parent is not None else None
        reporter = _early_reporter(args, (within.command.name or "") if within else "")
        hint = f"Try '{error.ctx.command_path} --help' for help." if error.ctx else ""
        reporter.failure(UsageError(error.format_message(), hint=hint))
        reporter.finish(error.exit_code)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt as interrupt:
        command = (ctx.invoked_subcommand if ctx else None) or ""
        try:
            reporter = _early_reporter(args, command)
        except Exception:  # interrupted amid an import, which cannot be taken up again
            code = interrupt.exit_code if isinstance(interrupt, Terminated) else 130
            sys.stderr.write("interrupted while starting: nothing was done\n")
            raise typer.Exit(code) from None
        raise typer.Exit(_interrupted(reporter, interrupt)) from None


class _Group(TyperGroup):
    """The app's click group: every command takes the global options too, and a usage error
    or an interrupt before the command's own error edge is reported like the commands'."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        shared = []
        for option in self.params:
            if option.name in _GLOBALS:
                after = copy.copy(option)
                after.expose_value, after.callback = False, _replace_global
                shared.append(after)
        for command in self.commands.values():
            command.params.extend(shared)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """The group's context, which keeps the command line as given (parsing consumes it)."""
        given = list(args)
        with _before_the_command(given):
            ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta[_ARGS] = given
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, parsing its options first; with --all-databases, once per database."""
        args = ctx.meta.get(_ARGS, ())
        with _before_the_command(args, ctx):
            end = args.index("--") if "--" in args else len(args)
            if "--all-databases" in args[:end]:
                return _each_database(self, ctx, list(args))
            return super().invoke(ctx)


_VALUED = ("--database-url", "--sql-dir", "--seeds-dir", "--env", "--wait-for-db", "--db")


def _command_name(group: TyperGroup, words: list[str]) -> str:
    """The command a command line runs: its first word that is no option or option value."""
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in _VALUED
        elif word in group.commands:
            return word
        else:
            return ""
    return ""


def _each_database(group: TyperGroup, ctx: click.Context, args: list[str]) -> None:
    """The command line run once per named database (--db NAME in place of --all-databases),
    in the order written, stopping at the first that fails; with --json, one document that
    holds each database's."""
    import io
    import json
    from contextlib import redirect_stdout

    from migrator.settings import database_names

    json_output = _asks_json(args)
    given = [arg for arg in args if arg != "--all-databases"]
    reporter = _early_reporter(args, "")
    try:
        names = database_names()
    except MigratorError as error:
        reporter.failure(error)
        reporter.finish(error.exit_code)
        raise typer.Exit(error.exit_code) from None
    words = given[: given.index("--") if "--" in given else len(given)]
    command = _command_name(group, words)
    refusal = None
    if command in ("import", "new", "create"):
        refusal = UsageError(
            f"--all-databases: {command} writes into one database's migrations folder",
            hint="Name that database with --db NAME.",
        )
    elif "--db" in words or any(word.startswith("--db=") for word in words):
        refusal = UsageError("--db and --all-databases do not go together: give one")
    if refusal is not None:
        reporter.failure(refusal)
        reporter.finish(refusal.exit_code)
        raise typer.Exit(refusal.exit_code)
    if not names:
        empty = UsageError(
            "--all-databases: pyproject.toml has no [tool.migrator.databases.NAME] tables"
        )
        reporter.failure(empty)
        reporter.finish(empty.exit_code)
        raise typer.Exit(empty.exit_code)
    documents, code = [], 0
    for name in names:
        if not json_output:
            sys.stderr.write(f"== database {name} ==\n")
        captured = io.StringIO()
        with redirect_stdout(captured) if json_output else _nothing():
            sub = group.make_context(ctx.info_name, [*given, "--db", name], parent=ctx.parent)
            try:
                with sub:
                    TyperGroup.invoke(group, sub)
            except typer.Exit as stop:
                code = stop.exit_code
        if json_output:
            documents.append({"database": name, **json.loads(captured.getvalue() or "{}")})
        if code:
            break
    if json_output:
        sys.stdout.write(json.dumps({"databases": documents, "exit_code": code}, indent=2) + "\n")
    raise typer.Exit(code)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


app = typer.Typer(
    name="migrator",
    cls=_Group,
    help="Apply numbered .sql files to PostgreSQL, one transaction per statement, with a "
    "resumable journal per schema; and seed data, with SUCCESS or FAIL recorded per process. "
    "Options other than --version and the completion ones may go before or after the command "
    "(after wins).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)


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
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="NAME",
            help="The database of pyproject.toml's [tool.migrator.databases.NAME].",
        ),
    ] = None,
    all_databases: Annotated[
        bool,
        typer.Option(
            "--all-databases",
            help="Run the command on each of [tool.migrator.databases], in the order written, "
            "stopping at the first failure.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Global options go before the command or after it (where they win): migrator migrate
    --database-url URL."""
    ctx.obj = Globals(
        database_url, sql_dir, seeds_dir, env, wait_for_db, quiet, verbose, json, db, all_databases
    )


Schemas = Annotated[
    list[str] | None,
    typer.Argument(help="Schemas (folders under the migrations folder); default: all."),
]
Confirm = Annotated[
    str | None,
    typer.Option(
        "--confirm",
        metavar="DBNAME",
        help="The target database's name: confirms a change in production (or set "
        "CONFIRM_PROD) and a reset of any database but the embedded one, without a prompt.",
    ),
]


class AdoptFrom(enum.StrEnum):
    drizzle = "drizzle"
    prisma = "prisma"
    dbmate = "dbmate"
    golang_migrate = "golang-migrate"
    goose = "goose"
    flyway = "flyway"
    diesel = "diesel"


_TOOLS = ", ".join(tool.value for tool in AdoptFrom)


class LintFormat(enum.StrEnum):
    text = "text"
    sarif = "sarif"
    github = "github"


class FleetCommand(enum.StrEnum):
    migrate = "migrate"
    status = "status"
    validate = "validate"
    seed = "seed"


DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print the plan and the SQL; change nothing.")
]


@contextmanager
def reported_errors(reporter: "PlainReporter") -> Iterator[None]:
    """Turn expected errors into a message on stderr and their exit code; nothing else."""
    import psycopg

    from migrator.db import scrub

    try:
        yield
    except MigratorError as error:
        reporter.failure(error)
        reporter.finish(error.exit_code)
        raise typer.Exit(error.exit_code) from None
    except psycopg.Error as error:
        message = " ".join(str(error).split())
        for name in ("MIGRATOR_DATABASE_URL", "DATABASE_URL"):
            message = scrub(message, os.environ.get(name, ""))
        reporter.failure(MigratorError(f"database error: {message}"))
        reporter.finish(1)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as interrupt:
        raise typer.Exit(_interrupted(reporter, interrupt)) from None
    reporter.finish(0)


def _flags(ctx: typer.Context) -> dict[str, object]:
    """The global options that are settings, as pydantic-settings init values."""
    options: Globals = ctx.obj
    return {
        "database_url": options.database_url,
        "sql_dir": options.sql_dir,
        "seeds_dir": options.seeds_dir,
        "env": options.env,
        "wait_for_db": options.wait_for_db,
        "database": options.db,
    }


def _reporter(ctx: typer.Context, command: str) -> "PlainReporter":
    from migrator.output import reporter

    options: Globals = ctx.obj
    return reporter(command, json=options.json, quiet=options.quiet, verbose=options.verbose)


@contextmanager
def _run(ctx: typer.Context, command: str) -> Iterator[tuple["Settings", "PlainReporter"]]:
    """The settings (made once, here) and the reporter of a command, inside the error edge."""
    from migrator.settings import load

    reporter = _reporter(ctx, command)
    with reported_errors(reporter):
        yield load(**_flags(ctx)), reporter


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
    lint: Annotated[
        bool, typer.Option("--lint", help="Lint the files to apply first; refuse on an error.")
    ] = False,
) -> None:
    """Apply every pending migration, schema by schema; resume failed or interrupted ones."""
    from migrator import commands

    with _run(ctx, "migrate") as (settings, reporter):
        result = commands.migrate(
            settings,
            reporter=reporter,
            select=schemas or (),
            to=to,
            only=only,
            force=force,
            allow_out_of_order=allow_out_of_order,
            dry_run=dry_run,
            confirm=confirm,
            lint=lint,
        )
        reporter.show(result)


@app.command()
def rollback(
    ctx: typer.Context,
    schema: Annotated[
        str | None,
        typer.Argument(help="The schema to revert in; default: the one with applied files."),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", metavar="N", help="Revert the last N applied files (default 1)."),
    ] = None,
    to: Annotated[
        int | None,
        typer.Option(
            "--to", metavar="VERSION", help="Revert every applied file above VERSION, which stays."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and the down SQL; change nothing.")
    ] = False,
    confirm: Confirm = None,
) -> None:
    """Revert the newest applied migration (or the last N, or down to a version) with its
    .down.sql, a transaction per chunk; a failed rollback resumes where it stopped."""
    from migrator import commands

    with _run(ctx, "rollback") as (settings, reporter):
        result = commands.rollback(
            settings,
            reporter=reporter,
            schema=schema,
            steps=steps,
            to=to,
            dry_run=dry_run,
            confirm=confirm,
        )
        reporter.show(result)


@app.command()
def status(
    ctx: typer.Context,
    schemas: Schemas = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 3 when anything is pending, failed or drifted.")
    ] = False,
) -> None:
    """Show every migration (applied, pending, failed at chunk k, changed, missing) and seed."""
    from migrator import commands

    with _run(ctx, "status") as (settings, reporter):
        result = commands.status(settings, reporter=reporter, select=schemas or ())
        reporter.show(result)
        if check and result.open_work:
            count = len(result.open_work)
            raise PendingWork(
                f"{count} {'migration or seed' if count == 1 else 'migrations or seeds'} pending, "
                "failed or drifted"
            )


@app.command()
def validate(ctx: typer.Context, schemas: Schemas = None) -> None:
    """Check every file parses and matches the journal; exit 3 on drift."""
    from migrator import commands

    with _run(ctx, "validate") as (settings, reporter):
        reporter.show(commands.validate(settings, reporter=reporter, select=schemas or ()))


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
    from migrator import commands

    with _run(ctx, "seed") as (settings, reporter):
        result = commands.seed(
            settings,
            reporter=reporter,
            only=only or (),
            clean=clean,
            keep_going=keep_going,
            dry_run=dry_run,
            confirm=confirm,
        )
        reporter.show(result)


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
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Clear failed runs entirely, to run them from chunk 1 (once you have undone "
            "what their committed chunks did); by default those chunks are kept as done.",
        ),
    ] = False,
) -> None:
    """Accept intended edits of applied files, settle failed runs, forget deleted files."""
    from migrator import commands

    with _run(ctx, "repair") as (settings, reporter):
        result = commands.repair(
            settings,
            reason=reason,
            reporter=reporter,
            select=schemas or (),
            yes=yes,
            confirm=confirm,
            restart=restart,
        )
        reporter.show(result)


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
    from migrator import commands

    with _run(ctx, "baseline") as (settings, reporter):
        result = commands.baseline(
            settings, schema=schema, version=version, reporter=reporter, confirm=confirm
        )
        reporter.show(result)


@app.command()
def adopt(
    ctx: typer.Context,
    tool: Annotated[
        AdoptFrom,
        typer.Argument(metavar="TOOL", help=f"The runner that migrated the database: {_TOOLS}."),
    ],
    schema: Annotated[
        str, typer.Option("--schema", help="The schema folder holding the migrations.")
    ] = "public",
    table: Annotated[
        str | None,
        typer.Option(
            "--table",
            metavar="SCHEMA.TABLE",
            help="Where the runner recorded what it ran (default: its own table, e.g. "
            "drizzle.__drizzle_migrations, public.schema_migrations).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be adopted; change nothing.")
    ] = False,
    confirm: Annotated[
        str | None,
        typer.Option(
            "--confirm",
            metavar="DBNAME",
            help="The target database's name: confirms the adoption in production (or set "
            "CONFIRM_PROD), without a prompt.",
        ),
    ] = None,
) -> None:
    """Journal the files another runner already applied, without running them; refuses,
    changing nothing, when a recorded migration failed, was rolled back or is dirty, or
    (Drizzle) matches no file."""
    from migrator import commands

    with _run(ctx, "adopt") as (settings, reporter):
        result = commands.adopt(
            settings,
            tool=tool.value,
            schema=schema,
            table=table,
            reporter=reporter,
            dry_run=dry_run,
            confirm=confirm,
        )
        reporter.show(result)


@app.command("import")
def import_(
    ctx: typer.Context,
    kind: Annotated[
        AdoptFrom,
        typer.Argument(metavar="KIND", help=f"The runner whose folder this is: {_TOOLS}."),
    ],
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help="The runner's migrations folder.")
    ],
    schema: Annotated[
        str, typer.Option("--schema", help="The schema folder to write the files into.")
    ] = "public",
    split: Annotated[
        bool,
        typer.Option(
            "--split",
            help="Put a statement-breakpoint between statements, so that each runs in its "
            "own transaction (BEGIN ... COMMIT blocks stay whole).",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be written; write nothing.")
    ] = False,
) -> None:
    """Write another runner's migrations as migrator files (with their down files); files
    the runner would not run, or runs by accident, are reported and left out."""
    from migrator import commands

    with _run(ctx, "import") as (settings, reporter):
        result = commands.import_(
            settings,
            kind=kind.value,
            source=source,
            schema=schema,
            split=split,
            dry_run=dry_run,
            reporter=reporter,
        )
        reporter.show(result)


@app.command()
def reset(ctx: typer.Context, schemas: Schemas = None, confirm: Confirm = None) -> None:
    """Drop the schemas' objects and journals, then migrate again (development only; the
    database's name confirmed unless it is the embedded server)."""
    from migrator import commands

    with _run(ctx, "reset") as (settings, reporter):
        result = commands.reset(settings, reporter=reporter, select=schemas or (), confirm=confirm)
        reporter.show(result)


@app.command()
def config(ctx: typer.Context) -> None:
    """Print the effective settings and where each one came from (password masked)."""
    from migrator import commands

    reporter = _reporter(ctx, "config")
    with reported_errors(reporter):
        reporter.show(commands.config(**_flags(ctx)))


@app.command(short_help="Create the next migration file in a schema folder (alias: create).")
def new(
    ctx: typer.Context,
    schema: Annotated[str, typer.Argument(help="Schema folder to add the file to.")],
    name: Annotated[
        str, typer.Argument(help="What the migration does, e.g. 'Add orders' (to add_orders).")
    ],
    timestamp: Annotated[
        bool,
        typer.Option(
            "--timestamp",
            help="Version the file by the UTC time, YYYYMMDDHHMMSS (automatic when the "
            "folder's newest file has such a version).",
        ),
    ] = False,
    down: Annotated[
        bool, typer.Option("--down", help="Create its .down.sql beside it, which reverts it.")
    ] = False,
    repeatable: Annotated[
        bool,
        typer.Option("--repeatable", help="Create R__NAME.sql: applied again whenever it changes."),
    ] = False,
) -> None:
    """Create the next numbered migration file in a schema folder, the name as [a-z0-9_]."""
    from migrator import commands

    with _run(ctx, "new") as (settings, reporter):
        result = commands.new(
            settings,
            schema=schema,
            name=name,
            timestamp=timestamp,
            down=down,
            repeatable=repeatable,
            reporter=reporter,
        )
        reporter.show(result)


@app.command()
def fleet(
    ctx: typer.Context,
    command: Annotated[FleetCommand, typer.Argument(help="What to run on every target.")],
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            metavar="FILE",
            help="One target per line: a URL, or NAME=URL; # comments; ${VAR} from the "
            "environment.",
        ),
    ] = None,
    targets_query: Annotated[
        str | None,
        typer.Option(
            "--targets-query",
            metavar="SQL",
            help="A query on the configured database whose rows are database names (on its "
            "server) or URLs.",
        ),
    ] = None,
    tenant_schemas: Annotated[
        str | None,
        typer.Option(
            "--tenant-schemas",
            metavar="SQL",
            help="A query on the configured database whose rows are schemas, each given the "
            "tenant_template folder's files with a journal of its own.",
        ),
    ] = None,
    parallel: Annotated[
        int, typer.Option("--parallel", metavar="N", help="Targets at a time.")
    ] = 4,
    canary: Annotated[
        int,
        typer.Option(
            "--canary", metavar="K", help="Run the first K targets alone first; stop if one fails."
        ),
    ] = 0,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="After a failure, go on with the other targets.")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option("--shard", metavar="I/N", help="Only share I of N of the targets."),
    ] = None,
    confirm: Annotated[
        str | None,
        typer.Option(
            "--confirm", metavar="N", help="In production: the number of targets, confirmed."
        ),
    ] = None,
) -> None:
    """Run migrate, status, validate or seed on many databases or tenant schemas, in parallel."""
    from migrator import commands
    from migrator.fleets import raise_for

    with _run(ctx, "fleet") as (settings, reporter):
        result = commands.fleet(
            settings,
            reporter=reporter,
            command=command.value,
            targets_file=targets,
            targets_query=targets_query,
            tenant_schemas=tenant_schemas,
            parallel=parallel,
            canary=canary,
            keep_going=keep_going,
            shard=shard,
            confirm=confirm,
        )
        reporter.show(result)
        raise_for(result)


@app.command()
def lint(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Schemas, or .sql files; default: the pending files (every file when no "
            "database is configured)."
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every file, down files too; no database needed.")
    ] = False,
    form: Annotated[
        LintFormat,
        typer.Option("--format", help="text, sarif (code scanning) or github (annotations)."),
    ] = LintFormat.text,
) -> None:
    """Check migrations with PostgreSQL's parser for statements that lock production tables."""
    from migrator import commands
    from migrator.errors import LintFailed

    given = targets or []
    paths = [name for name in given if name.endswith(".sql") or "/" in name or Path(name).is_file()]
    with _run(ctx, "lint") as (settings, reporter):
        if ctx.obj.json and form is not LintFormat.text:
            raise UsageError(f"--format {form.value} and --json go alone: give one of them")
        result = commands.lint(
            settings,
            reporter=reporter,
            select=[name for name in given if name not in paths],
            every=every,
            paths=paths,
        )
        options: Globals = ctx.obj
        if form is LintFormat.text or options.json:
            reporter.show(result)
        else:
            from migrator.output import lint_formatted

            sys.stdout.write(lint_formatted(result, form.value))
        if result.errors:
            raise LintFailed(
                f"lint: {result.errors} error{'s' if result.errors != 1 else ''} in "
                f"{result.files} file{'s' if result.files != 1 else ''}",
                hint="Each finding shows the safe way; quiet a rule for one chunk with -- "
                "migrator: lint-ignore=RULE, or for all in [tool.migrator.lint].",
            )


@app.command()
def dump(
    ctx: typer.Context,
    schemas: Schemas = None,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="PATH", help="Where (sql/schema.sql).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 3 with the diff when the file differs.")
    ] = False,
) -> None:
    """Write the managed schemas' schema-only dump, the same bytes for the same schema."""
    from migrator import commands

    with _run(ctx, "dump") as (settings, reporter):
        result = commands.dump(
            settings, reporter=reporter, select=schemas or (), out=out, check=check
        )
        reporter.show(result)


@app.command()
def verify(
    ctx: typer.Context,
    schemas: Schemas = None,
    shadow_url: Annotated[
        str | None,
        typer.Option(
            "--shadow-url",
            metavar="URL",
            help="A server to make the shadow database on (default: the embedded one).",
        ),
    ] = None,
) -> None:
    """Apply every file to a shadow database and compare its schema with the target's."""
    from migrator import commands

    with _run(ctx, "verify") as (settings, reporter):
        result = commands.verify(
            settings, reporter=reporter, select=schemas or (), shadow_url=shadow_url
        )
        reporter.show(result)


# goose and golang-migrate call it create: found either way, listed once.
app.command("create", hidden=True)(new)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main() -> None:
    """The console script. SIGTERM is handled like Ctrl-C (the statement in progress cancelled
    and rolled back, the lock released, "run again to resume"), but exits 143 instead of 130."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        app(prog_name="migrator")
    except KeyboardInterrupt as interrupt:  # while typer builds the commands, before _Group
        sys.exit(_interrupted(_early_reporter(sys.argv[1:], ""), interrupt))
