"""The only module that walks the migrations folder; it reads bytes and calls sqlfile."""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from migrator import sqlfile
from migrator.errors import BadFile, ConfigError
from migrator.model import Reported, SqlFile

if TYPE_CHECKING:
    from migrator.importer import SourceFile


def schema_order(found: list[str], configured: tuple[str, ...]) -> list[str]:
    """Configured schemas first, in their order; then public; then the rest by name."""
    rest = sorted(name for name in found if name not in configured)
    if "public" in rest:
        rest.remove("public")
        rest.insert(0, "public")
    return [name for name in configured if name in found] + rest


def find_schemas(sql_dir: Path, configured: tuple[str, ...] = ()) -> list[str]:
    """The schema folders under sql_dir, in run order; ConfigError if sql_dir is missing."""
    if not sql_dir.is_dir():
        there = sql_dir.exists()
        what = "is not a folder" if there else "does not exist"
        make = "Point" if there else "Create it (one folder per schema, e.g. sql/public/) or point"
        raise ConfigError(
            f"migrations folder {display(sql_dir)} {what}",
            hint=f"{make} --sql-dir / MIGRATOR_SQL_DIR at the migrations folder.",
        )
    found, problems = [], []
    prefix = display(sql_dir)
    for entry in _entries(sql_dir):
        if entry.name.startswith("."):
            continue
        path = f"{prefix}/{shown(entry.name)}"
        if broken := _broken_link(entry):  # before is_dir(), which raises on a link loop
            problems.append(f"{path}: {broken}")
        elif entry.is_dir():
            found.append(entry.name)
            if problem := schema_problem(entry.name):
                problems.append(f"{path}: {problem}")
        elif entry.name.endswith(".sql") and entry.name != SCHEMA_DUMP:
            problems.append(f"{path}: migrations belong in a schema folder, e.g. {prefix}/public/")
    if problems:
        raise BadFile(sorted(problems), hint="Nothing was applied. Fix the folders and run again.")
    return schema_order(found, configured)


SCHEMA_DUMP = "schema.sql"  # `migrator dump` writes it beside the schema folders

# A schema folder holding this is drizzle-kit output, read through it (migrator.drizzle, which
# only such folders import).
DRIZZLE_JOURNAL = "meta/_journal.json"

MAX_IDENTIFIER = 63  # bytes: PostgreSQL truncates longer names (NAMEDATALEN - 1)


def schema_problem(name: str) -> str:
    """Why a folder name cannot name a PostgreSQL schema ("" when it can, quoted as needed)."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "the folder name is not UTF-8: rename it"
    if size > MAX_IDENTIFIER:
        return (
            f"the schema name is {size} bytes long; PostgreSQL cuts names to {MAX_IDENTIFIER} "
            "bytes, so it would create another schema than the folder says: rename the folder"
        )
    if name.startswith("pg_"):
        return "PostgreSQL reserves schema names starting with pg_: rename the folder"
    return ""


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """A folder's entries; BadFile when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        raise BadFile(
            [f"{display(folder)}: cannot list the folder ({exc.strerror or exc})"],
            hint="Nothing was applied. Fix the folder's permissions and run again.",
        ) from None


def _broken_link(entry: os.DirEntry[str] | Path) -> str:
    """Why a symbolic link cannot be followed ("" when it can, or is no link)."""
    if not entry.is_symlink():
        return ""
    try:
        os.stat(entry)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if exc.errno == errno.ENOENT:
            return f"a symbolic link to {os.readlink(entry)}, which does not exist"
        return f"a symbolic link that cannot be followed ({exc.strerror or exc})"
    return ""


def select_schemas(available: list[str], requested: tuple[str, ...]) -> list[str]:
    """The requested schemas in run order (all when none); ConfigError for unknown names."""
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise ConfigError(
            f"no migrations folder for schema {', '.join(unknown)}",
            hint=f"Schemas found: {', '.join(available) or 'none'}.",
        )
    return [name for name in available if not requested or name in requested]


Folder = tuple[tuple[SqlFile, ...], tuple[SqlFile, ...]]  # versioned files, repeatable files


def load_schema(sql_dir: Path, schema: str) -> tuple[SqlFile, ...]:
    """Every versioned migration file of one schema, sorted by version (a drizzle-kit folder:
    the files its journal lists, in its order); BadFile lists problems."""
    return _load_folder(sql_dir, schema)[0]


def _load_folder(sql_dir: Path, schema: str) -> Folder:
    """A schema folder's versioned files, by version, and its repeatable files, by name."""
    folder = sql_dir / schema
    if is_drizzle(folder):
        return _load_drizzle(folder, schema), ()
    prefix = display(folder)
    problems: list[str] = []
    files: list[SqlFile] = []
    downs: list[SqlFile] = []
    repeatables: list[SqlFile] = []
    for entry in _entries(folder):
        if entry.name.startswith("."):
            continue
        if problem := name_problem(entry.name):
            problems.append(f"{prefix}/{shown(entry.name)}: {problem}")
            continue
        if not entry.name.endswith(".sql"):
            continue
        path = f"{prefix}/{entry.name}"
        if entry.name.startswith(REPEATABLE) and entry.name.endswith(DOWN):
            problems.append(f"{path}: a repeatable file has no down file (it is run again whole)")
            continue
        if entry.name.startswith(REPEATABLE):
            found = repeatables
        else:
            found = downs if entry.name.endswith(DOWN) else files
        try:
            found.append(sqlfile.read(schema, entry.name, path, _read_regular(entry, path)))
        except BadFile as exc:
            problems.extend(exc.problems)
        except OSError as exc:
            problems.append(f"{path}: cannot read ({exc.strerror or exc})")
    files, orphans = _with_downs(files, downs)
    problems.extend(f"{down.path}: a down file without its up file {up}" for down, up in orphans)
    files.sort(key=lambda file: (file.version, file.name))
    for before, after in itertools.pairwise(files):
        if before.version == after.version:
            problems.append(
                f"{before.path} and {after.path}: two files with version {after.version}"
            )
    if problems:
        raise BadFile(problems, hint="Nothing was applied. Fix the files and run again.")
    return tuple(files), tuple(sorted(repeatables, key=lambda file: file.name))


DOWN = ".down.sql"  # <version>_<name>.down.sql reverts <version>_<name>.sql
REPEATABLE = "R__"  # R__<name>.sql: applied again whenever its text changes


def _with_downs(
    files: list[SqlFile], downs: list[SqlFile]
) -> tuple[list[SqlFile], list[tuple[SqlFile, str]]]:
    """The up files, each with its down file; and the down files whose up file is not there."""
    by_up = {down.name[: -len(DOWN)] + ".sql": down for down in downs}
    joined = [dataclasses.replace(file, down=by_up.pop(file.name, None)) for file in files]
    return joined, [(down, up) for up, down in sorted(by_up.items())]


_NEAR_MISS = re.compile(r"[0-9]+_.*\.(?:sql|sq)\s*", re.IGNORECASE)
_NUMBERED = re.compile(r"[0-9]+_.*", re.DOTALL)


def name_problem(name: str) -> str:
    """Why a file name in a migrations or seeds folder is a typo, not a file to skip ("" when
    it is fine): not UTF-8, or numbered like a migration with a near-miss extension."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the file name is not UTF-8: rename it"
    if _NEAR_MISS.fullmatch(name) and not name.endswith((".sql", ".py")):
        return "named like a migration, but it does not end in .sql: rename it"
    if _NUMBERED.fullmatch(name) and name.lower().endswith(".py") and not name.endswith(".py"):
        return "named like a seed process, but it does not end in .py: rename it"
    if name.endswith(".sql") and name[:-4] != name[:-4].rstrip():
        return "a space before .sql: rename it"
    if name.upper().startswith("R__") and name.lower().endswith((".sql", ".sq")):
        if not name.endswith(".sql"):
            return "named like a repeatable file, but it does not end in .sql: rename it"
        if any(ord(character) < 32 or ord(character) == 127 for character in name):
            return "a control character in the file name: rename it"
    if name.lower().startswith("r__") and not name.startswith(REPEATABLE):
        return "named like a repeatable file, but it does not start with R__ (upper case R)"
    if name.startswith(REPEATABLE) and name.lower().endswith(".sql") and len(name) <= 7:
        return "a repeatable file needs a name after R__, e.g. R__views.sql"
    return ""


def shown(name: str) -> str:
    """A file name as it can be printed (bytes that are not UTF-8 escaped)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _read_regular(entry: os.DirEntry[str] | Path, path: str) -> bytes:
    """A file's bytes; BadFile for links that go nowhere, folders and FIFOs."""
    if isinstance(entry, Path) and not os.path.lexists(entry):
        raise BadFile([f"{path}: no such file"])
    if broken := _broken_link(entry):  # before is_dir(), which raises on a link loop
        raise BadFile([f"{path}: {broken}"])
    if entry.is_dir():
        what = "a folder named like a migration file" if path.endswith(".sql") else "a folder"
        raise BadFile([f"{path}: {what}"])
    if not entry.is_file():  # reading a FIFO would wait forever
        raise BadFile([f"{path}: not a regular file"])
    return read_bytes(os.fspath(entry))


def is_drizzle(folder: Path) -> bool:
    """True for a drizzle-kit folder (it holds meta/_journal.json, even a broken one);
    BadFile when meta/ is a link that goes nowhere, which would hide the journal."""
    meta = folder / "meta"
    if broken := _broken_link(meta):
        raise BadFile([f"{display(folder)}/meta: {broken}"], hint="Nothing was applied.")
    return os.path.lexists(folder / DRIZZLE_JOURNAL)


def _load_drizzle(folder: Path, schema: str) -> tuple[SqlFile, ...]:
    """The files a drizzle-kit journal lists, in its order, versions from the tags."""
    from migrator import drizzle

    prefix = display(folder)
    journal_path = f"{prefix}/{DRIZZLE_JOURNAL}"
    try:
        data = _read_regular(folder / DRIZZLE_JOURNAL, journal_path)
    except OSError as exc:
        raise BadFile([f"{journal_path}: cannot read ({exc.strerror or exc})"]) from None
    entries = drizzle.parse_journal(data, journal_path)
    files: list[SqlFile] = []
    problems: list[str] = []
    for entry in entries:
        name = f"{entry.tag}.sql"
        path = f"{prefix}/{name}"
        try:
            data = _read_regular(folder / name, path)
        except BadFile as exc:
            problems.extend(
                f"{problem} (listed in {journal_path}, idx {entry.idx})" for problem in exc.problems
            )
            continue
        except OSError as exc:
            problems.append(f"{path}: cannot read ({exc.strerror or exc})")
            continue
        try:
            text = sqlfile.normalize(data, path)
        except BadFile as exc:
            problems.extend(exc.problems)
            continue
        files.append(
            SqlFile(schema, entry.version, name, path, text, sqlfile.sha256(text), entry.when)
        )
    if problems:
        raise BadFile(problems, hint="Nothing was applied. Fix the files and run again.")
    return tuple(files)


def unlisted(sql_dir: Path, schema: str, files: Sequence[SqlFile]) -> list[str]:
    """The .sql files of a drizzle-kit folder that its journal does not list (never run),
    given the files loaded through that journal."""
    folder = sql_dir / schema
    if not is_drizzle(folder):
        return []
    listed = {file.name for file in files}
    return sorted(
        f"{display(folder)}/{entry.name}"
        for entry in _entries(folder)
        if entry.name.endswith(".sql")
        and not entry.name.startswith(".")
        and entry.name not in listed
    )


def for_schema(files: Sequence[SqlFile], schema: str) -> tuple[SqlFile, ...]:
    """A template folder's files, to run in `schema` (their paths stay the template's)."""
    return tuple(
        dataclasses.replace(
            file,
            schema=schema,
            down=dataclasses.replace(file.down, schema=schema) if file.down else None,
        )
        for file in files
    )


def load(sql_dir: Path, schemas: list[str]) -> dict[str, tuple[SqlFile, ...]]:
    """The versioned files of every schema; one BadFile naming every problem in all of them."""
    return load_project(sql_dir, schemas)[0]


def load_project(
    sql_dir: Path, schemas: list[str]
) -> tuple[dict[str, tuple[SqlFile, ...]], dict[str, tuple[SqlFile, ...]]]:
    """The versioned and the repeatable files of every schema; one BadFile naming every
    problem in all of them."""
    found: dict[str, tuple[SqlFile, ...]] = {}
    repeatables: dict[str, tuple[SqlFile, ...]] = {}
    problems: list[str] = []
    for schema in schemas:
        try:
            found[schema], repeatables[schema] = _load_folder(sql_dir, schema)
        except BadFile as exc:
            problems.extend(exc.problems)
    if problems:
        raise BadFile(problems, hint="Nothing was applied. Fix the files and run again.")
    return found, repeatables


STAMP_DIGITS = 14  # YYYYMMDDHHMMSS, UTC: a version `new --timestamp` gives


def slug(name: str) -> str:
    """What a migration does as part of a file name: lower-case ASCII letters and digits
    joined by single underscores, accents dropped ("Add Invoice Status!" -> add_invoice_status;
    "" when nothing is left)."""
    folded = unicodedata.normalize("NFKD", name.casefold()).encode("ascii", "ignore").decode()
    return "_".join(re.findall(r"[a-z0-9]+", folded))


def check_new_schema(schema: str) -> None:
    """ConfigError when files cannot be written into a schema folder of that name."""
    if schema in ("", ".", "..") or "/" in schema or "\\" in schema or schema.startswith("."):
        raise ConfigError(f"'{schema}' is not a schema folder name")
    if problem := schema_problem(schema):
        raise ConfigError(f"'{schema}': {problem}")


def new_file(
    sql_dir: Path,
    schema: str,
    name: str,
    files: tuple[SqlFile, ...],
    *,
    stamped: bool = False,
    down: bool = False,
    repeatable: bool = False,
) -> tuple[Path, Path | None]:
    """Create the next file in a schema folder (and its down file when `down`): numbered as
    wide as the existing versions, or by the UTC time when `stamped` or when the newest file's
    version is a 14-digit one (never at or below the newest version); R__<name>.sql when
    `repeatable`."""
    check_new_schema(schema)
    if (sql_dir / schema).is_dir() and is_drizzle(sql_dir / schema):
        raise ConfigError(
            f"{display(sql_dir / schema)} is a drizzle-kit folder: a file its "
            f"{DRIZZLE_JOURNAL} does not list would never run",
            hint="Add a migration with drizzle-kit (drizzle-kit generate, or "
            "drizzle-kit generate --custom for hand-written SQL).",
        )
    part = slug(name)
    if not part:
        raise ConfigError(
            f"'{name}' has no letters or digits to name the file with",
            hint="Say what the migration does, e.g. 'add orders' (the file: NNNN_add_orders.sql).",
        )
    newest = max(files, key=lambda file: file.version, default=None)
    width = max((len(file.name.split("_", 1)[0]) for file in files), default=4)
    version = newest.version + 1 if newest else 1
    if stamped or (newest and len(newest.name.split("_", 1)[0]) == STAMP_DIGITS):
        now = int(datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
        version, width = max(version, now), STAMP_DIGITS
    path = sql_dir / schema / f"{version:0{width}d}_{part}.sql"
    # One line, whatever the name held: a line break in it would start SQL in the file.
    header = (
        f"-- {schema}: {' '.join(name.split())}\n"
        f"-- One statement per chunk; end each chunk with {sqlfile.MARKER}\n"
    )
    if repeatable:
        path = sql_dir / schema / f"{REPEATABLE}{part}.sql"
        header += (
            "-- Repeatable: applied again, whole and in one transaction, whenever it changes.\n"
            "-- Write it to run again: CREATE OR REPLACE VIEW / FUNCTION, DROP ... IF EXISTS.\n"
        )
    down_path = path.with_name(path.name[: -len(".sql")] + DOWN) if down else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as new:
            new.write(header + "\n")
        if down_path is not None:
            with down_path.open("x", encoding="utf-8") as new:
                new.write(
                    f"-- Reverts {path.name}, newest change first.\n"
                    + header[header.index("\n") + 1 :]
                    + "\n"
                )
    except OSError as exc:
        raise ConfigError(f"cannot create {display(path)}: {exc.strerror or exc}") from None
    return path, down_path


def read_bytes(path: str) -> bytes:
    """A file's bytes, read with plain system calls (cheaper than open().read())."""
    fd = os.open(path, os.O_RDONLY)
    try:
        # 64 KiB first: most migration files fit, and a larger buffer costs a memory mapping.
        part = os.read(fd, 1 << 16)
        if len(part) < 1 << 16:
            return part
        parts = [part]
        while part := os.read(fd, 1 << 20):
            parts.append(part)
        return b"".join(parts)
    finally:
        os.close(fd)


def display(path: Path) -> str:
    """A path as users should see it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


_LINKED_FOLDER = "a link to a folder: not read (copy the folder in to import it)"


def source_files(folder: Path) -> tuple[list[SourceFile], list[Reported]]:
    """Every regular file below another runner's migrations folder (links to files too), by
    path relative to it (node_modules and .git left out), and the entries that are no
    regular file (a FIFO, a link to nowhere); ConfigError when it is not a folder."""
    from migrator import importer

    if not folder.is_dir():
        raise ConfigError(
            f"{display(folder)} is not a folder",
            hint="Give the folder the tool reads its migrations from, e.g. db/migrations.",
        )
    found, skipped = [], []
    for root, dirs, names in os.walk(folder):
        relative = Path(root).relative_to(folder)
        for name in dirs:
            if (Path(root) / name).is_symlink():  # not followed: it may lead anywhere
                skipped.append(Reported(shown((relative / name).as_posix()), _LINKED_FOLDER))
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in ("node_modules", ".git") and not (Path(root) / d).is_symlink()
        )
        for name in sorted(names):
            path = Path(root) / name
            shown_path = shown((relative / name).as_posix())
            if not path.is_file():
                what = "a link to nowhere" if path.is_symlink() else "not a regular file"
                skipped.append(Reported(shown_path, f"{what}: not read"))
                continue
            try:
                data = read_bytes(str(path))
            except OSError as exc:
                raise ConfigError(f"cannot read {display(path)}: {exc.strerror or exc}") from None
            found.append(importer.SourceFile((relative / name).as_posix(), data))
    return found, skipped
