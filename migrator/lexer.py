"""PURE. SQL text in; pieces between markers and statements out, read past literals and comments."""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = "--> statement-breakpoint"
# Functions sqlfile must know a statement uses, in parentheses too.
WATCHED = frozenset(
    {"pg_advisory_unlock", "pg_advisory_unlock_all", "pg_advisory_unlock_shared", "set_config"}
)

# PostgreSQL's identifier characters as negated ASCII sets: a class up to U+10FFFF compiles slowly.
_START = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"
_PART = r"[^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
_TAG_PART = r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"  # also psql's variable characters
# What may follow the ":" of a psql variable (:name, :'name', :"name", :{?name}); not : or =.
_VAR_NEXT = r"[^\x00-\x21\x23-\x26\x28-\x2f\x3a-\x40\x5b-\x5e\x60\x7c-\x7f]"
_TOKEN = re.compile(
    rf"""
    [ \t\n\r\f\v]*+  # whitespace before a token is skipped in the same match
    (?: (?P<comment>--[^\n]*)
    | (?P<block>/\*)
    | (?P<estring>[eE]')
    | (?P<string>(?:[uU]&|[bBxXnN])?')
    | (?P<ident>(?:[uU]&)?")
    | (?P<dollar>\$(?:{_START}{_TAG_PART}*)?\$)
    | (?P<word>{_START}{_PART}*)
    | (?P<semi>;)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<lbracket>\[)
    | (?P<rbracket>\])
    | (?P<psql>\\|:(?={_VAR_NEXT}))
    | (?P<other>\$[0-9]+|[0-9.]+|::|.)
    )""",
    re.VERBOSE | re.DOTALL,
)
_WORD = rf"{_START}{_PART}*"
_NOT_PREFIX = r"(?![eEbBxXnN]'|[uU]&['\"])"  # a one-letter word that opens a literal instead
_NOT_WATCHED = "(?!(?i:pg_advisory_unlock|set_config))"


# In parentheses skip at once all but parentheses, brackets, markers, nested comments,
# backslashes, colons that may start a psql variable, WATCHED names and literals split() must
# read. Nothing may follow it in a pattern: backtracking could end a $tag$ body too late.
_INERT = re.compile(
    rf"""(?:
      [ \t\n\r\f\v]+
    | --(?!{re.escape(MARKER[2:])})[^\n]*
    | /\*(?:[^*/]++|\*(?!/)|/(?!\*))*+\*/
    | [0-9.]+
    | (?:[uU]&|[bBxXnN])?'(?:[^']++|'')*+'
    | [eE]'(?:[^'\\]++|\\.|'')*+'(?![ \t\f\v]*+(?:--[^\n\r]*+)?[\n\r])
    | (?:[uU]&)?"(?:[^"]++|"")*+"
    | (\$(?:{_START}{_TAG_PART}*)?\$).*?\1
    | \$[0-9]+
    | {_NOT_PREFIX}{_NOT_WATCHED}{_WORD}
    | [,+*<>=!|^%&@#~?`{{}}]
    | ::|:(?!{_VAR_NEXT})
    | -(?!-)
    | /(?!\*)
    )+""",
    re.VERBOSE | re.DOTALL,
)
# At the top level a run of words ("CREATE TABLE name", "INSERT INTO name") is read in one match.
_WORDS = re.compile(rf"{_NOT_PREFIX}{_WORD}(?:[ \t\n\r\f\v]++{_NOT_PREFIX}{_WORD})*+")
_WORD_RE = re.compile(_WORD)
_STRING_BODY = re.compile(r"(?:[^']++|'')*+'")
_ESTRING_BODY = re.compile(r"(?:[^'\\]++|\\.|'')*+'", re.DOTALL)
_IDENT_BODY = re.compile(r'(?:[^"]++|"")*+"')
# A string goes on at a quote past a newline (and -- comments); E'' keeps escapes; a marker splits.
_NOT_MARKER = rf"--(?!{re.escape(MARKER[2:])})[^\n\r]*"
_CONTINUATION = re.compile(
    rf"(?:[ \t\f\v]|{_NOT_MARKER})*+[\n\r](?:[ \t\n\r\f\v]|{_NOT_MARKER}[\n\r])*+'"
)
_BLOCK_EDGE = re.compile(r"/\*|\*/")
_META_COMMAND = re.compile(r"\\(?:[A-Za-z]+|[^ \t\n\r\f\v])?")
_VARIABLE = re.compile(rf""":(?:{_TAG_PART}+|'{_TAG_PART}+'|"{_TAG_PART}+"|\{{\?{_TAG_PART}+\}})""")
# JSON_OBJECT('key' : value) is SQL: a colon right inside its parentheses is not psql's.
_JSON_PAIRS = re.compile(rf"(?<!{_PART})(?i:json_object(?:agg)?)[ \t\n\r\f\v]*\Z")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a piece: where its first token starts and its top-level words."""

    start: int
    words: tuple[str, ...]  # lower-cased keywords and identifiers outside parentheses
    calls: tuple[str, ...] = ()  # the WATCHED names it uses outside literals and comments
    end: int = -1  # just past its semicolon (or where its piece ends, without one)


@dataclass(frozen=True, slots=True)
class Piece:
    """The raw text between two markers: text[start:end], with its statements."""

    start: int
    end: int
    statements: tuple[Statement, ...]
    psql: tuple[tuple[int, str], ...] = ()  # (offset, text) of psql commands and variables


class LexError(Exception):
    """The text cannot be split: an unterminated literal or comment at `offset`."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def split(text: str) -> tuple[Piece, ...]:
    """Split on markers outside literals and comments; pieces and markers rejoin to the text."""
    pieces: list[Piece] = []
    statements: list[Statement] = []
    psql: list[tuple[int, str]] = []
    piece_start = 0
    words: list[str] = []
    calls: list[str] = []
    statement_start = -1
    paren_depth = 0
    groups: list[int] = []  # where the open ( and [ around the position are
    begin_depth = 0
    last = ""  # the top-level word before the next one ("" after another token)
    pos = 0
    size = len(text)

    def end_statement(end: int) -> None:
        nonlocal words, calls, statement_start, paren_depth, begin_depth, last
        if statement_start >= 0:
            if not WATCHED.isdisjoint(words):
                calls += [word for word in words if word in WATCHED]
            names = tuple(dict.fromkeys(calls)) if calls else ()
            statements.append(Statement(statement_start, tuple(words), names, end))
        if calls:
            calls = []
        if groups:
            groups.clear()
        words, statement_start, paren_depth, begin_depth, last = [], -1, 0, 0, ""

    while pos < size:
        if paren_depth:
            inert = _INERT.match(text, pos)
            if inert is not None:
                pos = inert.end()
                continue
        match = _TOKEN.match(text, pos)
        if match is None:
            break  # only whitespace is left: the last alternative matches any other character
        kind = match.lastgroup
        assert kind is not None
        start, pos = match.start(kind), match.end()
        if kind == "comment":
            if text.startswith(MARKER, start):
                end_statement(start)
                pieces.append(Piece(piece_start, start, tuple(statements), tuple(psql)))
                statements, psql, piece_start = [], [], pos
            continue
        if kind == "block":
            pos = _skip_block_comment(text, start)
            continue
        if statement_start < 0:
            statement_start = start
        if kind == "word":
            if paren_depth:
                if match[kind].lower() in WATCHED:
                    calls.append(match[kind].lower())
                continue
            run = _WORDS.match(text, start)
            assert run is not None  # the word itself
            pos = run.end()
            for word in _WORD_RE.findall(run[0].lower()):
                words.append(word)
                if word == "atomic" or (begin_depth and word == "end"):
                    begin_depth, last = _track_atomic_body(words, last, begin_depth)
                else:
                    last = word
            continue
        if kind == "semi":
            if paren_depth == 0 and begin_depth == 0:
                if len(words) == 0 and statement_start == start:
                    statement_start = -1  # an empty statement
                end_statement(pos)
                continue
            if paren_depth == 0:
                last = ";"  # an END right after it closes the body
                continue
        elif kind == "open" or (kind == "lbracket" and paren_depth):
            # A group holding nothing split() must read is skipped with its closer, in one go.
            inert = _INERT.match(text, pos)
            pos = pos if inert is None else inert.end()
            if text.startswith(")" if kind == "open" else "]", pos):
                pos += 1
            else:
                groups.append(start)
                if kind == "open":
                    paren_depth += 1
        elif kind == "close":
            paren_depth = max(0, paren_depth - 1)
            if groups:
                groups.pop()
        elif kind == "lbracket":
            groups.append(start)  # words in brackets are top-level words yet
        elif kind == "rbracket":
            if groups:
                groups.pop()
        elif kind == "psql":
            found = _psql_syntax(text, start, groups)
            if found is not None:
                psql.append((start, found[0]))
                pos = found[1]
        elif kind in ("string", "estring", "ident", "dollar"):
            pos = _skip_literal(text, kind, match[kind], start, pos)
        last = ""
    end_statement(size)
    pieces.append(Piece(piece_start, size, tuple(statements), tuple(psql)))
    return tuple(pieces)


def _skip_block_comment(text: str, start: int) -> int:
    depth, pos = 0, start
    while True:
        edge = _BLOCK_EDGE.search(text, pos)
        if edge is None:
            raise LexError("unterminated /* comment", start)
        depth += 1 if edge[0] == "/*" else -1
        pos = edge.end()
        if depth == 0:
            return pos


def _skip_literal(text: str, kind: str, opener: str, start: int, pos: int) -> int:
    if kind == "dollar":
        close = text.find(opener, pos)
        if close < 0:
            raise LexError(f"unterminated dollar-quoted body {opener}", start)
        return close + len(opener)
    body = {"string": _STRING_BODY, "estring": _ESTRING_BODY, "ident": _IDENT_BODY}[kind]
    match = body.match(text, pos)
    while kind == "estring" and match and (more := _CONTINUATION.match(text, match.end())):
        match = body.match(text, more.end())
    if match is None:
        what = "quoted identifier" if kind == "ident" else "string literal"
        raise LexError(f"unterminated {what}", start)
    return match.end()


def _track_atomic_body(words: list[str], last: str, depth: int) -> tuple[int, str]:
    """BEGIN ATOMIC depth after words[-1] ("atomic" or "end"), and the `last` for the next word:
    `begin atomic` opens a body in CREATE [OR REPLACE] FUNCTION/PROCEDURE; the body's END is
    the one right after its opening or after one of its semicolons (CASE's END never is, and
    a bare column label END never is either)."""
    word = words[-1]
    if word == "end":
        return (depth - 1, word) if last == ";" else (depth, word)
    head = words[:4]
    routine = head[:2] in (["create", "function"], ["create", "procedure"]) or head in (
        ["create", "or", "replace", "function"],
        ["create", "or", "replace", "procedure"],
    )
    if last == "begin" and routine:
        return depth + 1, ";"  # BEGIN ATOMIC END is an empty body
    return depth, word


def _psql_syntax(text: str, start: int, groups: list[int]) -> tuple[str, int] | None:
    """The psql command or variable at `start` (a backslash or a colon) and where split() goes
    on, or None for a colon that is SQL (an array slice, a JSON_OBJECT key : value pair)."""
    if text[start] == "\\":
        command = _META_COMMAND.match(text, start)
        assert command is not None  # the backslash itself
        if command[0] in ("\\;", "\\:"):  # psql's escapes for a ; or : inside a statement
            return command[0], command.end()
        newline = text.find("\n", start)  # psql reads its command's arguments to the line end
        return command[0], len(text) if newline < 0 else newline
    variable = _VARIABLE.match(text, start)
    if variable is None:
        return None
    if groups:
        inner = groups[-1]
        if text[inner] == "[" or _JSON_PAIRS.search(text, max(0, inner - 64), inner):
            return None
    return variable[0], variable.end()
