"""Seed processes: discovery, loading, the clean phase, hooks, and the SUCCESS/FAIL journal."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from migrator import db, seed_journal, sqlfile
from migrator.discovery import display, name_problem, shown
from migrator.engine import RETRY_DELAY, describe
from migrator.errors import BadFile, ConfigError, SeedFailed
from migrator.model import (
    ChunkKind,
    Migration,
    Reporter,
    SeedFile,
    SeedKind,
    SeedOutcome,
    SeedPlanEntry,
    SeedRow,
    SeedState,
    SeedStatus,
    SqlFile,
)

if TYPE_CHECKING:
    from migrator.settings import Settings

SEED_NAME = re.compile(r"(\d+)_[^/\\]+\.(sql|py)")
SEED_DIRECTIVES = frozenset({"always-run", "lock-timeout", "statement-timeout"})
HOOKS = (
    "before_cleanup",
    "after_cleanup",
    "before_migration",
    "after_migration",
    "on_success",
    "on_error",
)
HOOKS_FILE = "_hooks.py"


def discover(seeds_dir: Path) -> list[SeedFile]:
    """Every process under seeds_dir, ordered by folder, then by its number; [] if no folder."""
    if not seeds_dir.is_dir():
        if seeds_dir.exists():
            raise ConfigError(
                f"seeds folder {display(seeds_dir)} is not a folder",
                hint="Point --seeds-dir / MIGRATOR_SEEDS_DIR at the folder of seed processes.",
            )
        return []
    found: list[tuple[tuple[str, ...], int, str, SeedFile]] = []
    problems: list[str] = []
    root = display(seeds_dir)
    for folder, subfolders, names in os.walk(seeds_dir):
        subfolders[:] = [name for name in subfolders if not name.startswith(("_", "."))]
        parts = Path(folder).relative_to(seeds_dir).parts
        if parts and (problem := name_problem(parts[-1])):  # a folder not named in UTF-8
            problems.append(
                f"{root}/{'/'.join(map(shown, parts))}: {problem.replace('file', 'folder')}"
            )
            subfolders[:] = []
            continue
        for filename in names:
            if filename.startswith(("_", ".")):
                continue
            if problem := name_problem(filename):
                problems.append(f"{root}/{'/'.join((*parts, shown(filename)))}: {problem}")
                continue
            if not filename.endswith((".sql", ".py")):
                continue
            relative = "/".join((*parts, filename))
            path = f"{root}/{relative}"
            if not Path(folder, filename).is_file():  # reading a FIFO would wait forever
                problems.append(f"{path}: not a regular file")
                continue
            match = SEED_NAME.fullmatch(filename)
            if match is None:
                problems.append(f"{path}: name does not fit <n>_<name>.sql or <n>_<name>.py")
                continue
            try:
                text = sqlfile.normalize(Path(folder, filename).read_bytes(), path)
            except BadFile as exc:
                problems.extend(exc.problems)
                continue
            except OSError as exc:
                problems.append(f"{path}: cannot read ({exc.strerror or exc})")
                continue
            kind = SeedKind.SQL if match[2] == "sql" else SeedKind.PYTHON
            seed = SeedFile(relative.rsplit(".", 1)[0], path, kind, text, sqlfile.sha256(text))
            found.append((parts, int(match[1]), filename, seed))
    paths: dict[str, str] = {}  # process name -> the first file of that name
    for _, _, _, seed in found:
        if seed.name in paths:
            problems.append(f"{paths[seed.name]} and {seed.path}: two processes named {seed.name}")
        paths.setdefault(seed.name, seed.path)
    if problems:
        raise BadFile(problems, hint="Nothing was seeded. Fix the files and run again.")
    found.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in found]


CHANGED = "changed since it ran; it runs again only when named"


def assess(files: Sequence[SeedFile], rows: Mapping[str, SeedRow]) -> list[SeedState]:
    """The state of every seed process and every journal row whose file is gone."""
    states = []
    for file in files:
        row = rows.get(file.name)
        if row is None:
            states.append(SeedState(file.name, "pending", file.path))
        elif row.status is SeedStatus.FAIL:
            detail = (row.error or "").split("\n", 1)[0]
            states.append(SeedState(file.name, "FAIL", file.path, row, detail))
        elif row.hash != file.hash:
            detail = f"{CHANGED}: seed --only {file.name}"
            states.append(SeedState(file.name, "changed", file.path, row, detail))
        else:
            detail = "always runs" if row.always_run else ""
            states.append(SeedState(file.name, "SUCCESS", file.path, row, detail))
    names = {file.name for file in files}
    for name, row in rows.items():
        if name not in names:
            states.append(SeedState(name, "missing", None, row, "journaled, but the file is gone"))
    return states


@dataclass(frozen=True, slots=True)
class Process:
    """A loaded seed process, ready to run."""

    file: SeedFile
    always_run: bool
    run: Callable[[db.Connection], None]
    clean: Callable[[db.Connection], None] | None = None
    migration: Migration | None = None  # the split text of a SQL process


@dataclass(frozen=True, slots=True)
class Choice:
    """Which processes a seed run takes: just `only` (whatever their status), after cleaning
    them (`clean`); and whether it goes on after a failure (`keep_going`)."""

    only: tuple[str, ...] = ()
    clean: bool = False
    keep_going: bool = False


def load(
    files: Sequence[SeedFile], seeds_dir: Path
) -> tuple[list[Process], dict[str, Callable[..., Any]]]:
    """Split SQL processes, import Python ones and the hooks; BadFile names every problem."""
    processes: list[Process] = []
    problems: list[str] = []
    for number, file in enumerate(files):
        try:
            if file.kind is SeedKind.SQL:
                processes.append(_load_sql(file))
            else:
                path = seeds_dir / f"{file.name}.py"
                module = _import(path, file.path, number)
                processes.append(_from_module(module, file))
        except BadFile as exc:
            problems.extend(exc.problems)
    hooks: dict[str, Callable[..., Any]] = {}
    hooks_path = seeds_dir / HOOKS_FILE
    if hooks_path.is_file():
        try:
            module = _import(hooks_path, display(hooks_path), len(files))
            hooks = {
                name: getattr(module, name)
                for name in HOOKS
                if callable(getattr(module, name, None))
            }
        except BadFile as exc:
            problems.extend(exc.problems)
    if problems:
        raise BadFile(problems, hint="Nothing was seeded. Fix the files and run again.")
    return processes, hooks


def _load_sql(file: SeedFile) -> Process:
    number = int(file.name.rsplit("/", 1)[-1].split("_", 1)[0])
    source = SqlFile("public", number, file.name, file.path, file.text, file.hash)
    migration = sqlfile.parse(source, allowed=SEED_DIRECTIVES)
    directives, _ = sqlfile.read_directives(file.text, file.path, allowed=SEED_DIRECTIVES)
    problems = [
        f"{file.path}:{chunk.line}: {chunk.reason} cannot run in a seed, whose chunks share "
        "one transaction"
        for chunk in migration.chunks
        if chunk.kind is not ChunkKind.TRANSACTIONAL
    ]
    if problems:
        raise BadFile(problems)

    def run(conn: db.Connection) -> None:
        for chunk in migration.chunks:
            try:
                conn.execute(chunk.sql)  # the user's SQL, sent as written
            except psycopg.Error as exc:
                raise _SqlSeedError(describe(migration, chunk, exc).message) from exc

    return Process(file, directives.always_run, run, None, migration)


class _SqlSeedError(Exception):
    """A failed chunk of a SQL seed, already described as file:line:col."""


def _import(path: Path, shown: str, number: int) -> ModuleType:
    stem = re.sub(r"\W", "_", path.stem)
    name = f"migrator_seed_{number}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadFile([f"{shown}: cannot be imported"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up there
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise BadFile([f"{shown}:{exc.lineno}: {exc.msg}"]) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # whatever the module raises while it imports, sys.exit too
        raise BadFile([f"{_where(exc, path, shown)}: {type(exc).__name__}: {exc}"]) from None
    return module


def _where(exc: BaseException, path: Path, shown: str) -> str:
    """file:line of the deepest frame of `exc` in `path` (just the file when there is none)."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename).resolve() == path.resolve()
    ]
    return f"{shown}:{lines[-1]}" if lines else shown


def _from_module(module: ModuleType, file: SeedFile) -> Process:
    run = getattr(module, "run", None)
    if not callable(run):
        raise BadFile([f"{file.path}: has no run(conn) function"])
    clean = getattr(module, "clean", None)
    if clean is not None and not callable(clean):
        raise BadFile([f"{file.path}: clean is not a function"])
    return Process(file, bool(getattr(module, "ALWAYS_RUN", False)), run, clean)


def check_only(processes: Sequence[Process], only: Sequence[str]) -> None:
    """ConfigError when --only names a process that does not exist, listing the names."""
    names = {process.file.name for process in processes}
    unknown = [name for name in only if name not in names]
    if unknown:
        raise ConfigError(
            f"no seed process named {', '.join(unknown)}",
            hint=f"Processes: {', '.join(sorted(names)) or 'none'}.",
        )


def plan(
    processes: Sequence[Process], rows: Mapping[str, SeedRow], choice: Choice
) -> tuple[list[Process], list[Process]]:
    """The processes to clean (last first) and to run (in order); the others are skipped."""
    check_only(processes, choice.only)
    selected = [p for p in processes if not choice.only or p.file.name in choice.only]
    to_clean = [p for p in reversed(selected) if choice.clean and p.clean is not None]
    cleaned = {p.file.name for p in to_clean}
    to_run = []
    for process in selected:
        row = rows.get(process.file.name)
        done = row is not None and row.status is SeedStatus.SUCCESS
        if not done or choice.only or process.always_run or process.file.name in cleaned:
            to_run.append(process)
    return to_clean, to_run


def describe_plan(
    to_clean: Sequence[Process], to_run: Sequence[Process]
) -> tuple[SeedPlanEntry, ...]:
    """What a seed run would clean and run, for a dry run or a confirmation."""
    described = [SeedPlanEntry(process.file.name, "clean", "") for process in to_clean]
    for process in to_run:
        text = (
            process.file.text
            if process.file.kind is SeedKind.SQL
            else f"run(conn) in {process.file.path}"
        )
        described.append(SeedPlanEntry(process.file.name, "run", text))
    return tuple(described)


def seed(
    conn: db.Connection,
    processes: Sequence[Process],
    hooks: Mapping[str, Callable[..., Any]],
    settings: Settings,
    choice: Choice,
    reporter: Reporter,
    confirm: Callable[[tuple[SeedPlanEntry, ...]], None] = lambda plan: None,
) -> list[SeedOutcome]:
    """Under the advisory lock: the optional clean phase, then every process due, in order."""
    with db.advisory_lock(conn, settings.lock_wait, reporter.lock_waiting):
        rows = seed_journal.read(conn, settings.seeds_table)
        to_clean, to_run = plan(processes, rows or {}, choice)
        if to_clean or to_run:
            confirm(describe_plan(to_clean, to_run))
        if rows is None and (to_clean or to_run):  # nothing due: write nothing, not even this
            seed_journal.ensure(conn, settings.seeds_table)
        outcomes: list[SeedOutcome] = []
        if choice.clean:
            _hook(conn, hooks, "before_cleanup")
            outcomes.extend(_clean(conn, process, settings, reporter) for process in to_clean)
            _hook(conn, hooks, "after_cleanup")
        due = {process.file.name for process in to_run}
        if due or to_clean:  # with nothing due, nothing runs: no hooks either
            _hook(conn, hooks, "before_migration")
        failures: list[SeedOutcome] = []
        for process in processes:
            if process.file.name not in due:
                if not choice.only or process.file.name in choice.only:
                    row = (rows or {}).get(process.file.name)
                    changed = row is not None and row.hash != process.file.hash
                    detail = f"{CHANGED}: seed --only {process.file.name}" if changed else ""
                    outcome = SeedOutcome(process.file.name, "skipped", detail=detail)
                    reporter.seed_done(outcome)
                    outcomes.append(outcome)
                continue
            outcome = _run(conn, process, settings, reporter)
            reporter.seed_done(outcome)
            outcomes.append(outcome)
            if outcome.action == "failed":
                failures.append(outcome)
                _hook(conn, hooks, "on_error", process.file.name, outcome.error)
                if not choice.keep_going:
                    break
            else:
                _hook(conn, hooks, "on_success", process.file.name)
        if failures:
            names = ", ".join(failure.name for failure in failures)
            ended = any(failure.ended_transaction for failure in failures)
            done = (
                "Some of its writes are committed (see above)"
                if ended
                else ("Its writes were rolled back")
            )
            raise SeedFailed(
                f"seed process {names} failed: {failures[0].error.splitlines()[0]}",
                hint=f"{done} and FAIL recorded in the seed journal; fix it and run again "
                "(processes already SUCCESS are skipped).",
            )
        if due or to_clean:
            _hook(conn, hooks, "after_migration")
        return outcomes


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _run(
    conn: db.Connection, process: Process, settings: Settings, reporter: Reporter
) -> SeedOutcome:
    """Run a process in a transaction whose commit records SUCCESS; on error record FAIL.

    A process that hits lock_timeout (55P03) was rolled back whole, so it runs again, up to
    lock_retries times with a doubling delay, before it fails naming the blocking session."""
    lock_timeout, statement_timeout = settings.lock_timeout, settings.statement_timeout
    if process.migration is not None:
        lock_timeout = process.migration.lock_timeout or lock_timeout
        statement_timeout = process.migration.statement_timeout or statement_timeout
    db.reset_session(conn, "public", lock_timeout, statement_timeout)
    started = time.monotonic()
    name = process.file.name
    reporter.seed_started(name)
    attempt = 0
    ended = False
    while True:
        try:
            with conn.transaction():
                conn.execute(f"SAVEPOINT {_MARK}")  # gone if the process ends the transaction
                try:
                    process.run(conn)
                finally:
                    ended = _ended(conn)
                if ended:
                    raise _EndedTransaction
                if not seed_journal.holds_lock(conn):
                    raise _LockReleased
                seed_journal.record(
                    conn,
                    settings.seeds_table,
                    process.file,
                    SeedStatus.SUCCESS,
                    always_run=process.always_run,
                    duration_ms=_ms_since(started),
                )
            return SeedOutcome(name, "ran", _ms_since(started))
        except KeyboardInterrupt:
            raise  # Ctrl-C and SIGTERM interrupt the run, with their own exit codes
        except BaseException as exc:  # a process may raise anything, sys.exit too: it fails
            if isinstance(exc, _LockReleased):  # another runner may be in: record nothing
                raise SeedFailed(f"seed process {name} failed: {exc}", hint=LOCK_RELEASED) from None
            cause = _server_error(exc)
            if conn.broken:
                raise db.connection_lost(f"seed process {name}", cause or exc) from exc
            timed_out = isinstance(cause, pg_errors.LockNotAvailable)
            if ended or not timed_out or attempt == settings.lock_retries:
                error = _describe(exc, process)
                if timed_out:
                    error = _blocked(conn, error, attempt)
                if ended and not isinstance(exc, _EndedTransaction):
                    error += f"; {ENDED}"
                break
        attempt += 1
        delay = RETRY_DELAY * 2 ** (attempt - 1)
        reporter.seed_retry(name, attempt, delay)
        time.sleep(delay)
    seed_journal.record(
        conn,
        settings.seeds_table,
        process.file,
        SeedStatus.FAIL,
        always_run=process.always_run,
        duration_ms=_ms_since(started),
        error=error,
    )
    return SeedOutcome(name, "failed", _ms_since(started), error, ended)


ENDED = (
    "it ended the runner's transaction itself (COMMIT or ROLLBACK), so what it wrote before "
    "that is committed: it was not rolled back"
)


_MARK = "migrator_seed_process"


def _ended(conn: db.Connection) -> bool:
    """Whether the process ended the transaction the runner gave it (COMMIT, ROLLBACK, also
    followed by a BEGIN): then the savepoint taken at its start is gone."""
    status = conn.info.transaction_status
    if status == TransactionStatus.IDLE:
        return True
    try:
        verb = "ROLLBACK TO" if status == TransactionStatus.INERROR else "RELEASE"
        conn.execute(f"{verb} SAVEPOINT {_MARK}")
    except psycopg.errors.InvalidSavepointSpecification:
        return True
    except psycopg.Error:
        return False  # the transaction is in trouble already: the process's error tells
    return False


class _EndedTransaction(Exception):
    """A process committed or rolled back the transaction the runner gave it."""

    def __str__(self) -> str:
        return "the process ended the runner's transaction"


class _LockReleased(Exception):
    """A process released the runner's advisory lock."""

    def __str__(self) -> str:
        return "it released the runner's advisory lock"


LOCK_RELEASED = (
    "It called pg_advisory_unlock_all() or pg_advisory_unlock, which lets another runner in: "
    "its transaction was rolled back and nothing was recorded. Keep advisory-lock calls out "
    "of seed processes."
)


def _blocked(conn: db.Connection, error: str, retries: int) -> str:
    """A lock_timeout failure with how often it was retried and who held the lock."""
    if retries:
        error += " (retried once)" if retries == 1 else f" (retried {retries} times)"
    return f"{error}; {db.describe_blockers(db.blockers(conn))}"


def _server_error(exc: BaseException) -> psycopg.Error | None:
    """The server's error behind a process's failure, if that is what it was."""
    if isinstance(exc, psycopg.Error):
        return exc
    if isinstance(exc.__cause__, psycopg.Error):
        return exc.__cause__
    return None


def _describe(exc: BaseException, process: Process) -> str:
    if isinstance(exc, _SqlSeedError):
        return str(exc)
    shown = process.file.path
    if isinstance(exc, _EndedTransaction):
        return f"{shown}: {ENDED}"
    if isinstance(exc, psycopg.Error):
        message = exc.diag.message_primary or " ".join(str(exc).split())
        where = _where(exc, Path(shown), shown)
        return f"{where}: {message} [SQLSTATE {exc.sqlstate}]"
    return f"{_where(exc, Path(shown), shown)}: {type(exc).__name__}: {exc}"


def _clean(
    conn: db.Connection, process: Process, settings: Settings, reporter: Reporter
) -> SeedOutcome:
    assert process.clean is not None
    db.reset_session(conn, "public", settings.lock_timeout, settings.statement_timeout)
    reporter.seed_started(process.file.name)
    started = time.monotonic()
    try:
        with conn.transaction():
            process.clean(conn)
            seed_journal.forget(conn, settings.seeds_table, process.file.name)
    except Exception as exc:  # a clean function may raise anything
        error = _describe(exc, process)
        raise SeedFailed(f"cleaning {process.file.name} failed: {error}") from None
    outcome = SeedOutcome(process.file.name, "cleaned", _ms_since(started))
    reporter.seed_done(outcome)
    return outcome


def _hook(
    conn: db.Connection, hooks: Mapping[str, Callable[..., Any]], name: str, *args: Any
) -> None:
    """Call a hook with the connection, in a transaction of its own; SeedFailed if it raises."""
    hook = hooks.get(name)
    if hook is None:
        return
    try:
        with conn.transaction():
            hook(conn, *args)
    except Exception as exc:  # a hook may raise anything
        raise SeedFailed(f"{HOOKS_FILE}: hook {name} failed: {type(exc).__name__}: {exc}") from None
