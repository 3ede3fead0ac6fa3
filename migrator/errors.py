"""One error hierarchy; each class carries the exit code the CLI returns for it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from migrator.model import FileOutcome, FileStatus


class MigratorError(Exception):
    """An expected failure, reported to the user without a traceback."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class MigrationFailed(MigratorError):
    """A chunk failed on the server and its file is marked failed in the journal; `applied`
    holds the files this run applied before it, `pending` those it left (goose's PartialError)."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str,
        chunk: int,
        chunks_total: int,
        location: str,
        reason: str,
        sqlstate: str | None = None,
        detail: str | None = None,
        hint: str = "",
        excerpt: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.chunk = chunk
        self.chunks_total = chunks_total
        self.location = location
        self.reason = reason  # the server's message alone
        self.sqlstate = sqlstate
        self.detail = detail
        self.excerpt = excerpt
        self.applied: tuple[FileOutcome, ...] = ()
        self.reverted: tuple[FileOutcome, ...] = ()  # for rollback: the files it reverted
        self.pending: tuple[FileStatus, ...] = ()  # the failed file and those after it


class FleetFailed(MigratorError):
    """Targets of a fleet failed; the others' outcomes are in the result."""

    exit_code = 1


class LintFailed(MigratorError):
    """Lint found errors (warnings alone pass); `pending`: the files a refused migrate left."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.pending: tuple[FileStatus, ...] = ()


class FleetInterrupted(MigratorError):
    """SIGINT stopped a fleet; every target's outcome is in the result."""

    exit_code = 130


class FleetTerminated(FleetInterrupted):
    """SIGTERM stopped a fleet."""

    exit_code = 143


class SeedFailed(MigratorError):
    """A seed process or hook failed; its writes were rolled back and FAIL recorded."""

    exit_code = 1


class ConfigError(MigratorError):
    """Bad settings, options or project layout (`problems`: each, when there are several)."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str = "", problems: Sequence[str] = ()) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems)


class UsageError(ConfigError):
    """The command line does not parse: an unknown command or option, a missing or bad value."""


class BadFile(MigratorError):
    """One or more migration or seed files cannot be read, named, split or loaded; nothing ran."""

    exit_code = 2

    def __init__(self, problems: list[str], *, hint: str = "") -> None:
        message = problems[0] if len(problems) == 1 else f"{len(problems)} problems in the files"
        super().__init__(message, hint=hint)
        self.problems = problems


class CannotConnect(MigratorError):
    """The database cannot be reached or the URL is not valid."""

    exit_code = 2


class DriftError(MigratorError):
    """Applied files changed, journaled files are missing, or a version is out of order."""

    exit_code = 3

    def __init__(self, message: str, *, problems: list[str], hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.problems = problems


class PendingWork(MigratorError):
    """`status --check` found pending, failed or drifted migrations."""

    exit_code = 3


class Refused(MigratorError):
    """Not confirmed, guarded, or forbidden in this environment."""

    exit_code = 4


class Cancelled(Refused):
    """The operator answered no: nothing was changed (said plainly, not as an error)."""


class LockNotAcquired(MigratorError):
    """Another runner held the advisory lock for longer than lock_wait."""

    exit_code = 5


class ConnectionLost(MigratorError):
    """The server connection broke mid-run; the journal holds exactly what committed."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that psycopg cancels the statement in progress; exit 143.

    A KeyboardInterrupt, not a MigratorError: psycopg sends the server a cancel request only
    for KeyboardInterrupt and SystemExit, then the transaction rolls back and the advisory
    lock is released on the way out, as for Ctrl-C (which exits 130).
    """

    exit_code = 143
