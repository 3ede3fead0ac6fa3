"""Drizzle-kit folders and Drizzle's migrations table, as data: no I/O."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from migrator.errors import BadFile
from migrator.model import SqlFile
from migrator.sqlfile import MAX_VERSION

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
    """The entries of a drizzle-kit journal, in its order (idx increasing); BadFile names what
    is wrong."""
    import json  # only drizzle-kit folders need it: start-up time counts

    try:
        journal = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadFile([f"{path}: not valid JSON ({type(exc).__name__}: {exc})"]) from None
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
    # Drizzle runs the entries in the order they are listed; idx and the tags must agree.
    for before, after in itertools.pairwise(entries):
        if after.idx <= before.idx:
            problems.append(
                f"{path}: {after.tag} (idx {after.idx}) is listed after {before.tag} "
                f"(idx {before.idx})"
            )
        elif after.tag == before.tag:
            problems.append(f"{path}: {after.tag} is listed twice")
        elif after.version <= before.version:
            problems.append(
                f"{path}: {after.tag} (idx {after.idx}) is numbered {after.version}, not above "
                f"{before.tag} (idx {before.idx}): the journal order and the tags disagree"
            )
    if problems:
        raise BadFile(problems, hint="Nothing was applied. Fix the journal and run again.")
    return tuple(entries)


def _integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(raw: object) -> Entry | str | None:
    """An entry, a reason it cannot be used, or None when it lacks the fields."""
    if not isinstance(raw, dict):
        return None
    idx, when, tag = raw.get("idx"), raw.get("when"), raw.get("tag")
    if not (_integer(idx) and _integer(when) and isinstance(tag, str)):
        return None
    if not tag or "/" in tag or "\\" in tag or tag.startswith("."):
        return "the tag must be a plain file name"
    digits = _DIGITS.match(tag)
    if digits is None:
        return "the tag does not start with a number, so it gives no version"
    if int(digits[0]) > MAX_VERSION:
        return f"version {int(digits[0])} does not fit the journal's bigint"
    return Entry(idx, int(digits[0]), tag, when)


def match(
    rows: Sequence[DrizzleRow],
    files: Sequence[SqlFile],
    other_hashes: Mapping[str, Sequence[str]] | None = None,
) -> Adoption:
    """Match each recorded migration to a file: by hash and created_at = the journal's `when`
    together, then by hash alone, then by `when` alone (a file edited since it ran); each file
    at most once, so identical files (drizzle-kit's empty custom ones) pair up by `when`.
    `other_hashes` (by path) are further hashes a file matches by: of its bytes as they are
    (CRLF kept, as Drizzle hashes them), or without the markers `import --split` added."""
    extra = other_hashes or {}

    def hashes(file: SqlFile) -> tuple[str, ...]:
        return (file.hash, *extra.get(file.path, ()))

    keys: tuple[tuple[Callable[[SqlFile], Sequence[object]], Callable[[DrizzleRow], object]], ...]
    keys = (
        (
            lambda file: [(h, file.when) for h in hashes(file)],
            lambda row: (row.hash, row.created_at),
        ),
        (hashes, lambda row: row.hash),
        (lambda file: [file.when], lambda row: row.created_at),
    )
    taken: dict[str, tuple[SqlFile, DrizzleRow]] = {}
    left = list(rows)
    for file_keys, row_key in keys:
        candidates: dict[object, list[SqlFile]] = {}
        for file in files:
            for key in dict.fromkeys(file_keys(file)):
                candidates.setdefault(key, []).append(file)
        candidates.pop(None, None)  # no `when` (not a drizzle-kit folder) matches nothing
        unmatched = []
        for row in left:
            free = (f for f in candidates.get(row_key(row), ()) if f.path not in taken)
            found = next(free, None)
            if found is None:
                unmatched.append(row)
            else:
                taken[found.path] = (found, row)
        left = unmatched
    ordered = sorted(taken.values(), key=lambda pair: pair[0].version)
    return Adoption(tuple(ordered), tuple(left))
