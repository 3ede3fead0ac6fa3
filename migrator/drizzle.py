"""Drizzle-kit folders and Drizzle's migrations table, as data: no I/O."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from migrator.errors import BadFile
from migrator.model import SqlFile

TABLE = "drizzle.__drizzle_migrations"  # where Drizzle's migrate() records what it ran
VERSIONS = ("5", "6", "7")  # journal formats drizzle-kit has written for PostgreSQL
DIALECTS = ("pg", "postgresql")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Entry:
    """One migration listed in meta/_journal.json."""

    idx: int
    version: int  # the tag's leading digits
    tag: str  # the file is <tag>.sql
    when: int  # milliseconds since the epoch; Drizzle stores it as created_at


@dataclass(frozen=True, slots=True)
class DrizzleRow:
    """One row of Drizzle's migrations table."""

    id: int
    hash: str
    created_at: int | None


@dataclass(frozen=True, slots=True)
class Adoption:
    """What `adopt drizzle` found: each file matched to the row that records it, and the rows
    that match no file."""

    matched: tuple[tuple[SqlFile, DrizzleRow], ...]
    unmatched: tuple[DrizzleRow, ...]


def parse_journal(data: bytes, path: str) -> tuple[Entry, ...]:
    """The entries of a drizzle-kit journal in idx order; BadFile names what is wrong."""
    import json  # only drizzle-kit folders need it: start-up time counts

    try:
        journal = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadFile([f"{path}: not valid JSON ({exc})"]) from None
    if not isinstance(journal, dict) or not isinstance(journal.get("entries"), list):
        raise BadFile([f'{path}: not a drizzle-kit journal (no "entries" list)'])
    problems = []
    if str(journal.get("version")) not in VERSIONS:
        problems.append(
            f"{path}: journal version {journal.get('version')!r} is not one of "
            f"{', '.join(VERSIONS)}"
        )
    if journal.get("dialect") not in DIALECTS:
        problems.append(
            f"{path}: dialect {journal.get('dialect')!r} is not PostgreSQL "
            f"({' or '.join(DIALECTS)})"
        )
    entries = []
    for position, raw in enumerate(journal["entries"]):
        entry = _entry(raw)
        if entry is None:
            problems.append(f"{path}: entry {position} needs an integer idx and when and a tag")
        elif isinstance(entry, str):
            problems.append(f"{path}: entry {position} ({raw.get('tag')}): {entry}")
        else:
            entries.append(entry)
    entries.sort(key=lambda entry: entry.idx)
    for before, after in itertools.pairwise(entries):
        if after.version <= before.version:
            problems.append(
                f"{path}: {after.tag} (idx {after.idx}) is numbered {after.version}, not above "
                f"{before.tag} (idx {before.idx}): the journal order and the tags disagree"
            )
    if problems:
        raise BadFile(problems, hint="Nothing was applied. Fix the journal and run again.")
    return tuple(entries)


def _entry(raw: object) -> Entry | str | None:
    """An entry, a reason it cannot be used, or None when it lacks the fields."""
    if not isinstance(raw, dict):
        return None
    idx, when, tag = raw.get("idx"), raw.get("when"), raw.get("tag")
    if not (isinstance(idx, int) and isinstance(when, int) and isinstance(tag, str)):
        return None
    if not tag or "/" in tag or "\\" in tag or tag.startswith("."):
        return "the tag must be a plain file name"
    digits = _DIGITS.match(tag)
    if digits is None:
        return "the tag does not start with a number, so it gives no version"
    return Entry(idx, int(digits[0]), tag, when)


def match(rows: Sequence[DrizzleRow], files: Sequence[SqlFile]) -> Adoption:
    """Match each recorded migration to a file: by hash, else by created_at = the journal's
    `when`."""
    by_hash = {file.hash: file for file in files}
    by_when = {file.when: file for file in files if file.when is not None}
    matched: dict[str, tuple[SqlFile, DrizzleRow]] = {}
    unmatched = []
    for row in rows:
        file = by_hash.get(row.hash)
        if file is None and row.created_at is not None:
            file = by_when.get(row.created_at)
        if file is None or file.path in matched:
            unmatched.append(row)
        else:
            matched[file.path] = (file, row)
    ordered = sorted(matched.values(), key=lambda pair: pair[0].version)
    return Adoption(tuple(ordered), tuple(unmatched))
