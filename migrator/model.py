"""The vocabulary: frozen dataclasses and enums shared by every module, nothing else."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class TxMode(enum.Enum):
    """How a migration's chunks are wrapped in transactions."""

    STATEMENT = "statement"
    SINGLE = "single-transaction"
    NONE = "no-transaction"


class ChunkKind(enum.Enum):
    """How one chunk must be sent."""

    TRANSACTIONAL = "transactional"
    AUTOCOMMIT = "autocommit"  # PostgreSQL refuses it inside a transaction block
    SELF_MANAGED = "self-managed"  # holds its own BEGIN ... COMMIT


@dataclass(frozen=True, slots=True)
class Chunk:
    """The text between two breakpoint markers, run as one unit."""

    index: int  # 1-based, as shown to users
    sql: str
    start: int  # offset of `sql` in the migration's text
    line: int  # line of the chunk's first statement in the file
    hash: str
    statements: int
    kind: ChunkKind
    reason: str = (
        ""  # why the chunk is autocommit or self-managed, e.g. "CREATE INDEX CONCURRENTLY"
    )


@dataclass(frozen=True, slots=True)
class SqlFile:
    """A migration file as discovered: normalized text and hash, not yet split."""

    schema: str
    version: int
    name: str  # file name, e.g. "0001_accounts.sql"
    path: str  # as shown to users, e.g. "sql/public/0001_accounts.sql"
    text: str
    hash: str
    when: int | None = None  # a drizzle-kit journal's timestamp for the file (milliseconds)
    down: SqlFile | None = None  # its <version>_<name>.down.sql, which reverts it
    repeatable: bool = False  # R__<name>.sql: no version, applied again whenever it changes


@dataclass(frozen=True, slots=True)
class Migration:
    """A migration file split into chunks, with its directives, ready to apply."""

    file: SqlFile
    mode: TxMode
    chunks: tuple[Chunk, ...]
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    sets_role: bool = False  # a chunk runs SET ROLE: the journal is written as the session user

    @property
    def chunk_hashes(self) -> tuple[str, ...]:
        """The hash of every chunk, in order."""
        return tuple(chunk.hash for chunk in self.chunks)


class RowStatus(enum.Enum):
    """The status column of a journal row."""

    RUNNING = "running"
    APPLIED = "applied"
    FAILED = "failed"
    BASELINE = "baseline"


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One row of "<schema>"."__migrations" (without the stored content)."""

    version: int
    name: str
    hash: str
    chunk_hashes: tuple[str, ...]
    status: RowStatus
    chunks_total: int
    chunks_done: int
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    applied_by: str | None = None
    down_hash: str | None = None  # the down file's hash when the file was applied
    down_chunks_done: int | None = None  # None unless a rollback of the file is unfinished
    down_chunk_hashes: tuple[str, ...] = ()  # the down's chunks when that rollback started


class FileState(enum.Enum):
    """What `status` says of one migration."""

    APPLIED = "applied"
    BASELINE = "baseline"
    PENDING = "pending"
    FAILED = "failed"
    RUNNING = "running"  # interrupted: a crashed or killed run
    CHANGED = "changed"
    MISSING = "missing"
    OUT_OF_ORDER = "out-of-order"
    UNLISTED = "unlisted"  # a .sql file a drizzle-kit journal does not list: never run
    REVERTING = "reverting"  # a rollback of it stopped partway: `rollback` resumes it
    DUE = "due"  # a repeatable file changed since it was applied: the next migrate runs it


@dataclass(frozen=True, slots=True)
class FileStatus:
    """One line of `status`: a file, a journal row, or both."""

    schema: str
    version: int
    name: str
    state: FileState
    path: str | None = None
    row: JournalRow | None = None
    detail: str = ""
    has_down: bool = False  # a .down.sql that reverts it is beside it

    @property
    def is_done(self) -> bool:
        """True for applied and baseline files."""
        return self.state in (FileState.APPLIED, FileState.BASELINE)

    @property
    def is_problem(self) -> bool:
        """True for states that make `migrate` refuse (drift, out of order)."""
        return self.state in (FileState.CHANGED, FileState.MISSING, FileState.OUT_OF_ORDER)


@dataclass(frozen=True, slots=True)
class RepeatableRow:
    """One row of "<schema>"."__migrations_repeatable": a repeatable file as last run."""

    name: str
    hash: str  # of the text last applied ("" before it ever was)
    status: str  # applied, failed, running (a no-transaction file cut short), due
    runs: int  # how many times it was applied
    error: str | None = None
    finished_at: datetime | None = None  # when it was last applied
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RepeatableStatus:
    """One repeatable file of `status`: applied, due, pending, failed or missing."""

    schema: str
    name: str
    state: FileState
    path: str | None = None
    row: RepeatableRow | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """One migration to apply, starting after `chunks_done` chunks (> 0 when resuming)."""

    migration: Migration
    chunks_done: int = 0
    forced: bool = False  # an applied migration run again with --only --force


@dataclass(frozen=True, slots=True)
class Reversal:
    """One journaled file to revert with its down file, from after `chunks_done` of the
    down's chunks (> 0 when resuming); `note` says what the plan should point out."""

    file: SqlFile
    row: JournalRow
    down: Migration
    chunks_done: int = 0
    note: str = ""  # e.g. the down file changed since the file was applied

    @property
    def step(self) -> Step:
        """The down file as a step, for the chunk events."""
        return Step(self.down, self.chunks_done)


@dataclass(frozen=True, slots=True)
class Plan:
    """The steps to apply in one schema, in order."""

    schema: str
    steps: tuple[Step, ...] = ()
    left: tuple[FileStatus, ...] = ()  # files left pending: beyond --to, or not --only's
    repeatables: tuple[Migration, ...] = ()  # due, run after the steps in name order


@dataclass(frozen=True, slots=True)
class Scope:
    """Which files a migrate applies: up to `to`, just `only` (again with `force`), whether
    pending files older than an applied one may run, and whether each needs a down file."""

    to: int | None = None
    only: str | None = None
    force: bool = False
    allow_out_of_order: bool = False
    require_down: bool = False  # a pending file without its .down.sql is refused


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What applying one step did: `chunks_run` of the file's `chunks_total` ran in this run."""

    schema: str
    version: int
    name: str
    path: str
    chunks_run: int
    chunks_total: int
    duration_ms: int
    repeatable: bool = False  # an R__ file (version 0)

    @property
    def resumed(self) -> bool:
        """True when earlier runs had done some of the file's chunks."""
        return self.chunks_run < self.chunks_total


@dataclass(frozen=True, slots=True)
class LockHolder:
    """The session that holds the runner's advisory lock."""

    pid: int
    application_name: str
    since: datetime | None
    query: str = ""


class SeedKind(enum.Enum):
    """What a seed process is written in."""

    SQL = "sql"
    PYTHON = "python"


@dataclass(frozen=True, slots=True)
class SeedFile:
    """A seed process as discovered: `name` is its path under seeds/ without the extension."""

    name: str
    path: str  # as shown to users, e.g. "seeds/catalog/1_products.sql"
    kind: SeedKind
    text: str
    hash: str


@dataclass(frozen=True, slots=True)
class SeedState:
    """One line of the seeds part of `status`."""

    name: str
    state: str  # pending, SUCCESS, FAIL, changed, missing
    path: str | None = None
    row: SeedRow | None = None
    detail: str = ""


class SeedStatus(enum.Enum):
    """The status column of the seed journal."""

    SUCCESS = "SUCCESS"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class SeedRow:
    """One row of public."__seeds"."""

    name: str
    status: SeedStatus
    hash: str
    always_run: bool
    runs: int
    error: str | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SeedOutcome:
    """What the seed run did with one process: ran, skipped, cleaned or failed."""

    name: str
    action: str
    duration_ms: int = 0
    error: str = ""
    ended_transaction: bool = False  # it committed or rolled back the runner's transaction
    detail: str = ""  # why a skipped process may deserve a look (its file changed)


@dataclass(frozen=True, slots=True)
class ServerMessage:
    """A NOTICE or WARNING the server sent while a migration or seed ran."""

    severity: str
    message: str
    detail: str = ""
    hint: str = ""


@dataclass(frozen=True, slots=True)
class Drift:
    """How an applied file differs from the text the journal keeps."""

    path: str
    diff: str
    whitespace_only: bool
    what: str = "changed since applied"  # the panel's title after the path


class Reporter(Protocol):
    """What the core tells the outside world while it works; it never prints itself. Every
    event does nothing by default, so a subclass hears only what it overrides."""

    def notice(self, message: str) -> None:
        """Something the user must not miss (a warning, the embedded server in use)."""
        return None  # not abstract: the default is to ignore it

    def info(self, message: str) -> None:
        """Progress worth a line (a schema dropped by reset)."""
        return None

    def server_message(self, message: ServerMessage) -> None:
        """A NOTICE or WARNING the server sent, from the file or seed last started."""
        return None

    def connected(self, target: str) -> None:
        """The session is open on `target` (password masked)."""
        return None

    def lock_waiting(self, holder: LockHolder | None) -> None:
        """Another session holds the advisory lock; the run waits for it."""
        return None

    def file_started(self, step: Step) -> None:
        """A migration file is about to run (from step.chunks_done when resuming)."""
        return None

    def chunks_started(self, step: Step, first: Chunk, last: Chunk) -> None:
        """The chunks first..last of the file go to the server now."""
        return None

    def chunk_done(self, step: Step, chunk: Chunk, duration_ms: int | None) -> None:
        """A chunk committed with its journal row (its time when known)."""
        return None

    def chunk_retry(self, step: Step, chunk: Chunk, attempt: int, delay: float) -> None:
        """A chunk hit lock_timeout and runs again after `delay` seconds."""
        return None

    def file_done(self, outcome: FileOutcome) -> None:
        """A migration file is applied."""
        return None

    def revert_started(self, reversal: Reversal) -> None:
        """An applied file is about to be reverted with its down file."""
        return None

    def file_reverted(self, outcome: FileOutcome) -> None:
        """A file is reverted: its journal row is gone, so it is pending again."""
        return None

    def seed_started(self, name: str) -> None:
        """A seed process (or its clean function) is about to run."""
        return None

    def target_started(self, name: str) -> None:
        """A fleet's target starts (its own connection, lock and command)."""
        return None

    def target_progress(self, name: str, applied: int) -> None:
        """A fleet's target has applied one more file."""
        return None

    def target_done(self, outcome: TargetOutcome) -> None:
        """A fleet's target is done, failed, or was stopped."""
        return None

    def seed_retry(self, name: str, attempt: int, delay: float) -> None:
        """A seed process hit lock_timeout, was rolled back, and runs again after `delay`."""
        return None

    def seed_done(self, outcome: SeedOutcome) -> None:
        """A seed process ran, was skipped, cleaned or failed."""
        return None

    def drift(self, drift: Drift) -> None:
        """An applied file differs from the text the journal keeps."""
        return None

    def review(self, preview: MigrateResult | RollbackResult | SeedResult | Sequence[str]) -> None:
        """What is about to change, before it is confirmed."""
        return None

    def ask(self, question: str) -> str | None:
        """The answer to `question`, or None when there is nobody to ask."""
        return None


class SilentReporter(Reporter):
    """The default reporter: hears everything, shows nothing, and cannot ask."""


# Results of the commands: what each public function of the package returns.


@dataclass(frozen=True, slots=True)
class MigrateResult:
    """What `migrate` did (or, on a dry run, would do) on `target`."""

    target: str
    applied: tuple[FileOutcome, ...]
    pending: tuple[FileStatus, ...]  # files not applied: beyond --to, or not chosen by --only
    plans: tuple[Plan, ...]
    unlisted: tuple[str, ...]  # files of drizzle-kit folders that their journal does not list
    files: int  # migration files found
    duration_ms: int
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class RollbackResult:
    """What `rollback` reverted in `schema` (or, on a dry run, would revert), newest first."""

    target: str
    schema: str
    reverted: tuple[FileOutcome, ...]  # chunks_run/chunks_total count the down file's chunks
    plan: tuple[Reversal, ...]
    duration_ms: int
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class StatusResult:
    """Every migration file and journal row, every seed process, and the drift diffs."""

    target: str
    migrations: tuple[FileStatus, ...]
    seeds: tuple[SeedState, ...]
    drift: tuple[Drift, ...]
    repeatables: tuple[RepeatableStatus, ...] = ()

    @property
    def open_work(self) -> tuple[str, ...]:
        """What `status --check` counts: migrations not done (but unlisted), seeds due or failed."""
        return tuple(
            [
                status.path or status.name
                for status in self.migrations
                if not status.is_done and status.state is not FileState.UNLISTED
            ]
            + [
                status.path or status.name
                for status in self.repeatables
                if status.state
                in (FileState.DUE, FileState.PENDING, FileState.FAILED, FileState.RUNNING)
            ]
            + [state.name for state in self.seeds if state.state in ("pending", "FAIL")]
        )


@dataclass(frozen=True, slots=True)
class ValidateResult:
    """Every file parses and the applied ones match the journal."""

    files: int
    unlisted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SeedPlanEntry:
    """One process a seed run would clean or run, and what runs."""

    name: str
    action: str  # clean, run
    sql: str


@dataclass(frozen=True, slots=True)
class SeedResult:
    """What `seed` did with each process (or, on a dry run, the plan)."""

    target: str
    outcomes: tuple[SeedOutcome, ...]
    plan: tuple[SeedPlanEntry, ...] = ()
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Repair:
    """One journal row `repair` changed: accepted an edit, cleared a run, or forgot a row."""

    schema: str
    version: int
    path: str
    action: str
    detail: str


@dataclass(frozen=True, slots=True)
class RepairResult:
    """The journal rows `repair` changed."""

    repairs: tuple[Repair, ...]


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """The files `baseline` journaled as applied without running them."""

    schema: str
    version: int
    baselined: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Adopted:
    """One file journaled from another runner's record (`entry`: that record, named)."""

    path: str
    drizzle_id: int | None
    entry: str = ""


@dataclass(frozen=True, slots=True)
class AdoptResult:
    """The files `adopt` journaled (or, on a dry run, would), how many were already, and what
    the tool records that no file matches, or with another checksum."""

    schema: str
    source: str
    adopted: tuple[Adopted, ...]
    already: int
    dry_run: bool
    tool: str = "drizzle"
    without_file: tuple[str, ...] = ()
    checksum_differs: tuple[str, ...] = ()
    reverted: tuple[str, ...] = ()  # files rollback reverted: not adopted again


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """A migration file `import` wrote (or would), from `source`; its down file, if any."""

    path: str
    source: str
    down: str = ""
    unchanged: bool = False  # already there with the same bytes


@dataclass(frozen=True, slots=True)
class Reported:
    """A source file `import` did not take, or took with a caveat, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What `import` wrote into the schema folder, and the source files it reported."""

    kind: str
    source: str
    schema: str
    files: tuple[ImportedFile, ...]
    reported: tuple[Reported, ...]
    warnings: tuple[Reported, ...]
    dry_run: bool


@dataclass(frozen=True, slots=True)
class ResetResult:
    """The schemas `reset` dropped, and the migrate that followed."""

    schemas: tuple[str, ...]
    migrate: MigrateResult


@dataclass(frozen=True, slots=True)
class NewResult:
    """The file `new` created, and its down file when asked for one."""

    path: str
    down: str = ""


@dataclass(frozen=True, slots=True)
class TargetOutcome:
    """What a fleet's command did on one target."""

    target: str  # its name: name= in the targets file, the database, the tenant schema
    state: str  # done, failed, locked (its lock wait timed out), skipped, interrupted
    applied: int = 0  # files (seed processes, for seed) this run applied there
    left: int = 0  # what is left to do there: migrate's pending files, status's open work
    duration_ms: int = 0
    error: str = ""
    exit_code: int = 0  # what the command alone would have exited with
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FleetResult:
    """Every target's outcome, in the order of the target list."""

    outcomes: tuple[TargetOutcome, ...]
    interrupted: bool = False  # Ctrl-C or SIGTERM stopped the fleet
    signal: str = ""  # SIGINT or SIGTERM, when it did


@dataclass(frozen=True, slots=True)
class Finding:
    """What lint found at a place in a file: a rule's name, severity, what happens, the fix."""

    path: str
    line: int
    column: int
    rule: str
    severity: str  # error, warning
    message: str
    fix: str


@dataclass(frozen=True, slots=True)
class LintResult:
    """Every finding of the files linted, and how many files."""

    findings: tuple[Finding, ...]
    files: int

    @property
    def errors(self) -> int:
        """How many findings are errors."""
        return sum(finding.severity == "error" for finding in self.findings)


@dataclass(frozen=True, slots=True)
class DumpResult:
    """The schema dump written (or, with --check, compared) at `path`."""

    path: str
    lines: int
    checked: bool = False  # compared with the file, which matched


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The target's schema matched what the files make on a shadow database."""

    target: str
    shadow: str  # the shadow database's name (dropped afterwards)
    schemas: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SettingRow:
    """One line of `config`: a setting, its value as shown (password masked), its source."""

    name: str
    value: str
    source: str


@dataclass(frozen=True, slots=True)
class ConfigResult:
    """Every setting with where it came from."""

    settings: tuple[SettingRow, ...]
