"""PURE. Other runners' migration folders as migrator files, and their history rows matched to
those files: data in, data out."""

from __future__ import annotations

import hashlib
import itertools
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from migrator.lexer import MARKER, LexError, Statement, split
from migrator.model import Reported
from migrator.sqlfile import MAX_VERSION, autocommit_reason

NO_TRANSACTION = "-- migrator: no-transaction"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file of the source folder: its path below that folder ("/"-separated) and bytes."""

    path: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Imported:
    """One migration to write: `name` (<version>_<name>.sql, or R__<name>.sql) and its down."""

    version: int
    name: str
    source: str  # the source file (or folder) it comes from
    up: bytes
    down: bytes | None = None
    key: str = ""  # what the tool's history table records for it
    no_transaction: bool = False
    down_source: str = ""
    by_statement: bool = False  # the tool runs each statement on its own, outside a transaction

    @property
    def down_name(self) -> str:
        return self.name[: -len(".sql")] + ".down.sql"


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What an import writes (`migrations`, in version order), what it leaves out
    (`reported`) and the caveats of what it writes (`warnings`)."""

    kind: str
    migrations: tuple[Imported, ...]
    reported: tuple[Reported, ...]
    warnings: tuple[Reported, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One migration another runner's history table records: its `key` (as Imported.key),
    how to name it, whether it is applied, and the checksum the tool recorded, if any."""

    key: str
    label: str
    state: str = "applied"  # applied, or why it is not: failed, rolled back, dirty
    checksum: str | None = None
    repeatable: bool = False  # a Flyway repeatable's newest run: `key` is its description


@dataclass(frozen=True, slots=True)
class Adoption:
    """History entries matched to files: the pairs, the entries without a file, and the
    pairs whose checksum disagrees."""

    matched: tuple[tuple[str, HistoryEntry], ...]  # (file name, entry), by file name order
    without_file: tuple[HistoryEntry, ...] = ()
    mismatched: tuple[tuple[str, HistoryEntry], ...] = ()


def plan(kind: str, files: Sequence[SourceFile], *, split_statements: bool = False) -> ImportPlan:
    """The migrations a `kind` folder holds, as migrator files (statements split with
    `split_statements`, or where the tool runs them one by one), and every file left out
    with the reason: the tool would not run it, runs it by accident, or migrator would
    refuse it as written."""
    reader = _READERS[kind]
    found, reported, warnings = reader(files)
    found.sort(key=lambda item: (item.version, item.name))
    reported = [*reported, *_same_version(found)]
    left_out = {r.path for r in reported}
    kept: list[Imported] = []
    for item in found:
        if item.source in left_out:
            continue
        if problem := _name_problem(item):
            reported.append(Reported(item.source, problem))
            continue
        if item.by_statement:
            item = _split_imported(item)
        elif split_statements:
            scoped = _transaction_scoped(item)
            if scoped:
                warnings.append(
                    Reported(
                        item.source,
                        f"not split: it holds a {scoped}, whose effect lasts until its "
                        "transaction ends, so its statements stay in one chunk, as the tool ran "
                        "them",
                    )
                )
            else:
                item = _split_imported(item)
        item = _with_directive(item)
        refusals = _refusals(item)
        if refusals:
            reported.extend(refusals)
            continue
        kept.append(item)
    return ImportPlan(
        kind,
        tuple(kept),
        tuple(sorted(reported, key=lambda r: r.path)),
        tuple(sorted(warnings, key=lambda r: r.path)),
    )


def _name_problem(item: Imported) -> str:
    """Why the file to write cannot have its name ("" when it can)."""
    from migrator import discovery, sqlfile

    for name in (item.name, item.down_name):
        if problem := discovery.name_problem(name):
            return f"not imported: as {discovery.shown(name)}, {problem}"
    if not (item.name.startswith("R__") or sqlfile.parse_name(item.name)):
        return f"not imported: {discovery.shown(item.name)} is no migrator file name"
    return ""


def _refusals(item: Imported) -> list[Reported]:
    """What migrator would refuse in the file as written (a psql command, an unterminated
    literal, CREATE INDEX CONCURRENTLY among other statements in one chunk): the file is not
    imported, and --split is named when it would help."""
    found: list[Reported] = []
    parts = [(item.name, item.up, item.source)]
    if item.down is not None:
        parts.append((item.down_name, item.down, item.down_source or item.source))
    for name, data, source in parts:
        problems = _problems(name, data)
        if problems:
            advice = "; fix it in the source and import again"
            if not _problems(name, split_text(data.decode("utf-8")).encode("utf-8")):
                advice = "; import with --split, which puts each statement in its own chunk"
            found.extend(
                Reported(source, f"migrator would refuse it as {name}: {problem}{advice}")
                for problem in problems
            )
    return found


def _problems(name: str, data: bytes) -> list[str]:
    """What migrator's parser refuses in a file of that name and bytes ([] when nothing)."""
    from migrator import sqlfile
    from migrator.errors import BadFile

    try:
        sqlfile.parse(sqlfile.read("import", name, name, data))
    except BadFile as exc:
        return exc.problems
    return []


_SCOPED_SET = {
    "local": "SET LOCAL",
    "constraints": "SET CONSTRAINTS",
    "transaction": "SET TRANSACTION",
}


# Found in a statement's text (inside parentheses too): a constraint checked at commit, a
# transaction's advisory lock.
_SCOPED_TEXT = re.compile(
    r"\binitially\s+deferred\b|\bpg_(?:try_)?advisory_xact_lock(?:_shared)?\s*\(|"
    r"\bconstraint\s+trigger\b",
    re.IGNORECASE,
)
_SCOPED_NAMES = {
    "initially": "constraint checked at commit (INITIALLY DEFERRED)",
    "pg_advisory_xact_lock": "transaction advisory lock",
    "pg_try_advisory_xact_lock": "transaction advisory lock",
    "pg_advisory_xact_lock_shared": "transaction advisory lock",
    "pg_try_advisory_xact_lock_shared": "transaction advisory lock",
    "constraint": "constraint trigger (checked at commit when deferred)",
}


def _transaction_scoped(item: Imported) -> str:
    """A statement of the file whose effect ends with its transaction (SET LOCAL, SET
    CONSTRAINTS, LOCK, a temporary table ON COMMIT, a cursor, set_config), which splitting
    would cut from the statements after it; "" when there is none."""
    for data in (item.up, item.down or b""):
        text = _lexable(data.decode("utf-8").removeprefix("\ufeff"))
        try:
            pieces = split(text)
        except LexError:
            continue
        for statement in (s for piece in pieces for s in piece.statements):
            found = _SCOPED_TEXT.search(text, statement.start, max(statement.end, statement.start))
            if found is not None:
                return _SCOPED_NAMES[found[0].lower().split()[0].split("(")[0]]
            words = statement.words
            first, second = (*words, "", "")[:2]
            if first == "set" and second in _SCOPED_SET:
                return _SCOPED_SET[second]
            if first == "lock":
                return "LOCK"
            if first == "declare":
                return "cursor"
            if (
                first == "create"
                and "commit" in words
                and ("temp" in words or "temporary" in words)
            ):
                return "temporary table ON COMMIT"
            if "set_config" in statement.calls:
                return "set_config()"
    return ""


Reader = Callable[[Sequence[SourceFile]], tuple[list[Imported], list[Reported], list[Reported]]]


def _same_version(found: Sequence[Imported]) -> list[Reported]:
    by_version: dict[int, list[Imported]] = {}
    for item in found:
        if not item.name.startswith("R__"):
            by_version.setdefault(item.version, []).append(item)
    reported: list[Reported] = []
    for version, items in by_version.items():
        if len(items) > 1:
            names = ", ".join(item.source for item in items)
            reported.extend(
                Reported(item.source, f"two files with version {version} ({names}): rename one")
                for item in items
            )
    return reported


# --- text --------------------------------------------------------------------------------


def decode(file: SourceFile) -> str | None:
    """The file's text (a BOM kept as U+FEFF, line ends as they are); None if not UTF-8."""
    try:
        return file.data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _lines(text: str) -> list[str]:
    """The lines with their line ends; joined, the text again."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _newline(text: str) -> str:
    if "\r\n" in text:
        return "\r\n"
    return "\r" if "\r" in text and "\n" not in text else "\n"


def _lexable(text: str) -> str:
    """The text with a lone CR as LF, as migrator reads it: of the same length, so that its
    offsets are the text's."""
    return re.sub(r"\r(?!\n)", "\n", text) if "\r" in text else text


def _any_lines(text: str) -> list[str]:
    """The lines with their line ends (LF, CRLF or CR); joined, the text again."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", text)


def _with_directive(item: Imported) -> Imported:
    """The file with `-- migrator: no-transaction` on top when its tool ran it so."""
    if not item.no_transaction:
        return item
    return _replace(item, up=_prepend(item.up, NO_TRANSACTION))


def _prepend(data: bytes, line: str) -> bytes:
    text = data.decode("utf-8")
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    return (bom + line + _newline(text) + text[len(bom) :]).encode("utf-8")


def _replace(item: Imported, **changes: object) -> Imported:
    from dataclasses import replace

    return replace(item, **changes)  # type: ignore[arg-type]


def split_text(text: str) -> str:
    """The text with a statement-breakpoint line between its statements, so that each runs in
    its own transaction; a BEGIN ... COMMIT block stays whole. Removing the marker lines gives
    the text back."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text[len(bom) :]
    lexed = _lexable(body)
    try:
        pieces = split(lexed)
    except LexError:
        return text  # migrator reports the file as it is: nothing to split by
    newline = _newline(body)
    points: list[int] = []
    for piece in pieces:
        groups = _groups(piece.statements)
        for before, after in itertools.pairwise(groups):
            point = _breakpoint(lexed, before[-1], after[0])
            if point is not None:
                points.append(point)
    out, last = [], 0
    for point in points:
        out += [body[last:point], MARKER, newline]
        last = point
    out.append(body[last:])
    return bom + "".join(out)


def _groups(statements: Sequence[Statement]) -> list[list[Statement]]:
    """Statements by chunk: one each, but a BEGIN ... COMMIT block together."""
    groups: list[list[Statement]] = []
    open_block = False
    for statement in statements:
        words = statement.words
        first = words[0] if words else ""
        second = words[1] if len(words) > 1 else ""
        if open_block:
            groups[-1].append(statement)
            ends = first in ("commit", "end", "rollback", "abort") and "to" not in words[1:3]
            open_block = not (ends and second != "prepared")
            continue
        groups.append([statement])
        open_block = first == "begin" or (first == "start" and second == "transaction")
    return groups


def _breakpoint(text: str, before: Statement, after: Statement) -> int | None:
    """Where a marker line goes between two statements: at the start of the line after the
    first one ends, else of the line the second starts on; None when neither is outside a
    comment (the two stay in one chunk)."""
    line_end = text.find("\n", before.end)
    if line_end >= 0 and line_end + 1 <= after.start and "/*" not in text[before.end : line_end]:
        return line_end + 1
    line_start = text.rfind("\n", 0, after.start) + 1
    if line_start > before.end and not text[line_start : after.start].strip():
        return line_start
    return None


def unsplit(text: str) -> str:
    """The text without the lines migrator added on import: statement-breakpoint lines and a
    no-transaction line on top."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    lines = _any_lines(text[len(bom) :])
    if lines and lines[0].rstrip("\r\n") == NO_TRANSACTION:
        lines = lines[1:]
    return bom + "".join(line for line in lines if line.rstrip("\r\n") != MARKER)


def _split_imported(item: Imported) -> Imported:
    up = split_text(item.up.decode("utf-8")).encode("utf-8")
    down = None if item.down is None else split_text(item.down.decode("utf-8")).encode("utf-8")
    return _replace(item, up=up, down=down)


def has_statements(text: str) -> bool:
    """Whether SQL text holds a statement (not only comments and blank lines)."""
    try:
        return any(piece.statements for piece in split(text.lstrip("\ufeff")))
    except LexError:
        return True  # it holds something: migrator reports what, when it runs


def autocommit_statements(text: str) -> list[str]:
    """What in the text cannot run inside a transaction (CREATE INDEX CONCURRENTLY, ...)."""
    try:
        pieces = split(text.lstrip("\ufeff"))
    except LexError:
        return []
    found = (autocommit_reason(s.words) for piece in pieces for s in piece.statements)
    return [reason for reason in found if reason]


def _name(rest: str, fallback: str = "migration") -> str:
    """The part of a migrator file name after the version: the source's (a trailing .down,
    which would make it a down file, as _down), else `fallback`."""
    rest = rest.strip()
    if rest.endswith(".down"):
        rest = rest[: -len(".down")] + "_down"
    return rest if rest and "/" not in rest and "\\" not in rest else fallback


def _version(digits: str) -> int | None:
    value = int(digits)
    return value if value <= MAX_VERSION else None


def _top_level(files: Sequence[SourceFile]) -> tuple[list[SourceFile], list[Reported]]:
    """The files of the folder itself; .sql files in sub-folders reported (the tool does not
    read them)."""
    top, reported = [], []
    for file in files:
        if "/" not in file.path:
            top.append(file)
        elif file.path.lower().endswith(".sql"):
            reported.append(Reported(file.path, "in a sub-folder, which the tool does not read"))
    return top, reported


def _not_utf8(file: SourceFile) -> Reported:
    return Reported(file.path, "not UTF-8 text: migrator runs UTF-8 files only")


# --- dbmate ------------------------------------------------------------------------------

_DBMATE_FILE = re.compile(r"([0-9]+).*\.sql", re.DOTALL)
_DBMATE_UP = re.compile(r"(?m)^--\s*migrate:up(\s*$|\s+\S+.*$)")
_DBMATE_DOWN = re.compile(r"(?m)^--\s*migrate:down(\s*$|\s+\S+.*$)")
# Halves of a migration that another tool keeps in two files: dbmate's `\d+.*\.sql` takes each
# as a migration of its own, so a down half would run as an up.
_HALF = re.compile(r".*[._-](?:up|down)\.sql", re.IGNORECASE | re.DOTALL)


def _dbmate(files: Sequence[SourceFile]) -> tuple[list[Imported], list[Reported], list[Reported]]:
    top, reported = _top_level(files)
    found = []
    for file in sorted(top, key=lambda f: f.path):  # dbmate runs them in file name order
        match = _DBMATE_FILE.fullmatch(file.path)
        if match is None:
            if file.path.lower().endswith(".sql"):
                reported.append(
                    Reported(file.path, "dbmate skips it: its names are <version>_<name>.sql")
                )
            continue
        if _HALF.fullmatch(file.path):
            reported.append(
                Reported(
                    file.path,
                    f"dbmate runs it as a migration of its own (version {match[1]}): its "
                    "pattern <digits>*.sql takes any name, but an up or down half of a "
                    "migration belongs in one file with -- migrate:up and -- migrate:down",
                )
            )
            continue
        version = _version(match[1])
        text = decode(file)
        if version is None or text is None:
            reported.append(
                _not_utf8(file)
                if text is None
                else Reported(file.path, "the version does not fit migrator's bigint")
            )
            continue
        sections = _dbmate_sections(text)
        if isinstance(sections, str):
            reported.append(Reported(file.path, f"dbmate refuses it: {sections}"))
            continue
        up, down, up_options, down_options = sections
        rest = file.path[len(match[1]) : -len(".sql")].lstrip("_")
        found.append(
            Imported(
                version,
                f"{match[1]}_{_name(rest)}.sql",
                file.path,
                up.encode("utf-8"),
                _down_bytes(down, _dbmate_options(down_options)),
                key=match[1],
                no_transaction=_dbmate_options(up_options),
                down_source=file.path if has_statements(down) else "",
            )
        )
    return found, [*reported, *_out_of_order(found, "dbmate", "file names")], []


def _dbmate_sections(text: str) -> tuple[str, str, str, str] | str:
    """The up and down text of a dbmate file without its two marker lines, and the rest of
    each marker line (its options); or why dbmate refuses the file."""
    ups = list(_DBMATE_UP.finditer(text))
    downs = list(_DBMATE_DOWN.finditer(text))
    if not ups:
        return "no '-- migrate:up' line"
    if not downs:
        return "no '-- migrate:down' line"
    if len(ups) > 1:
        return (
            "several '-- migrate:up' sections (dbmate records the version once, so a later "
            "section fails or is skipped): make one file of each"
        )
    if len(downs) > 1:
        return "two '-- migrate:down' lines (dbmate wants each after its own -- migrate:up)"
    up, down = ups[0].start(), downs[0].start()
    if down < up:
        return "'-- migrate:down' comes before '-- migrate:up'"
    before = text[:up]
    if any(line.strip() and not line.strip().startswith("--") for line in before.split("\n")):
        return "statements before '-- migrate:up'"
    up_end, down_end = _line_end(text, up), _line_end(text, down)
    return (
        before + text[up_end:down],
        text[down_end:],
        text[up:up_end].removeprefix("--").strip().removeprefix("migrate:up"),
        text[down:down_end].removeprefix("--").strip().removeprefix("migrate:down"),
    )


def _line_end(text: str, start: int) -> int:
    """Where the line holding `start` ends, past its LF (the text's end without one)."""
    newline = text.find("\n", start)
    return len(text) if newline < 0 else newline + 1


def _out_of_order(found: Sequence[Imported], tool: str, order: str) -> list[Reported]:
    """Files the tool runs in another order than their versions give (it sorts by `order`):
    each one whose version is below one the tool runs before it."""
    reported, highest = [], None
    for item in found:
        if highest is not None and item.version < highest.version:
            reported.append(
                Reported(
                    item.source,
                    f"{tool} runs it after {highest.source} ({tool} sorts by {order}), but its "
                    "version puts it before: rename it so that both orders agree",
                )
            )
        elif highest is None or item.version > highest.version:
            highest = item
    return reported


def _dbmate_options(rest: str) -> bool:
    """Whether a marker line's options say transaction:false (dbmate keeps k:v pairs only)."""
    return any(word.split(":") == ["transaction", "false"] for word in rest.split())


def _down_bytes(down: str | None, no_transaction: bool = False) -> bytes | None:
    """A down part as a file's bytes; None when it holds no statement."""
    if down is None or not has_statements(down):
        return None
    data = down.encode("utf-8")
    return _prepend(data, NO_TRANSACTION) if no_transaction else data


# --- golang-migrate ----------------------------------------------------------------------

_GOLANG_FILE = re.compile(r"^([0-9]+)_(.*)\.(down|up)\.(.*)$", re.DOTALL)
_LOOSE_GOLANG = re.compile(r"^([0-9]+)_(.*)[._-](down|up)\.sql$", re.IGNORECASE | re.DOTALL)


def _golang_migrate(
    files: Sequence[SourceFile],
) -> tuple[list[Imported], list[Reported], list[Reported]]:
    top, reported = _top_level(files)
    parts: dict[int, dict[str, list[SourceFile]]] = {}
    names: dict[tuple[int, str], str] = {}
    for file in top:
        match = _GOLANG_FILE.match(file.path)
        if match is None:
            loose = _LOOSE_GOLANG.match(file.path)
            if loose is not None:
                reported.append(
                    Reported(
                        file.path,
                        "golang-migrate ignores it: its names are <version>_<name>.up.sql and "
                        "<version>_<name>.down.sql (a dot before up/down, lower case)",
                    )
                )
            elif file.path.lower().endswith(".sql"):
                reported.append(
                    Reported(file.path, "golang-migrate ignores it: not <version>_<name>.up.sql")
                )
            continue
        if match[4] != "sql":
            reported.append(
                Reported(
                    file.path,
                    f"golang-migrate runs it as the {match[3]} file of version {int(match[1])} "
                    f"(its pattern takes any extension, here {match[4]!r}): rename it to "
                    f"{match[1]}_{match[2]}.{match[3]}.sql if it is meant to run",
                )
            )
            continue
        version = _version(match[1])
        if version is None:
            reason = "its version fits golang-migrate's uint64, not migrator's bigint"
            if int(match[1]) >= 1 << 64:
                reason = "golang-migrate ignores it: its version does not fit a uint64"
            reported.append(Reported(file.path, reason))
            continue
        parts.setdefault(version, {}).setdefault(match[3], []).append(file)
        names.setdefault((version, match[3]), f"{match[1]}_{_name(match[2])}")
    found = []
    for version, directions in parts.items():
        every = [f for files_ in directions.values() for f in files_]
        if any(len(files_) > 1 for files_ in directions.values()):
            listed = ", ".join(f.path for f in every)
            reported.extend(
                Reported(
                    f.path,
                    f"version {version} has two files of one direction ({listed}): "
                    "golang-migrate refuses to run with them",
                )
                for f in every
            )
            continue
        up_files, down_files = directions.get("up", []), directions.get("down", [])
        if not up_files:
            reported.extend(
                Reported(
                    f.path,
                    "a down file without its up file (golang-migrate only moves the "
                    "version over it)",
                )
                for f in down_files
            )
            continue
        up, down = up_files[0], (down_files[0] if down_files else None)
        if decode(up) is None:
            reported.extend(_not_utf8(f) for f in every)
            continue
        down_text = None if down is None else decode(down)
        if down is not None and down_text is None:
            reported.append(_not_utf8(down))  # the up file is imported without it
            down = None
        found.append(
            Imported(
                version,
                names[(version, "up")] + ".sql",
                up.path,
                up.data,
                _down_bytes(down_text),
                key=str(version),
                down_source=down.path if down is not None else "",
            )
        )
    return found, reported, []


# --- goose -------------------------------------------------------------------------------

_GOOSE_ANNOTATIONS = {
    "up": "Up",
    "down": "Down",
    "statementbegin": "StatementBegin",
    "statementend": "StatementEnd",
    "no transaction": "NO TRANSACTION",
    "envsub on": "ENVSUB ON",
    "envsub off": "ENVSUB OFF",
}


def _goose_annotation(line: str) -> str | None:
    """The annotation of a goose comment line (as goose spells it), "" for a line goose
    refuses, None for a line that is not one."""
    bare = line.rstrip("\r\n")
    if not (bare.strip().startswith("--") and "+goose" in bare):
        return None
    if bare[:1] in (" ", "\t"):
        return ""
    command = bare.replace("--", "").replace("+goose", "", 1)
    if "+goose" in command:
        return ""
    return _GOOSE_ANNOTATIONS.get(command.strip().lower(), "")


_GOOSE_VERSION = re.compile(r"[+]?[0-9]+")
# An annotation but for the case of +goose, which goose matches exactly: a plain comment to it.
_GOOSE_UPPER = re.compile(
    r"[ \t]*--[ \t]*\+goose[ \t]+(?:up|down|statementbegin|statementend|no transaction|"
    r"envsub on|envsub off)[ \t]*\r?\n?",
    re.IGNORECASE,
)


def _goose(files: Sequence[SourceFile]) -> tuple[list[Imported], list[Reported], list[Reported]]:
    top, reported = _top_level(files)
    found, warnings = [], []
    for file in top:
        base, dot, ext = file.path.rpartition(".")
        if not dot or ext not in ("sql", "go"):
            if file.path.lower().endswith(".sql"):
                reported.append(Reported(file.path, "goose runs .sql files only (lower case)"))
            continue
        if file.path.endswith("_test.go"):
            continue
        before, underscore, rest = base.partition("_")
        if not underscore or _GOOSE_VERSION.fullmatch(before) is None:
            if ext == "sql":
                reported.append(
                    Reported(file.path, "no version: goose's names are <version>_<name>.sql")
                )
            continue
        version = int(before)
        if version < 1 or version > MAX_VERSION:
            reported.append(
                Reported(file.path, "goose skips it: versions start at 1 and fit an int64")
            )
            continue
        if ext == "go":
            reported.append(
                Reported(file.path, "a Go migration: migrator runs SQL files; rewrite it as SQL")
            )
            continue
        text = decode(file)
        if text is None:
            reported.append(_not_utf8(file))
            continue
        parsed = _goose_sections(text)
        if isinstance(parsed, str):
            reported.append(Reported(file.path, f"goose would not run it as meant: {parsed}"))
            continue
        up, down, options = parsed
        if "ENVSUB ON" in options:
            warnings.append(
                Reported(
                    file.path,
                    "-- +goose ENVSUB ON: goose put environment variables into it; migrator "
                    "sends the SQL as written (${VAR} stays)",
                )
            )
        name = f"{before.lstrip('+')}_{_name(rest)}.sql"
        # goose sends each statement on its own; without a transaction each one commits
        no_transaction = "NO TRANSACTION" in options
        found.append(
            Imported(
                version,
                name,
                file.path,
                up.encode("utf-8"),
                _down_bytes(down, no_transaction),
                key=str(version),
                no_transaction=no_transaction,
                down_source=file.path if down is not None and has_statements(down) else "",
                by_statement=no_transaction,
            )
        )
    return found, reported, warnings


def _goose_statement_ends(line: str) -> bool:
    """goose's end of a statement: the last word before a -- word ends with ;."""
    last = ""
    for word in line.split():
        if word.startswith("--"):
            break
        last = word
    return last.endswith(";")


def _goose_sections(text: str) -> tuple[str, str | None, set[str]] | str:
    """The up and down text of a goose file without its annotation lines, and its file-wide
    options; or why goose refuses the file."""
    up: list[str] = []
    down: list[str] = []
    options: set[str] = set()
    section: list[str] | None = None
    leading: list[str] = []
    in_block = False
    pending = ""  # a statement goose has not seen the end of (its ; ends a line)
    for number, line in enumerate(_lines(text), 1):
        annotation = _goose_annotation(line)
        if annotation is None and _GOOSE_UPPER.fullmatch(line):
            return (
                f"line {number}: goose reads {line.strip()!r} as a plain comment (it looks "
                "for +goose in lower case), so the lines after it would run where they are"
            )
        if annotation is None:
            if section is None:
                if line.strip() and not line.strip().startswith("--"):
                    return f"line {number}: SQL before '-- +goose Up'"
                leading.append(line)
            else:
                section.append(line)
                if not in_block and (pending or not line.strip().startswith("--")):
                    pending = "" if _goose_statement_ends(line) else pending + line
            continue
        if annotation == "":
            return f"line {number}: {line.strip()!r} is not an annotation goose knows"
        if annotation == "Up":
            if section is not None:
                return f"line {number}: a second '-- +goose Up', or one after Down"
            section = up
        elif annotation == "Down":
            if section is None or in_block:
                return f"line {number}: '-- +goose Down' before Up or inside a statement block"
            if pending.strip():
                return f"line {number}: '-- +goose Down' after a statement without its semicolon"
            section = down
        elif annotation == "StatementBegin":
            if section is None:
                return f"line {number}: StatementBegin before '-- +goose Up'"
            in_block = True
        elif annotation == "StatementEnd":
            if not in_block:
                return f"line {number}: StatementEnd without StatementBegin"
            in_block, pending = False, ""
        else:
            options.add(annotation)
    if section is None:
        return "no '-- +goose Up' line"
    if in_block:
        return "a StatementBegin without its StatementEnd"
    if pending.strip():
        return "its last statement has no semicolon at the end of a line"
    has_down = section is down
    return "".join(leading + up), ("".join(down) if has_down else None), options


# --- prisma ------------------------------------------------------------------------------

_LEADING_DIGITS = re.compile(r"([0-9]+)_?(.*)", re.DOTALL)


def _prisma(files: Sequence[SourceFile]) -> tuple[list[Imported], list[Reported], list[Reported]]:
    folders: dict[str, dict[str, SourceFile]] = {}
    reported: list[Reported] = []
    for file in files:
        folder, slash, rest = file.path.partition("/")
        if slash:
            folders.setdefault(folder, {})[rest] = file
    lock = next((file for file in files if file.path == "migration_lock.toml"), None)
    provider = _prisma_provider(lock)
    if provider not in (None, "postgresql", "postgres"):
        return (
            [],
            [
                Reported(folder, f"migration_lock.toml says provider {provider!r}: not PostgreSQL")
                for folder in sorted(folders)
            ],
            [],
        )
    found: list[Imported] = []
    for folder in sorted(folders, key=_collation):  # Prisma runs them in localeCompare order
        contents = folders[folder]
        script = contents.get("migration.sql")
        if folder.startswith("."):
            reported.append(
                Reported(folder, "a hidden folder that Prisma runs as a migration: not imported")
            )
            continue
        if script is None:
            reported.append(Reported(folder, "no migration.sql: prisma migrate deploy fails on it"))
            continue
        match = _LEADING_DIGITS.fullmatch(folder)
        if match is None or _version(match[1]) is None:
            reported.append(
                Reported(
                    f"{folder}/migration.sql",
                    "the folder name does not start with a number (Prisma's "
                    "YYYYMMDDHHMMSS_name) that migrator can take as its version: rename it",
                )
            )
            continue
        version = int(match[1])
        if decode(script) is None:
            reported.append(_not_utf8(script))
            continue
        found.append(
            Imported(
                version,
                f"{prisma_stem(folder)}.sql",
                script.path,
                script.data,
                key=folder,
            )
        )
        for name in sorted(contents):
            if name != "migration.sql" and name.lower().endswith(".sql"):
                reported.append(
                    Reported(f"{folder}/{name}", "Prisma runs only migration.sql: not imported")
                )
    return found, [*reported, *_out_of_order(found, "Prisma", "folder names")], []


# ICU's root collation, which Prisma's localeCompare sorts folder names by: spaces and
# punctuation first, then symbols, digits, and letters (case-insensitive, lower case first).
_COLLATION = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789"


def _collation(name: str) -> tuple[tuple[tuple[int, str], ...], tuple[bool, ...]]:
    """A sort key: the characters by class and letter first, their case (lower first) after."""
    primary = tuple(
        (_COLLATION.index(c), c) if c in _COLLATION else (len(_COLLATION), c.lower()) for c in name
    )
    return primary, tuple(c.isupper() for c in name)


def prisma_stem(folder: str) -> str:
    """The migrator file name (without .sql) of a Prisma migration folder: the folder's name,
    with a name part after its number when it has none."""
    match = _LEADING_DIGITS.fullmatch(folder)
    if match is None:
        return folder
    return f"{match[1]}_{_name(match[2] or '')}"


def _prisma_provider(lock: SourceFile | None) -> str | None:
    """The provider migration_lock.toml names; None without one."""
    import tomllib

    if lock is None:
        return None
    try:
        provider = tomllib.loads(lock.data.decode("utf-8")).get("provider")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # Prisma reads only its provider line; nothing to say
    return provider if isinstance(provider, str) else None


# --- diesel ------------------------------------------------------------------------------


def _diesel(files: Sequence[SourceFile]) -> tuple[list[Imported], list[Reported], list[Reported]]:
    folders: dict[str, dict[str, SourceFile]] = {}
    reported: list[Reported] = []
    for file in files:
        folder, slash, rest = file.path.partition("/")
        if slash and not folder.startswith("."):
            folders.setdefault(folder, {})[rest] = file
    found: list[Imported] = []
    for folder in sorted(folders):
        contents = folders[folder]
        visible = {name for name in contents if not name.startswith(".")}
        up = contents.get("up.sql")
        if up is None:
            if visible:
                reported.append(
                    Reported(folder, "no up.sql: Diesel refuses the folder (unknown format)")
                )
            continue
        digits = folder.split("_", 1)[0].replace("-", "")
        if not digits.isascii() or not digits.isdigit() or _version(digits) is None:
            reported.append(
                Reported(
                    f"{folder}/up.sql",
                    f"its Diesel version {digits!r} is not a number migrator can take: rename "
                    "the folder YYYY-MM-DD-HHMMSS_name",
                )
            )
            continue
        if not up.data:
            reported.append(
                Reported(f"{folder}/up.sql", "empty: Diesel refuses to run an empty migration")
            )
            continue
        up_text = decode(up)
        down = contents.get("down.sql")
        down_text = None if down is None else decode(down)
        if up_text is None or (down is not None and down_text is None):
            reported.append(_not_utf8(up if up_text is None else down))  # type: ignore[arg-type]
            continue
        no_transaction = _diesel_no_transaction(contents.get("metadata.toml"))
        rest = folder.split("_", 1)[1] if "_" in folder else ""
        found.append(
            Imported(
                int(digits),
                f"{digits}_{_name(rest)}.sql",
                up.path,
                up.data,
                _down_bytes(down_text, no_transaction),
                key=digits,
                no_transaction=no_transaction,
                down_source=down.path if down is not None and down_text is not None else "",
            )
        )
        for name in sorted(visible - {"up.sql", "down.sql", "metadata.toml"}):
            if name.lower().endswith(".sql"):
                reported.append(
                    Reported(f"{folder}/{name}", "Diesel runs only up.sql and down.sql")
                )
    found.sort(key=lambda item: item.key)  # Diesel sorts versions as text
    return found, [*reported, *_out_of_order(found, "Diesel", "version text")], []


def _diesel_no_transaction(metadata: SourceFile | None) -> bool:
    """Whether Diesel runs the folder outside a transaction: metadata.toml's
    run_in_transaction, false when the file parses without it (serde's bool default)."""
    import tomllib

    if metadata is None:
        return False
    try:
        values = tomllib.loads(metadata.data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False  # Diesel falls back to its default, in a transaction
    value = values.get("run_in_transaction", False)
    return value is False  # another type fails serde: Diesel takes its default, a transaction


# --- flyway ------------------------------------------------------------------------------

_FLYWAY_VERSION = re.compile(r"[0-9]+(?:[._][0-9]+)*")
_FLYWAY_CALLBACK = re.compile(r"(?:before|after)[A-Z][A-Za-z]*(?:__.*)?\.sql", re.IGNORECASE)


def flyway_version(text: str) -> tuple[int, ...] | None:
    """A Flyway version as Flyway compares it (1_1 = 1.1, 1.0 = 1); None when it is not one."""
    if _FLYWAY_VERSION.fullmatch(text) is None:
        return None
    parts = [int(part) for part in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def flyway_key(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _flyway(files: Sequence[SourceFile]) -> tuple[list[Imported], list[Reported], list[Reported]]:
    reported: list[Reported] = []
    warnings: list[Reported] = []
    versioned: dict[str, list[tuple[tuple[int, ...], str, str, SourceFile]]] = {"V": [], "U": []}
    repeatables: list[tuple[str, SourceFile]] = []
    configs = {file.path: file for file in files if file.path.endswith(".sql.conf")}
    for file in files:
        base = file.path.rsplit("/", 1)[-1]
        if not base.lower().endswith(".sql"):
            continue
        stem = base[: -len(".sql")]
        prefix, separator, description = stem[:1], stem.find("__"), ""
        if _FLYWAY_CALLBACK.fullmatch(base) and prefix not in "VURB":
            reported.append(Reported(file.path, "a Flyway callback: migrator has no callbacks"))
            continue
        if separator < 0 and prefix in ("V", "U") and flyway_version(stem[1:]):
            separator = len(stem)  # V2.sql: Flyway runs it, with no description
        if separator < 0 or prefix not in ("V", "U", "R", "B"):
            reported.append(
                Reported(
                    file.path,
                    "Flyway skips it (its names are V<version>__<description>.sql, U... for "
                    "undo, R__... repeatable; V upper case, two underscores)",
                )
            )
            continue
        version_text, description = stem[1:separator], stem[separator + 2 :]
        if _flyway_config(configs.get(file.path + ".conf"), "shouldExecute") == "false":
            reported.append(
                Reported(file.path, "Flyway does not run it: shouldExecute=false in its .conf")
            )
            continue
        if prefix == "B":
            reported.append(
                Reported(
                    file.path,
                    "a Flyway baseline migration (B): not imported; the V files it stands for are",
                )
            )
            continue
        if prefix == "R":
            if version_text:
                reported.append(Reported(file.path, "Flyway skips it: R__ takes no version"))
            else:
                repeatables.append((description, file))
            continue
        version = flyway_version(version_text)
        if version is None:
            reported.append(
                Reported(file.path, f"Flyway skips it: {version_text!r} is not a version")
            )
            continue
        versioned[prefix].append((version, version_text, description, file))
    integers = all(len(v) == 1 for v, _, _, _ in versioned["V"])
    ordered = sorted(versioned["V"], key=lambda item: (item[0], item[3].path))
    width = max(4, len(str(len(ordered))))
    undo: dict[tuple[int, ...], list[SourceFile]] = {}
    for version, _, _, file in versioned["U"]:
        undo.setdefault(version, []).append(file)
    found: list[Imported] = []
    by_version: dict[tuple[int, ...], list[SourceFile]] = {}
    for version, _, _, file in ordered:
        by_version.setdefault(version, []).append(file)
    rank = 0
    for version, text_version, description, file in ordered:
        rank += 1
        if len(by_version[version]) > 1:
            listed = ", ".join(f.path for f in by_version[version])
            reported.append(
                Reported(
                    file.path,
                    f"two files with version {flyway_key(version)} ({listed}): Flyway refuses them",
                )
            )
            continue
        text = decode(file)
        if text is None:
            reported.append(_not_utf8(file))
            continue
        if integers:  # V7 keeps 7 (V007: 007); V7.0 is Flyway's 7
            digits = text_version if text_version.isdigit() else str(version[0])
            number, name = version[0], f"{digits}_{_name(description)}.sql"
        else:  # numbered in Flyway's order, Flyway's version kept after a V
            shown = text_version.replace("_", ".")
            number, name = rank, f"{rank:0{width}d}_V{shown}__{_name(description)}.sql"
        if number > MAX_VERSION:
            reported.append(Reported(file.path, "the version does not fit migrator's bigint"))
            continue
        downs = undo.pop(version, [])
        down = downs[0] if len(downs) == 1 else None
        reported.extend(
            Reported(f.path, f"two undo files for version {flyway_key(version)}: Flyway refuses "
                     "them")
            for f in downs
            if len(downs) > 1
        )  # fmt: skip
        down_text = None if down is None else decode(down)
        if down is not None and down_text is None:
            reported.append(_not_utf8(down))
            down = None
        alone, mixed = _flyway_outside_transaction(text, configs.get(file.path + ".conf"))
        if mixed:
            warnings.append(Reported(file.path, mixed))
        down_bytes = None
        if down is not None and down_text is not None:
            down_alone, _ = _flyway_outside_transaction(down_text, configs.get(f"{down.path}.conf"))
            if down_alone:
                down_text = split_text(down_text)
            down_bytes = _down_bytes(down_text, down_alone)
        for path, body in ((file.path, text), (down.path if down else "", down_text or "")):
            if "${" in body:
                warnings.append(Reported(path, _PLACEHOLDERS))
        found.append(
            Imported(
                number,
                name,
                file.path,
                file.data,
                down_bytes,
                key=flyway_key(version),
                no_transaction=alone,
                down_source=down.path if down is not None else "",
                by_statement=alone,
            )
        )
    for version, files_ in sorted(undo.items()):
        reported.extend(
            Reported(file.path, f"an undo file without V{flyway_key(version)}") for file in files_
        )
    seen: dict[str, SourceFile] = {}
    for description, file in sorted(repeatables, key=lambda item: item[1].path):
        if description in seen:
            reported.append(
                Reported(
                    file.path,
                    f"two repeatable files named {description!r} ({seen[description].path}): "
                    "Flyway refuses them",
                )
            )
            continue
        seen[description] = file
        script = decode(file)
        if script is None:
            reported.append(_not_utf8(file))
            continue
        if "${" in script:
            warnings.append(Reported(file.path, _PLACEHOLDERS))
        found.append(
            Imported(
                0,
                f"R__{_name(description)}.sql",
                file.path,
                file.data,
                key=description.replace("_", " "),
                no_transaction=_flyway_no_transaction(configs.get(file.path + ".conf")),
            )
        )
    return found, reported, warnings


_PLACEHOLDERS = "holds ${...}: Flyway replaces placeholders; migrator sends the SQL as written"


def _flyway_outside_transaction(text: str, config: SourceFile | None) -> tuple[bool, str]:
    """Whether Flyway runs the script statement by statement outside a transaction (its .conf
    says executeInTransaction=false, or it holds a statement that cannot run in one), and a
    warning when it holds both kinds (Flyway runs that only with mixed=true)."""
    if _flyway_no_transaction(config):
        return True, ""
    alone = autocommit_statements(text)
    if not alone:
        return False, ""
    try:
        total = sum(len(piece.statements) for piece in split(_lexable(text.lstrip("\ufeff"))))
    except LexError:
        total = len(alone)
    mixed = ""
    if total > len(alone):
        mixed = (
            f"holds {alone[0]} beside statements that run in a transaction: Flyway runs it "
            "only with mixed=true, then statement by statement outside a transaction, as "
            "imported"
        )
    return True, mixed


def _flyway_config(config: SourceFile | None, key: str) -> str | None:
    """A key's value in a script's .conf file, lower case; None when not there."""
    if config is None:
        return None
    for line in config.data.decode("utf-8", "replace").splitlines():
        name, equals, value = line.partition("=")
        if equals and name.strip() == key:
            return value.strip().lower()
    return None


def _flyway_no_transaction(config: SourceFile | None) -> bool:
    """Whether a script's .conf file says executeInTransaction=false."""
    return _flyway_config(config, "executeInTransaction") == "false"


# --- drizzle -----------------------------------------------------------------------------


def _drizzle(files: Sequence[SourceFile]) -> tuple[list[Imported], list[Reported], list[Reported]]:
    from migrator import drizzle
    from migrator.errors import BadFile

    journal = next((f for f in files if f.path == "meta/_journal.json"), None)
    if journal is None:
        return [], [Reported("meta/_journal.json", "missing: not a drizzle-kit folder")], []
    try:
        entries = drizzle.parse_journal(journal.data, "meta/_journal.json")
    except BadFile as exc:
        return [], [Reported("meta/_journal.json", problem) for problem in exc.problems], []
    by_path = {file.path: file for file in files}
    found, reported = [], []
    for entry in entries:
        file = by_path.get(f"{entry.tag}.sql")
        if file is None:
            reported.append(Reported(f"{entry.tag}.sql", "listed in the journal, but missing"))
            continue
        name = f"{entry.tag}.sql" if "_" in entry.tag else f"{entry.tag}_migration.sql"
        found.append(Imported(entry.version, name, file.path, file.data, key=entry.tag))
    listed = {f"{entry.tag}.sql" for entry in entries}
    reported.extend(
        Reported(file.path, "not in meta/_journal.json: Drizzle never runs it")
        for file in files
        if file.path.endswith(".sql") and "/" not in file.path and file.path not in listed
    )
    return found, reported, []


_READERS: dict[str, Reader] = {
    "flyway": _flyway,
    "drizzle": _drizzle,
    "dbmate": _dbmate,
    "golang-migrate": _golang_migrate,
    "goose": _goose,
    "prisma": _prisma,
    "diesel": _diesel,
}


# --- checksums and adoption ---------------------------------------------------------------


def flyway_checksum(data: bytes) -> int:
    """Flyway's checksum of a script: CRC32 of its lines without their line breaks (a BOM
    left out), as a signed 32-bit int."""
    text = data.decode("utf-8").removeprefix("\ufeff")
    crc = 0
    for line in re.split(r"\r\n|\r|\n", text):
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


_RENUMBERED = re.compile(r"[0-9]+_V([0-9]+(?:[._][0-9]+)*)__")


def file_key(kind: str, name: str, version: int) -> str:
    """What a migrator file imported from `kind` is keyed by in the tool's history, as the tool
    compares: the file name's digits as written (dbmate, Diesel: text), the folder name
    (Prisma), the Flyway version (kept after a V when versions were renumbered), else the
    version number."""
    stem = name.removesuffix(".sql")
    if kind in ("dbmate", "diesel"):
        return stem.split("_", 1)[0]
    if kind == "prisma":
        return stem
    if kind == "flyway":
        match = _RENUMBERED.match(name)
        parsed = flyway_version(match[1]) if match else None
        if parsed is not None:
            return flyway_key(parsed)
        return flyway_key((version,))
    return str(version)


def match(
    entries: Iterable[HistoryEntry],
    files: Sequence[tuple[str, str, bytes]],
    agrees: Callable[[bytes, str], bool] | None = None,
) -> Adoption:
    """Match each history entry to the file with its key, given (name, key, bytes) of the
    schema's files; with `agrees`, the pairs whose recorded checksum the file (without what
    import added) does not match."""
    by_key = {key: (name, data) for name, key, data in files}
    matched, without, mismatched = [], [], []
    for entry in entries:
        found = by_key.get(entry.key)
        if found is None:
            without.append(entry)
            continue
        name, data = found
        matched.append((name, entry))
        if agrees is not None and entry.checksum is not None:
            original = unsplit(data.decode("utf-8")).encode("utf-8")  # as before --split
            if not (agrees(data, entry.checksum) or agrees(original, entry.checksum)):
                mismatched.append((name, entry))
    matched.sort(key=lambda pair: pair[0])
    return Adoption(tuple(matched), tuple(without), tuple(mismatched))


# --- history tables ------------------------------------------------------------------------

TABLES = {
    "drizzle": "drizzle.__drizzle_migrations",
    "prisma": "public._prisma_migrations",
    "dbmate": "public.schema_migrations",
    "golang-migrate": "public.schema_migrations",
    "goose": "public.goose_db_version",
    "flyway": "public.flyway_schema_history",
    "diesel": "public.__diesel_schema_migrations",
}
TOOL_NAMES = {  # the kinds import and adopt know, as each tool spells its name
    "drizzle": "Drizzle",
    "prisma": "Prisma",
    "dbmate": "dbmate",
    "golang-migrate": "golang-migrate",
    "goose": "goose",
    "flyway": "Flyway",
    "diesel": "Diesel",
}
KINDS = tuple(TOOL_NAMES)


def version_entries(versions: Iterable[object]) -> list[HistoryEntry]:
    """dbmate's and Diesel's applied versions as entries: text, compared as written."""
    return [HistoryEntry(str(v), f"version {v}") for v in versions]


def prisma_entries(
    rows: Iterable[tuple[str, str, bool, bool]],
) -> list[HistoryEntry]:
    """One entry per migration name, from rows (name, checksum, finished, rolled back) in
    started_at order: failed while a row is neither finished nor rolled back (Prisma's own
    rule), applied when a row is finished, else rolled back."""
    by_name: dict[str, list[tuple[str, bool, bool]]] = {}
    for name, checksum, finished, rolled_back in rows:
        by_name.setdefault(name, []).append((checksum, finished, rolled_back))
    entries = []
    for name, found in by_name.items():
        applied = [checksum for checksum, finished, back in found if finished and not back]
        if any(not finished and not back for _, finished, back in found):
            state = "failed"
        elif applied:
            state = "applied"
        else:
            state = "rolled back"
        recorded = applied[0] if applied else None
        entries.append(HistoryEntry(prisma_stem(name), f"migration {name}", state, recorded))
    return entries


def goose_entries(rows: Iterable[tuple[int, int, bool]]) -> list[HistoryEntry]:
    """The versions goose counts as applied, from rows (id, version_id, is_applied): each
    version's newest row decides; version 0 is goose's own first row."""
    newest: dict[int, bool] = {}
    for _, version, applied in sorted(rows):
        newest[version] = applied
    return [
        HistoryEntry(str(version), f"version_id {version}")
        for version, applied in sorted(newest.items())
        if applied and version > 0
    ]


def golang_entries(
    row: tuple[int, bool] | None, versions: Sequence[int]
) -> tuple[list[HistoryEntry], HistoryEntry | None]:
    """golang-migrate's one row (version, dirty) as entries for every file at or below it
    (golang-migrate applies them in order), and the entry of the row itself."""
    if row is None or (row[0] < 0 and not row[1]):
        return [], None
    version, dirty = row
    label = f"version {version}"
    if version < 0:
        label += " (golang-migrate's failed down of the first migration)"
    top = HistoryEntry(str(version), label, "dirty" if dirty else "applied")
    if dirty:
        return [top], top
    below = [
        HistoryEntry(str(v), f"version {v} (below the recorded {version})")
        for v in versions
        if v < version
    ]
    return [*below, top], top


# A baseline row (flyway baseline, or a B file's SQL_BASELINE) stands for every version below it.
FLYWAY_BASELINES = (
    "BASELINE",
    "SQL_BASELINE",
    "JDBC_BASELINE",
    "SQL_STATE_SCRIPT",
    "JDBC_STATE_SCRIPT",
)
FLYWAY_APPLIED = ("SQL", "JDBC", "SPRING_JDBC", "SCRIPT", "CUSTOM")


def flyway_entries(
    rows: Iterable[tuple[int, str | None, str, str, str, int | None, bool]],
    versions: Sequence[tuple[int, ...]],
) -> list[HistoryEntry]:
    """The versioned migrations flyway_schema_history shows applied, from rows (rank, version,
    description, type, script, checksum, success) in rank order: failed rows as such, undone
    and deleted ones left out, a BASELINE row standing for every file at or below it (given
    the files' Flyway versions); and each repeatable's newest run (no version), by its
    description, with its checksum (a DELETE row takes one back)."""
    applied: dict[str, HistoryEntry] = {}
    failed: list[HistoryEntry] = []
    runs: dict[str, HistoryEntry] = {}
    for _, version, description, kind, script, checksum, success in rows:
        if kind == "SCHEMA":
            continue
        if version is None:
            if not success:  # Flyway stops on a failed repeatable too
                failed.append(HistoryEntry(description, f"repeatable {script}", "failed"))
            elif kind == "DELETE":
                runs.pop(description, None)
            else:
                recorded = None if checksum is None else str(checksum)
                label = f"repeatable {description}"
                runs[description] = HistoryEntry(
                    description, label, checksum=recorded, repeatable=True
                )
            continue
        parsed = flyway_version(version)
        key = flyway_key(parsed) if parsed else version
        label = f"version {version} ({script})"
        if not success:
            failed.append(HistoryEntry(key, label, "failed"))
        elif kind in FLYWAY_BASELINES and parsed is not None:
            for found in versions:
                if found <= parsed:
                    applied[flyway_key(found)] = HistoryEntry(
                        flyway_key(found), f"version {flyway_key(found)} (baseline {version})"
                    )
        elif kind == "DELETE" or kind.startswith("UNDO"):
            applied.pop(key, None)
        elif kind in FLYWAY_APPLIED:
            applied[key] = HistoryEntry(
                key, label, checksum=None if checksum is None else str(checksum)
            )
    return [*failed, *applied.values(), *runs.values()]


def repeatable_key(name: str) -> str:
    """Flyway's description of a repeatable file R__<description>.sql."""
    return name.removeprefix("R__").removesuffix(".sql").replace("_", " ")


def prisma_agrees(data: bytes, recorded: str) -> bool:
    """Whether a migration.sql matches the checksum Prisma recorded, as Prisma compares: the
    bytes as they are, or with CRLF and LF swapped; old rows' unpadded hex."""
    text = data.decode("utf-8")
    for variant in (text, text.replace("\r\n", "\n"), text.replace("\n", "\r\n")):
        digest = hashlib.sha256(variant.encode("utf-8")).digest()
        if recorded and len(recorded) != 64:  # written by an old engine: no zero padding
            expected = "".join(f"{byte:x}" for byte in digest)
        else:
            expected = digest.hex()
        if expected == recorded:
            return True
    return False


def flyway_agrees(data: bytes, recorded: str) -> bool:
    return str(flyway_checksum(data)) == recorded
