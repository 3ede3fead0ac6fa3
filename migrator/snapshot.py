"""The schema the files make: a deterministic pg_dump of the managed schemas, and a shadow
database to apply every file to and compare with."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from migrator.errors import ConfigError

# Lines of pg_dump's output that change with nothing in the schema changing: versions, the
# random restrict key (17.6+), timings, and a per-database attribute option some builds add.
_NOISE = re.compile(
    r"^(-- Dumped (from database|by pg_dump) version .*|\\(un)?restrict \S+|"
    r"SET transaction_timeout = .*|-- Started on .*|-- Completed on .*|"
    r"ALTER TABLE ONLY .+ ALTER COLUMN .+ SET \(pg_attver=[0-9]+\);)$"
)


def _candidates() -> list[str]:
    """Every pg_dump at hand: the system's, and the embedded server's."""
    from importlib.util import find_spec

    found = [shutil.which("pg_dump") or ""]
    spec = find_spec("pgserver")  # found, not imported: its import starts more than it needs
    if spec is not None and spec.origin:
        found.append(str(Path(spec.origin).parent / "pginstall" / "bin" / "pg_dump"))
    return [path for path in found if path and os.access(path, os.X_OK)]


def _major(path: str) -> int:
    """pg_dump's major version (0 when it cannot say)."""
    try:
        shown = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return 0
    found = re.search(r"([0-9]+)(?:\.[0-9]+)?", shown)
    return int(found[1]) if found else 0


def pg_dump(server_major: int) -> str:
    """The newest pg_dump at hand, which must be at least the server's major version;
    ConfigError saying what to install otherwise."""
    versions = sorted(((_major(path), path) for path in _candidates()), reverse=True)
    if versions and versions[0][0] >= server_major:
        return versions[0][1]
    have = ", ".join(f"{path} ({major})" for major, path in versions) or "none"
    raise ConfigError(
        f"dumping PostgreSQL {server_major} needs pg_dump {server_major} or newer; found: {have}",
        hint=f"Install PostgreSQL {server_major}'s client tools (postgresql-client-"
        f"{server_major}), or put its pg_dump on PATH.",
    )


def dump(program: str, conninfo: str, schemas: Sequence[str], excluded: Sequence[str]) -> str:
    """The schema-only dump of `schemas` without the `excluded` tables (qualified, quoted),
    owners, privileges or the lines that change between runs: the same schema, the same text."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    if not schemas:  # none of them exists yet: an empty schema, not pg_dump's whole database
        return "-- no managed schema exists in the database\n"
    parts = conninfo_to_dict(conninfo)
    password = parts.pop("password", None)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    if password:
        env["PGPASSWORD"] = str(password)  # not on the command line, where ps shows it
    command = [program, "--schema-only", "--no-owner", "--no-privileges", "--quote-all-identifiers"]
    command += [f"--schema={_pattern(schema)}" for schema in schemas]
    command += [f"--exclude-table={table}" for table in excluded]
    command.append(f"--dbname={make_conninfo('', **parts)}")
    ran = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if ran.returncode != 0:
        from migrator.db import scrub

        raise ConfigError(f"pg_dump failed: {scrub(ran.stderr.strip(), conninfo)}")
    lines = [line for line in ran.stdout.splitlines() if not _NOISE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return text + "\n"


def _pattern(name: str) -> str:
    """A name as a pg_dump pattern that matches it alone (quoted: no wildcards, case kept)."""
    return '"' + name.replace('"', '""') + '"'


def excluded_tables(schemas: Sequence[str], journal_table: str, seeds_table: str) -> list[str]:
    """migrator's own tables in these schemas, as pg_dump patterns."""
    own = [journal_table, f"{journal_table}_history", f"{journal_table}_repeatable"]
    found = [f"{_pattern(schema)}.{_pattern(table)}" for schema in schemas for table in own]
    return [*found, f"{_pattern('public')}.{_pattern(seeds_table)}"]
