"""Other runners' history tables, read (never written): what each shows applied."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from psycopg import sql

from migrator.errors import ConfigError
from migrator.importer import (
    HistoryEntry,
    flyway_entries,
    golang_entries,
    goose_entries,
    prisma_entries,
    version_entries,
)
from migrator.journal import COLUMNS_QUERY, check_shape

if TYPE_CHECKING:
    from psycopg import Connection

# The columns each tool's table has (N number, S text, B boolean, D timestamp) and its key.
SHAPES: dict[str, tuple[dict[str, str], str]] = {
    "prisma": (
        {"id": "S", "checksum": "S", "finished_at": "D", "migration_name": "S",
         "rolled_back_at": "D", "started_at": "D"},
        "id",
    ),
    "dbmate": ({"version": "S"}, "version"),
    "golang-migrate": ({"version": "N", "dirty": "B"}, "version"),
    "goose": ({"id": "N", "version_id": "N", "is_applied": "B"}, "id"),
    "flyway": (
        {"installed_rank": "N", "version": "S", "description": "S", "type": "S",
         "script": "S", "checksum": "N", "success": "B"},
        "installed_rank",
    ),
    "diesel": ({"version": "S"}, "version"),
}  # fmt: skip
_QUERIES = {
    "prisma": "SELECT migration_name, checksum, finished_at IS NOT NULL, "
    "rolled_back_at IS NOT NULL FROM {} ORDER BY started_at, id",
    "dbmate": "SELECT version FROM {} ORDER BY version",
    "golang-migrate": "SELECT version, dirty FROM {} LIMIT 2",
    "goose": "SELECT id, version_id, is_applied FROM {} ORDER BY id",
    "flyway": "SELECT installed_rank, version, description, type, script, checksum, success "
    "FROM {} ORDER BY installed_rank",
    "diesel": "SELECT version FROM {} ORDER BY version",
}


def _looks_like(kind: str, columns: set[str]) -> str | None:
    """The tool whose table this is, when it is plainly another's (both name theirs
    schema_migrations); None when it may be `kind`'s."""
    if kind in ("dbmate", "diesel") and "dirty" in columns:
        return "golang-migrate"
    if kind == "dbmate" and "run_on" in columns:
        return "diesel"
    if kind == "golang-migrate" and columns and "dirty" not in columns and "version" in columns:
        return "diesel" if "run_on" in columns else "dbmate"
    return None


def read(
    conn: Connection,
    kind: str,
    schema: str,
    name: str,
    versions: Sequence[object] = (),
) -> list[HistoryEntry] | None:
    """What `kind`'s table schema.name records, as entries; None when there is no such table.
    `versions`: the files' versions (golang-migrate) or Flyway versions (flyway), for the
    rows that stand for every file below them. ConfigError when the table has another shape."""
    import psycopg

    qualified = sql.Identifier(schema, name).as_string(conn)
    columns = {row[1] for row in conn.execute(COLUMNS_QUERY, (qualified,)) if row[1]}
    other = _looks_like(kind, columns)
    if other is not None:
        raise ConfigError(
            f"{qualified} looks like {other}'s table, not {kind}'s",
            hint=f"Run migrator adopt {other}, or name {kind}'s table with --table.",
        )
    shape, key = SHAPES[kind]
    try:
        found = check_shape(conn, qualified, shape, key=key, what=f"{kind}'s table", ours=False)
    except ConfigError as exc:
        exc.hint = (
            f"Name the table {kind} wrote with --table SCHEMA.TABLE, or name the tool that "
            "wrote this one."
        )
        raise
    if found is None:
        return None
    query = sql.SQL(_QUERIES[kind]).format(sql.Identifier(schema, name))
    try:
        rows = conn.execute(query).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        raise ConfigError(
            f"{conn.info.user} may not read {qualified}: nothing was adopted",
            hint=f"GRANT SELECT ON {qualified} TO {conn.info.user}, or adopt as its owner.",
        ) from None
    if kind == "prisma":
        return prisma_entries(rows)
    if kind == "goose":
        return goose_entries(rows)
    if kind == "flyway":
        return flyway_entries(rows, versions)  # type: ignore[arg-type]
    if kind == "golang-migrate":
        if len(rows) > 1:
            raise ConfigError(
                f"{qualified} has more than one row: golang-migrate keeps one (version, dirty)",
                hint="Name golang-migrate's table with --table SCHEMA.TABLE.",
            )
        entries, _ = golang_entries(rows[0] if rows else None, versions)  # type: ignore[arg-type]
        return entries
    return version_entries(row[0] for row in rows)
