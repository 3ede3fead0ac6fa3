"""The embedded PostgreSQL (pgserver) under .migrator/: the one place that knows about it."""

from __future__ import annotations

import warnings
from pathlib import Path

from migrator.errors import ConfigError


def start(directory: Path) -> str:
    """Start (or reuse) the embedded server in `directory`; returns its connection URL."""
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# the embedded PostgreSQL's data: never commit it\n*\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR in containers
        try:
            from pgserver import postgres_server

            server = postgres_server.get_server(directory.resolve() / "pgdata")
            return str(server.get_uri())
        except Exception as exc:  # pgserver raises plain exceptions of several kinds
            raise ConfigError(
                f"cannot start the embedded PostgreSQL in {directory}: {exc}",
                hint="Set MIGRATOR_DATABASE_URL to use a server of your own.",
            ) from None
