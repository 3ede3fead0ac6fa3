"""PURE. SQL text in; pieces between markers and statements out, read past literals and comments."""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = "--> statement-breakpoint"

# PostgreSQL's identifier characters as negated ASCII sets: a class up to U+10FFFF compiles slowly.
_START = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"
_PART = r"[^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
_TAG_PART = r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
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
    | (?P<other>\$[0-9]+|[0-9.]+|.)
    )""",
    re.VERBOSE | re.DOTALL,
)
_WORD = rf"{_START}{_PART}*"
_NOT_PREFIX = r"(?![eEbBxXnN]'|[uU]&['\"])"  # a one-letter word that opens a literal instead
# In parentheses skip at once all but comments, parentheses, markers and literals split() must read.
_INERT = re.compile(
    rf"""(?:
      [ \t\n\r\f\v]+
    | [0-9.]+
    | (?:[uU]&|[bBxXnN])?'(?:[^']++|'')*+'
    | [eE]'(?:[^'\\]++|\\.|'')*+'(?![ \t\f\v]*+(?:--[^\n\r]*+)?[\n\r])
    | (?:[uU]&)?"(?:[^"]++|"")*+"
    | (\$(?:{_START}{_TAG_PART}*)?\$).*?\1
    | \$[0-9]+
    | {_NOT_PREFIX}{_WORD}
    | [,+*<>=!|^%&:@#~?`\\\[\]{{}}]
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


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a piece: where its first token starts and its top-level words."""

    start: int
    words: tuple[str, ...]  # lower-cased keywords and identifiers outside parentheses


@dataclass(frozen=True, slots=True)
class Piece:
    """The raw text between two markers: text[start:end], with its statements."""

    start: int
    end: int
    statements: tuple[Statement, ...]


class LexError(Exception):
    """The text cannot be split: an unterminated literal or comment at `offset`."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def split(text: str) -> tuple[Piece, ...]:
    """Split on markers outside literals and comments; pieces and markers rejoin to the text."""
    pieces: list[Piece] = []
    statements: list[Statement] = []
    piece_start = 0
    words: list[str] = []
    statement_start = -1
    paren_depth = 0
    begin_depth = 0
    pos = 0
    size = len(text)

    def end_statement() -> None:
        nonlocal words, statement_start, paren_depth, begin_depth
        if statement_start >= 0:
            statements.append(Statement(statement_start, tuple(words)))
        words, statement_start, paren_depth, begin_depth = [], -1, 0, 0

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
                end_statement()
                pieces.append(Piece(piece_start, start, tuple(statements)))
                statements, piece_start = [], pos
            continue
        if kind == "block":
            pos = _skip_block_comment(text, start)
            continue
        if statement_start < 0:
            statement_start = start
        if kind == "word":
            if paren_depth:
                continue
            run = _WORDS.match(text, start)
            assert run is not None  # the word itself
            pos = run.end()
            for word in _WORD_RE.findall(run[0].lower()):
                words.append(word)
                if begin_depth or word == "begin":
                    begin_depth = _track_atomic_body(words, word, begin_depth)
        elif kind == "semi":
            if paren_depth == 0 and begin_depth == 0:
                if len(words) == 0 and statement_start == start:
                    statement_start = -1  # an empty statement
                end_statement()
        elif kind == "open":
            paren_depth += 1
        elif kind == "close":
            paren_depth = max(0, paren_depth - 1)
        elif kind in ("string", "estring", "ident", "dollar"):
            pos = _skip_literal(text, kind, match[kind], start, pos)
    end_statement()
    pieces.append(Piece(piece_start, size, tuple(statements)))
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


def _track_atomic_body(words: list[str], word: str, depth: int) -> int:
    """Depth of a BEGIN ATOMIC ... END body (CREATE FUNCTION/PROCEDURE), as psql tracks it."""
    head = words[:4]
    routine = head[:2] in (["create", "function"], ["create", "procedure"]) or head[:4] in (
        ["create", "or", "replace", "function"],
        ["create", "or", "replace", "procedure"],
    )
    if not routine:
        return 0
    if word == "begin":
        return depth + 1
    if word == "case" and depth:
        return depth + 1
    if word == "end" and depth:
        return depth - 1
    return depth
