"""PURE. Migration files: name rule, UTF-8 check, normalization, hashes, directives, chunk rules."""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from migrator.errors import BadFile
from migrator.lexer import MARKER as MARKER  # discovery.py reads sqlfile.MARKER
from migrator.lexer import LexError, Statement, split
from migrator.model import Chunk, ChunkKind, Migration, SqlFile, TxMode

NAME = re.compile(r"([0-9]+)_([^/\\]+)\.sql")  # ASCII digits: int() takes any Unicode digit
BOM = b"\xef\xbb\xbf"
_DIRECTIVE = re.compile(r"--\s*migrator:(.*)")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|min|h|d)?")
_UNIT_MS = {"us": 0.001, "ms": 1, "": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_VERSION = 2**63 - 1  # the journal's version column is a bigint
MAX_TIMEOUT_MS = 2**31 - 1  # lock_timeout and statement_timeout are ints of milliseconds


def timeout_ms(text: str) -> float | None:
    """A PostgreSQL duration (no unit: milliseconds) in milliseconds; None when it is not one
    or PostgreSQL's timeouts cannot hold it."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    ms = float(match[1]) * _UNIT_MS[match[2] or ""]
    return ms if ms <= MAX_TIMEOUT_MS else None


def parse_name(filename: str) -> tuple[int, str] | None:
    """`0001_accounts.sql` -> (1, "accounts"); None when the name does not fit the rule."""
    match = NAME.fullmatch(filename)
    return (int(match[1]), match[2]) if match else None


def normalize(data: bytes, path: str) -> str:
    """Decode UTF-8 without a BOM and turn CRLF/CR into LF; BadFile names the byte."""
    skipped = len(BOM) if data.startswith(BOM) else 0
    try:
        text = data[skipped:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadFile(
            [f"{path}: invalid UTF-8 at byte offset {exc.start + skipped}"],
            hint="Save the file as UTF-8.",
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    nul = text.find("\x00")  # after the line ends are LF, so that line numbers are right
    if nul >= 0:
        line, column = line_column(text, nul)
        raise BadFile([f"{path}:{line}:{column}: NUL byte (PostgreSQL cannot take it)"])
    return text


def sha256(text: str) -> str:
    """Hex sha256 of the UTF-8 text: the hash Drizzle records for an LF file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


REPEATABLE = re.compile(r"R__(.+)\.sql", re.DOTALL)  # Flyway's name for a repeatable file


def read(schema: str, filename: str, path: str, data: bytes) -> SqlFile:
    """Turn a file's name and bytes into a SqlFile; BadFile when either is wrong."""
    if REPEATABLE.fullmatch(filename):
        text = normalize(data, path)
        return SqlFile(schema, 0, filename, path, text, sha256(text), repeatable=True)
    parsed = parse_name(filename)
    if parsed is None:
        raise BadFile(
            [f"{path}: name does not fit <version>_<name>.sql (e.g. 0001_create_accounts.sql)"]
        )
    if parsed[0] > MAX_VERSION:
        raise BadFile([f"{path}: version {parsed[0]} does not fit the journal's bigint"])
    text = normalize(data, path)
    return SqlFile(schema, parsed[0], filename, path, text, sha256(text))


def line_column(text: str, offset: int, starts: Sequence[int] | None = None) -> tuple[int, int]:
    """1-based line and column of a character offset in the text; `starts` (line_starts of
    the text) makes it a lookup, for the many places of one file."""
    if starts is None:
        line_start = text.rfind("\n", 0, offset) + 1
        return text.count("\n", 0, offset) + 1, offset - line_start + 1
    line = bisect.bisect_right(starts, offset)
    return line, offset - starts[line - 1] + 1


def line_starts(text: str) -> list[int]:
    """Where each line of the text starts."""
    return [0, *(match.end() for match in re.finditer("\n", text))]


def autocommit_reason(words: tuple[str, ...]) -> str:
    """Why PostgreSQL refuses this statement inside a transaction block ("" if it does not)."""
    first, rest = (words[0], words[1:]) if words else ("", ())
    second = rest[0] if rest else ""
    if first == "vacuum":
        return "VACUUM"
    if first in ("create", "drop"):
        if second in ("database", "tablespace", "subscription"):
            return f"{first} {second}".upper()
        if "index" in rest[:2] and "concurrently" in rest[1:3]:
            return f"{first} index concurrently".upper()
    if first == "reindex" and (
        "concurrently" in rest[:2] or second in ("schema", "database", "system")
    ):
        return "REINDEX " + ("CONCURRENTLY" if "concurrently" in rest[:2] else second.upper())
    if first == "alter":
        if second == "system":
            return "ALTER SYSTEM"
        if second == "table" and "detach" in rest and words[-1] in ("concurrently", "finalize"):
            return f"ALTER TABLE ... DETACH PARTITION {words[-1].upper()}"
        if second == "database" and "tablespace" in rest:
            return "ALTER DATABASE ... SET TABLESPACE"
    if first == "cluster" and len(rest) <= 1 and rest[:1] in ((), ("verbose",)):
        return "CLUSTER"
    if first in ("commit", "rollback") and second == "prepared":
        return f"{first} prepared".upper()
    return ""


_ENDS = {"commit", "end", "rollback", "abort"}


def _transaction_control(words: tuple[str, ...]) -> str:
    """'open', 'close', 'inner' (SAVEPOINT...) or '' for a statement's transaction role."""
    first = words[0] if words else ""
    second = words[1] if len(words) > 1 else ""
    if first == "begin" or (first == "start" and second == "transaction"):
        return "open"
    if first == "rollback" and "to" in words[1:3]:  # ROLLBACK [WORK | TRANSACTION] TO
        return "inner"
    if first in _ENDS and second != "prepared":
        return "close"
    if first in ("savepoint", "release"):
        return "inner"
    if first == "prepare" and words[1:] == ("transaction",):  # not PREPARE name AS ...
        return "close"  # it ends the transaction as COMMIT does, holding its work unfinished
    return ""


# Naming a function without calling it: GRANT/REVOKE EXECUTE ON FUNCTION, COMMENT ON FUNCTION.
_NAMES_ONLY = frozenset({"grant", "revoke", "comment"})
_UNLOCKS = ("pg_advisory_unlock_all", "pg_advisory_unlock", "pg_advisory_unlock_shared")


def _refusal(statement: Statement) -> str:
    """Why a statement can never run under the runner ("" when it can)."""
    words = statement.words
    first = words[0] if words else ""
    if first == "discard" and words[1:2] in ((), ("all",)):
        return (
            "DISCARD ALL would drop the runner's advisory lock: use DISCARD PLANS, SEQUENCES or "
            "TEMP, and reset the settings you changed by name"
        )
    if first == "set" and "standard_conforming_strings" in words[1:3]:
        return (
            "SET standard_conforming_strings: the runner reads string literals with it on "
            "(PostgreSQL's default), so that no quote can hide a statement: write escapes as "
            "E'...' instead"
        )
    if first == "reset" and words[1:] == ("all",):
        return (
            "RESET ALL would undo the settings the runner gives the session (search_path, "
            "lock_timeout, statement_timeout, standard_conforming_strings): reset the settings "
            "you changed by name"
        )
    if first == "copy" and ("stdin" in words or "stdout" in words):
        return (
            "COPY ... FROM STDIN / TO STDOUT needs a client that streams the data, which a "
            "migration file cannot hold: load from a server-side file (COPY ... FROM 'path'), "
            "or use INSERT"
        )
    if first in _ENDS and "chain" in words and words[words.index("chain") - 1] != "no":
        return (
            f"{first.upper()} AND CHAIN leaves a transaction open after the chunk, where the "
            "journal update would be lost: end it with a plain COMMIT"
        )
    unlock = next((name for name in _UNLOCKS if name in statement.calls), "")
    if unlock and first not in _NAMES_ONLY:
        verb = "would" if unlock.endswith("_all") else "can"  # by key: the runner's is one
        return (
            f"{unlock}() {verb} release the runner's advisory lock and let another runner in: "
            "take your own locks with pg_advisory_xact_lock(), which the transaction's end "
            "releases"
        )
    return ""


def _sets_role(statement: Statement) -> bool:
    """Whether the statement may change the current or session user (SET ROLE, SET SESSION
    AUTHORIZATION, any set_config call): then the journal is written as the session user."""
    words = statement.words
    if "set_config" in statement.calls:
        return True
    if words[:1] != ("set",):
        return False
    return "role" in words[1:3] or ("session", "authorization") in (words[1:3], words[2:4])


# psql's commands and what to write instead, for the ones a migration file most often holds.
_PSQL_REMEDIES = {
    **dict.fromkeys(("\\i", "\\ir", "\\include", "\\include_relative"), "inline the file"),
    **dict.fromkeys(("\\set", "\\gset", "\\unset", "\\getenv"), "write the value"),
    **dict.fromkeys(("\\c", "\\connect"), "run migrator on each database"),
    "\\;": "write ; alone",
    "\\:": "write : alone",
}


def _psql_problem(token: str) -> str:
    """Why psql's command or variable `token` cannot run under migrator, and what to write."""
    if token.startswith(":"):
        return (
            f"psql variable {token}: migrator sends each chunk to the server as written, and "
            "the server does not substitute psql variables: write the value"
        )
    remedy = _PSQL_REMEDIES.get(token, "do its work in SQL, or remove it")
    return (
        f"psql meta-command {token}: migrator sends each chunk to the server as written, and "
        f"the server does not know psql's commands: {remedy}"
    )


_REINDEX_OPTIONS = re.compile(
    r"reindex(?:\s|/\*.*?\*/|--[^\n]*\n)*\(([^)]*)\)", re.IGNORECASE | re.DOTALL
)


def _reindex_concurrently(statement: Statement, text: str) -> bool:
    """REINDEX (..., CONCURRENTLY, ...): an option the words, read outside parentheses, miss."""
    options = _REINDEX_OPTIONS.match(text, statement.start)
    return options is not None and "concurrently" in options[1].lower().replace(",", " ").split()


def classify(statements: tuple[Statement, ...], text: str = "") -> tuple[ChunkKind, str, str, int]:
    """Kind and reason of a chunk, or a problem and the offending statement's offset; `text`
    is the text the statements' offsets point into."""
    for statement in statements:
        refusal = _refusal(statement)
        if refusal:
            return ChunkKind.TRANSACTIONAL, "", refusal, statement.start
    for statement in statements:
        reason = autocommit_reason(statement.words)
        if not reason and statement.words[:1] == ("reindex",):
            reason = "REINDEX (CONCURRENTLY)" if _reindex_concurrently(statement, text) else ""
        if reason and len(statements) > 1:
            problem = (
                f"{reason} shares its chunk with {len(statements) - 1} other statement(s); "
                "PostgreSQL runs a multi-statement chunk as one transaction, where it cannot run: "
                "give it a chunk of its own (add --> statement-breakpoint before and after it)"
            )
            return ChunkKind.AUTOCOMMIT, reason, problem, statement.start
        if reason:
            return ChunkKind.AUTOCOMMIT, reason, "", statement.start
    roles = [(s, _transaction_control(s.words)) for s in statements]
    if not any(role in ("open", "close") for _, role in roles):
        # Savepoints alone run inside the transaction the runner opens for the chunk.
        return ChunkKind.TRANSACTIONAL, "", "", statements[0].start
    is_open = False
    for statement, role in roles:
        word = "PREPARE TRANSACTION" if role and statement.words[0] == "prepare" else ""
        word = word or " ".join(statement.words[:1]).upper()  # "(SELECT 1)" has no words
        if role == "open" and is_open:
            return ChunkKind.SELF_MANAGED, "", f"{word} inside an open transaction", statement.start
        if role in ("close", "inner") and not is_open:
            problem = f"{word} without a BEGIN in the same chunk"
            return ChunkKind.SELF_MANAGED, "", problem, statement.start
        if role == "open":
            is_open = True
        elif role == "close":
            is_open = False
    if is_open:
        problem = "this chunk opens a transaction and does not end it: add COMMIT at its end"
        return ChunkKind.SELF_MANAGED, "", problem, statements[-1].start
    return ChunkKind.SELF_MANAGED, "BEGIN ... COMMIT", "", statements[0].start


@dataclass(frozen=True, slots=True)
class Directives:
    """What a file's leading `-- migrator:` comment lines say."""

    mode: TxMode = TxMode.STATEMENT
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    always_run: bool = False


def read_directives(text: str, path: str, *, allowed: frozenset[str]) -> tuple[Directives, int]:
    """Parse the leading comment lines; returns the directives and where the header ends."""
    mode, timeouts, always_run = TxMode.STATEMENT, dict[str, str](), False
    problems: list[str] = []
    offset = 0
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            break
        offset += len(line) + 1
        match = _DIRECTIVE.match(stripped)
        if match is None:
            continue
        word, _, value = match[1].strip().partition("=")
        word, value = word.strip(), value.strip()
        where = f"{path}:{number}"
        if word not in allowed:
            known = ", ".join(sorted(allowed))
            problems.append(f"{where}: unknown directive '{word}' (known: {known})")
        elif word in ("single-transaction", "no-transaction"):
            new_mode = TxMode(word)
            if value or (mode is not TxMode.STATEMENT and mode is not new_mode):
                problems.append(f"{where}: '{word}' takes no value and excludes the other mode")
            mode = new_mode
        elif word == "always-run":
            always_run = True
        elif word == "lint-ignore":  # read by lint, from the text
            if not value:
                problems.append(f"{where}: lint-ignore needs the rules: lint-ignore=rule-a,rule-b")
        elif timeout_ms(value) is None:
            problems.append(
                f"{where}: {word} needs a duration such as 30s, 500ms or 5min, at most 24 days"
            )
        else:
            timeouts[word] = value.replace(" ", "")
    if problems:
        raise BadFile(problems)
    directives = Directives(
        mode, timeouts.get("lock-timeout"), timeouts.get("statement-timeout"), always_run
    )
    return directives, min(offset, len(text))


MIGRATION_DIRECTIVES = frozenset(
    {"single-transaction", "no-transaction", "lock-timeout", "statement-timeout", "lint-ignore"}
)


def parse(file: SqlFile, *, allowed: frozenset[str] = MIGRATION_DIRECTIVES) -> Migration:
    """Split a file into chunks and check them; BadFile lists every problem found. A
    repeatable file runs in one transaction unless it says no-transaction."""
    directives, header_end = read_directives(file.text, file.path, allowed=allowed)
    if file.repeatable and directives.mode is TxMode.STATEMENT:
        directives = replace(directives, mode=TxMode.SINGLE)
    text = file.text
    try:
        pieces = split(text)
    except LexError as exc:
        line, column = line_column(text, exc.offset)
        raise BadFile(
            [f"{file.path}:{line}:{column}: {exc} (it would swallow the rest of the file)"]
        ) from None
    problems: list[str] = []
    chunks: list[Chunk] = []
    starts = line_starts(text)  # counting from the top for every chunk would be quadratic
    for piece in pieces:
        for offset, token in piece.psql:
            line, column = line_column(text, offset, starts)
            problems.append(f"{file.path}:{line}:{column}: {_psql_problem(token)}")
        if not piece.statements:
            continue
        kind, reason, problem, offset = classify(piece.statements, text)
        line, column = line_column(text, offset, starts)
        index = len(chunks) + 1
        if problem:
            problems.append(f"{file.path}:{line}:{column}: chunk {index}: {problem}")
        elif directives.mode is TxMode.SINGLE and kind is not ChunkKind.TRANSACTIONAL:
            problems.append(
                f"{file.path}:{line}:{column}: chunk {index}: {reason} cannot run in a "
                + (
                    "repeatable file, which runs in one transaction: add -- migrator: "
                    "no-transaction at its top, or move the statement"
                    if file.repeatable
                    else "single-transaction file: remove the directive or move the statement"
                )
            )
        sql = text[piece.start : piece.end]
        first_line = line_column(text, piece.statements[0].start, starts)[0]
        statements = len(piece.statements)
        chunks.append(
            Chunk(index, sql, piece.start, first_line, sha256(sql), statements, kind, reason)
        )
    problems.extend(_misplaced_directives(text, header_end, file.path))
    if problems:
        raise BadFile(problems)
    sets_role = any(_sets_role(statement) for piece in pieces for statement in piece.statements)
    return Migration(
        file,
        directives.mode,
        tuple(chunks),
        directives.lock_timeout,
        directives.statement_timeout,
        sets_role,
    )


def _misplaced_directives(text: str, header_end: int, path: str) -> list[str]:
    problems = []
    # lint-ignore may stand in a chunk: it quiets lint for that chunk.
    below = r"^[ \t]*--[ \t]*migrator:(?![ \t]*lint-ignore)"
    for match in re.finditer(below, text[header_end:], re.MULTILINE):
        line = line_column(text, header_end + match.start())[0]
        problems.append(
            f"{path}:{line}: a migrator directive below the file's leading comments is ignored "
            "by PostgreSQL and by migrator: move it to the top of the file"
        )
    return problems


def excerpt(text: str, line: int, *, around: int = 2) -> str:
    """The lines around `line`, numbered, with a caret gutter on `line` itself."""
    lines = text.split("\n")
    first, last = max(1, line - around), min(len(lines), line + around)
    width = len(str(last))
    return "\n".join(
        f"{'>' if number == line else ' '} {number:>{width}} | {lines[number - 1]}"
        for number in range(first, last + 1)
    )
