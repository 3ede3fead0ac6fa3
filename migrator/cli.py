"""The command line: global options, thin commands, and the one place errors become exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from migrator import __version__
from migrator.errors import ConfigError, DriftError, MigratorError, PendingWork

if TYPE_CHECKING:  # the commands import these lazily, to keep start-up fast
    from migrator.db import Connection
    from migrator.model import SqlFile
    from migrator.output import Output
    from migrator.settings import Settings

app = typer.Typer(
    name="migrator",
    help="Apply numbered .sql files to PostgreSQL, one transaction per statement, "
    "with a resumable journal per schema.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@dataclass(frozen=True, slots=True)
class Globals:
    """The global options, handed to every command."""

    database_url: str | None
    sql_dir: Path | None
    seeds_dir: Path | None
    env: str | None
    quiet: bool
    verbose: bool


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
            help="postgresql://user:password@host:port/dbname (default: MIGRATOR_DATABASE_URL, "
            "DATABASE_URL, libpq PG* variables, else the embedded server in development)",
            show_default=False,
        ),
    ] = None,
    sql_dir: Annotated[
        Path | None,
        typer.Option(
            "--sql-dir", help="Migrations folder, one subfolder per schema (default: sql)"
        ),
    ] = None,
    seeds_dir: Annotated[
        Path | None,
        typer.Option("--seeds-dir", help="Seed processes folder (default: seeds)"),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option("--env", help="development, staging or production (default: development)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only errors and results.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show every chunk.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Global options, given before the command."""
    ctx.obj = Globals(database_url, sql_dir, seeds_dir, env, quiet, verbose)


Schemas = Annotated[
    list[str] | None,
    typer.Argument(help="Schemas (folders under the migrations folder); default: all"),
]


@contextmanager
def reported_errors(output: Output) -> Iterator[None]:
    """Turn expected errors into a message on stderr and their exit code; nothing else."""
    import psycopg

    try:
        yield
    except MigratorError as error:
        output.failure(error)
        raise typer.Exit(error.exit_code) from None
    except psycopg.Error as error:
        output.failure(MigratorError(f"database error: {' '.join(str(error).split())}"))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        output.notice("interrupted: the journal records what was done; run again to resume")
        raise typer.Exit(130) from None


def _output(ctx: typer.Context) -> Output:
    from migrator.output import Output

    options: Globals = ctx.obj
    return Output(quiet=options.quiet, verbose=options.verbose)


def _settings(ctx: typer.Context) -> Settings:
    from migrator import settings

    options: Globals = ctx.obj
    return settings.load(
        database_url=options.database_url,
        sql_dir=options.sql_dir,
        seeds_dir=options.seeds_dir,
        env=options.env,
    )


def _connect(config: Settings, output: Output) -> Connection:
    from migrator import db, embedded, settings

    target = settings.target(config)
    if target is not None:
        return db.connect(target.conninfo)
    if config.env != "development":
        raise ConfigError(
            f"no database configured for the {config.env} environment",
            hint="Set MIGRATOR_DATABASE_URL (or DATABASE_URL, or --database-url).",
        )
    output.notice(
        f"No database configured: using the embedded PostgreSQL in {config.embedded_dir}/ "
        "(set MIGRATOR_DATABASE_URL to use your own)."
    )
    return db.connect(embedded.start(config.embedded_dir))


def _files(config: Settings, schemas: list[str] | None) -> dict[str, tuple[SqlFile, ...]]:
    from migrator import discovery

    available = discovery.find_schemas(config.sql_dir, config.schemas)
    selected = discovery.select_schemas(available, tuple(schemas or ()))
    return discovery.load(config.sql_dir, selected)


@app.command()
def migrate(
    ctx: typer.Context,
    schemas: Schemas = None,
    to: Annotated[int | None, typer.Option("--to", help="Stop after this version.")] = None,
    allow_out_of_order: Annotated[
        bool,
        typer.Option(
            "--allow-out-of-order",
            help="Apply pending files older than the newest applied one (merged branches).",
        ),
    ] = False,
) -> None:
    """Apply every pending migration, schema by schema; resume failed or interrupted ones."""
    from migrator import runner

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        files = _files(config, schemas)
        options = runner.Options(
            journal_table=config.journal_table,
            lock_timeout=config.lock_timeout,
            statement_timeout=config.statement_timeout,
            lock_retries=config.lock_retries,
            lock_wait=config.lock_wait,
            to=to,
            allow_out_of_order=allow_out_of_order,
        )
        with _connect(config, output) as conn:
            outcomes = runner.migrate(conn, files, options, output)
        output.migrated(outcomes, sum(len(found) for found in files.values()))


@app.command()
def status(
    ctx: typer.Context,
    schemas: Schemas = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 3 when anything is pending, failed or drifted.")
    ] = False,
) -> None:
    """Show every migration (applied, pending, failed at chunk k, changed, missing) and seed."""
    from migrator import db, journal, runner, seeds

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        files = _files(config, schemas)
        seed_files = [] if schemas else seeds.discover(config.seeds_dir)
        with _connect(config, output) as conn:
            statuses = runner.assess(conn, files, config.journal_table)
            output.status(db.mask(conn.info.dsn), statuses)
            seed_states = seeds.assess(
                seed_files, journal.read_seeds(conn, config.seeds_table) or {}
            )
            if seed_states:
                output.seed_status(seed_states)
        open_work = [s for s in statuses if not s.is_done] + [
            s for s in seed_states if s.state in ("pending", "FAIL")
        ]
        if check and open_work:
            raise PendingWork(
                f"{len(open_work)} migration(s) or seed(s) pending, failed or drifted"
            )


@app.command()
def validate(ctx: typer.Context, schemas: Schemas = None) -> None:
    """Check every file parses and matches the journal; exit 3 on drift."""
    from migrator import runner, sqlfile
    from migrator.errors import BadFile

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        files = _files(config, schemas)
        problems: list[str] = []
        for file in (file for found in files.values() for file in found):
            try:
                sqlfile.parse(file)
            except BadFile as exc:
                problems.extend(exc.problems)
        if problems:
            raise BadFile(problems)
        with _connect(config, output) as conn:
            statuses = runner.assess(conn, files, config.journal_table)
        drift = [f"{s.path or s.name}: {s.detail}" for s in statuses if s.is_problem]
        if drift:
            raise DriftError("the migrations on disk disagree with the journal", problems=drift)
        output.out.print(f"ok: {len(statuses)} migration files parse and match the journal")


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
) -> None:
    """Run the seed processes under seeds/ that are due; record SUCCESS or FAIL for each."""
    from migrator import seeds

    output = _output(ctx)
    with reported_errors(output):
        config = _settings(ctx)
        processes, hooks = seeds.load(seeds.discover(config.seeds_dir), config.seeds_dir)
        seeds.check_only(processes, only or ())
        options = seeds.Options(
            table=config.seeds_table,
            only=tuple(only or ()),
            clean=clean,
            keep_going=keep_going,
            lock_wait=config.lock_wait,
            lock_timeout=config.lock_timeout,
            statement_timeout=config.statement_timeout,
        )
        with _connect(config, output) as conn:
            outcomes = seeds.seed(conn, processes, hooks, options, output)
        output.seeded(outcomes)


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
        output.out.print(f"created {discovery.display(path)}", markup=False)


def main() -> None:
    """The console script."""
    app(prog_name="migrator")
