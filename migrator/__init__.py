"""migrator: a pure-SQL, file-based PostgreSQL migration runner; one function per command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from migrator.commands import (
        adopt as adopt,
    )
    from migrator.commands import (
        baseline as baseline,
    )
    from migrator.commands import (
        config as config,
    )
    from migrator.commands import (
        migrate as migrate,
    )
    from migrator.commands import (
        new as new,
    )
    from migrator.commands import (
        repair as repair,
    )
    from migrator.commands import (
        reset as reset,
    )
    from migrator.commands import (
        seed as seed,
    )
    from migrator.commands import (
        status as status,
    )
    from migrator.commands import (
        validate as validate,
    )
    from migrator.errors import (
        BadFile as BadFile,
    )
    from migrator.errors import (
        CannotConnect as CannotConnect,
    )
    from migrator.errors import (
        ConfigError as ConfigError,
    )
    from migrator.errors import (
        ConnectionLost as ConnectionLost,
    )
    from migrator.errors import (
        DriftError as DriftError,
    )
    from migrator.errors import (
        LockNotAcquired as LockNotAcquired,
    )
    from migrator.errors import (
        MigrationFailed as MigrationFailed,
    )
    from migrator.errors import (
        MigratorError as MigratorError,
    )
    from migrator.errors import (
        PendingWork as PendingWork,
    )
    from migrator.errors import (
        Refused as Refused,
    )
    from migrator.errors import (
        SeedFailed as SeedFailed,
    )
    from migrator.model import Reporter as Reporter
    from migrator.model import SilentReporter as SilentReporter
    from migrator.settings import Settings as Settings

# Imported on first use, so that `migrator --version` and the CLI's start-up load only what a
# command needs.
_EXPORTS = {
    **dict.fromkeys(
        (
            "adopt",
            "baseline",
            "config",
            "migrate",
            "new",
            "repair",
            "reset",
            "seed",
            "status",
            "validate",
        ),
        "migrator.commands",
    ),
    **dict.fromkeys(
        (
            "BadFile",
            "CannotConnect",
            "ConfigError",
            "ConnectionLost",
            "DriftError",
            "LockNotAcquired",
            "MigrationFailed",
            "MigratorError",
            "PendingWork",
            "Refused",
            "SeedFailed",
        ),
        "migrator.errors",
    ),
    "Reporter": "migrator.model",
    "SilentReporter": "migrator.model",
    "Settings": "migrator.settings",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'migrator' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
