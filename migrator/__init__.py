"""migrator: a pure-SQL, file-based PostgreSQL migration runner; one function per command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

__all__ = [
    "AdoptResult",
    "BadFile",
    "BaselineResult",
    "Cancelled",
    "CannotConnect",
    "ConfigError",
    "ConfigResult",
    "ConnectionLost",
    "DriftError",
    "DumpResult",
    "FileOutcome",
    "FileState",
    "FileStatus",
    "FleetFailed",
    "FleetResult",
    "ImportResult",
    "LintFailed",
    "LintResult",
    "LockNotAcquired",
    "MigrateResult",
    "MigrationFailed",
    "MigratorError",
    "NewResult",
    "PendingWork",
    "Refused",
    "RepairResult",
    "Reporter",
    "ResetResult",
    "RollbackResult",
    "SeedFailed",
    "SeedOutcome",
    "SeedResult",
    "Settings",
    "SilentReporter",
    "StatusResult",
    "ValidateResult",
    "VerifyResult",
    "__version__",
    "adopt",
    "baseline",
    "config",
    "dump",
    "fleet",
    "import_",
    "lint",
    "migrate",
    "new",
    "repair",
    "reset",
    "rollback",
    "seed",
    "status",
    "validate",
    "verify",
]

if TYPE_CHECKING:
    from migrator.commands import (
        adopt,
        baseline,
        config,
        dump,
        fleet,
        import_,
        lint,
        migrate,
        new,
        repair,
        reset,
        rollback,
        seed,
        status,
        validate,
        verify,
    )
    from migrator.errors import (
        BadFile,
        Cancelled,
        CannotConnect,
        ConfigError,
        ConnectionLost,
        DriftError,
        FleetFailed,
        LintFailed,
        LockNotAcquired,
        MigrationFailed,
        MigratorError,
        PendingWork,
        Refused,
        SeedFailed,
    )
    from migrator.model import (
        AdoptResult,
        BaselineResult,
        ConfigResult,
        DumpResult,
        FileOutcome,
        FileState,
        FileStatus,
        FleetResult,
        ImportResult,
        LintResult,
        MigrateResult,
        NewResult,
        RepairResult,
        Reporter,
        ResetResult,
        RollbackResult,
        SeedOutcome,
        SeedResult,
        SilentReporter,
        StatusResult,
        ValidateResult,
        VerifyResult,
    )
    from migrator.settings import Settings

# Imported on first use, so that `migrator --version` and the CLI's start-up load only what a
# command needs; the modules that define the names above, searched in this order.
_HOMES = ("migrator.commands", "migrator.errors", "migrator.model", "migrator.settings")


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        for home in _HOMES:
            module = importlib.import_module(home)
            if hasattr(module, name):
                return getattr(module, name)
    raise AttributeError(f"module 'migrator' has no attribute {name!r}")
