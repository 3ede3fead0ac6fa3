"""The vocabulary: frozen dataclasses and enums shared by every module, nothing else."""

from __future__ import annotations

import enum
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

    @property
    def is_done(self) -> bool:
        """True for applied and baseline files."""
        return self.state in (FileState.APPLIED, FileState.BASELINE)

    @property
    def is_problem(self) -> bool:
        """True for states that make `migrate` refuse (drift, out of order)."""
        return self.state in (FileState.CHANGED, FileState.MISSING, FileState.OUT_OF_ORDER)


@dataclass(frozen=True, slots=True)
class Step:
    """One migration to apply, starting after `chunks_done` chunks (> 0 when resuming)."""

    migration: Migration
    chunks_done: int = 0
    forced: bool = False  # an applied migration run again with --only --force


@dataclass(frozen=True, slots=True)
class Plan:
    """The steps to apply in one schema, in order."""

    schema: str
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What applying one step did."""

    schema: str
    path: str
    chunks_run: int
    chunks_total: int
    duration_ms: int
    resumed_at: int = 0  # chunks already done before this run


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


class Reporter(Protocol):
    """What the core tells the outside world while it works; it never prints itself."""

    def lock_waiting(self, holder: LockHolder | None) -> None: ...
    def file_started(self, step: Step) -> None: ...
    def chunk_done(self, step: Step, chunk: Chunk, duration_ms: int | None) -> None: ...
    def chunk_retry(self, step: Step, chunk: Chunk, attempt: int, delay: float) -> None: ...
    def file_done(self, outcome: FileOutcome) -> None: ...
    def seed_retry(self, name: str, attempt: int, delay: float) -> None: ...
    def seed_done(self, outcome: SeedOutcome) -> None: ...
