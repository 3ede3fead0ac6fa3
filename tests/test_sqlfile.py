"""The pure file rules (migrator.sqlfile) and the lexer beneath them (migrator.lexer)."""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast import ast, parse_sql
from pglast.enums.parsenodes import TransactionStmtKind
from pglast.parser import scan

from migrator import sqlfile
from migrator.errors import BadFile
from migrator.lexer import MARKER, LexError, split
from migrator.model import ChunkKind, Migration, SqlFile, TxMode
from migrator.sqlfile import (
    Directives,
    _transaction_control,
    excerpt,
    line_column,
    normalize,
    parse,
    parse_name,
    read,
    read_directives,
    sha256,
)

NAME = "0001_x.sql"
PATH = "sql/public/0001_x.sql"


def sql_file(text: str) -> SqlFile:
    return read("public", NAME, PATH, text.encode())


def migration(text: str) -> Migration:
    return parse(sql_file(text))


def problems(text: str) -> list[str]:
    with pytest.raises(BadFile) as info:
        migration(text)
    return info.value.problems


# --- 1. file names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        pytest.param("0001_create_accounts.sql", (1, "create_accounts"), id="drizzle 4 digits"),
        pytest.param("0000_init.sql", (0, "init"), id="version zero is a version"),
        pytest.param("7_x.sql", (7, "x"), id="one digit is enough"),
        pytest.param("000000123_x.sql", (123, "x"), id="any width reads as an integer"),
        pytest.param(
            "20240131120000_add_users.sql", (20240131120000, "add_users"), id="14-digit timestamp"
        ),
        pytest.param("0002_a_b-c.d e.sql", (2, "a_b-c.d e"), id="the name is all the rest"),
        pytest.param("0003_x.sql.sql", (3, "x.sql"), id="only the last .sql is the suffix"),
        pytest.param("0004__x.sql", (4, "_x"), id="a second underscore belongs to the name"),
    ],
)
def test_parse_name_reads_version_and_name(filename: str, expected: tuple[int, str]) -> None:
    assert parse_name(filename) == expected


@pytest.mark.parametrize(
    "filename",
    [
        pytest.param("x.sql", id="no version"),
        pytest.param("0001.sql", id="no name"),
        pytest.param("0001_.sql", id="an empty name after the underscore"),
        pytest.param("v1_x.sql", id="a letter before the digits"),
        pytest.param("_x.sql", id="an empty version"),
        pytest.param("0001-x.sql", id="a dash instead of an underscore"),
        pytest.param("0001_x.SQL", id="an upper-case suffix"),
        pytest.param("0001_x.sql.bak", id="another suffix after .sql"),
        pytest.param("0001_x", id="no suffix"),
        pytest.param(" 0001_x.sql", id="a leading space"),
        pytest.param("0001_a/b.sql", id="a slash in the name"),
        pytest.param("0001_a\\b.sql", id="a backslash in the name"),
        pytest.param("\u0661_x.sql", id="an Arabic-Indic digit is not a version"),
        pytest.param("\uff11_x.sql", id="a full-width digit is not a version"),
    ],
)
def test_parse_name_refuses_names_that_do_not_fit(filename: str) -> None:
    assert parse_name(filename) is None


def test_read_refuses_a_name_that_does_not_fit_and_names_the_path() -> None:
    with pytest.raises(BadFile) as info:
        read("public", "create_accounts.sql", "sql/public/create_accounts.sql", b"select 1;")
    assert info.value.problems == [
        "sql/public/create_accounts.sql: name does not fit <version>_<name>.sql "
        "(e.g. 0001_create_accounts.sql)"
    ]


def test_read_builds_the_sql_file_from_name_and_bytes() -> None:
    data = b"\xef\xbb\xbfcreate table t (a int);\r\n"
    assert read("app", "0042_t.sql", "sql/app/0042_t.sql", data) == SqlFile(
        schema="app",
        version=42,
        name="0042_t.sql",
        path="sql/app/0042_t.sql",
        text="create table t (a int);\n",
        hash=hashlib.sha256(b"create table t (a int);\n").hexdigest(),
    )


# --- 2. bytes, normalization, hashes ------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        pytest.param(b"\xef\xbb\xbfselect 1;\n", "select 1;\n", id="a BOM is stripped"),
        pytest.param(b"a\r\nb\r\n", "a\nb\n", id="CRLF becomes LF"),
        pytest.param(b"a\rb\r", "a\nb\n", id="a lone CR becomes LF"),
        pytest.param(b"a\r\n\rb\n\r\r\n", "a\n\nb\n\n\n", id="mixed line ends all become LF"),
        pytest.param(
            b"\xef\xbb\xbf\xef\xbb\xbfx", "\ufeffx", id="only one leading BOM is stripped"
        ),
        pytest.param(b"x\xef\xbb\xbf", "x\ufeff", id="a BOM that does not lead is text"),
        pytest.param("caf\u00e9 \u2603\n".encode(), "caf\u00e9 \u2603\n", id="UTF-8 is decoded"),
        pytest.param(b"", "", id="an empty file is empty text"),
    ],
)
def test_normalize_strips_bom_and_turns_line_ends_into_lf(data: bytes, text: str) -> None:
    assert normalize(data, PATH) == text


def test_hash_of_an_lf_file_is_the_sha256_of_its_bytes_as_drizzle_records_it() -> None:
    data = "-- caf\u00e9\ncreate table t (a int);\n--> statement-breakpoint\nselect 1;\n".encode()
    assert sql_file(data.decode()).hash == hashlib.sha256(data).hexdigest()
    assert sha256(data.decode()) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda b: b.replace(b"\n", b"\r\n"), id="a CRLF checkout"),
        pytest.param(lambda b: b.replace(b"\n", b"\r"), id="a CR-only checkout"),
        pytest.param(lambda b: b"\xef\xbb\xbf" + b, id="a copy saved with a BOM"),
    ],
)
def test_hash_does_not_change_with_line_ends_or_bom(variant: Callable[[bytes], bytes]) -> None:
    data = b"create table t (a int);\n--> statement-breakpoint\nselect 1;\n"
    copy = variant(data)
    assert copy != data
    assert read("public", NAME, PATH, copy).hash == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        pytest.param(b"select 'caf\xe9';", 11, id="a Latin-1 byte"),
        pytest.param(b"\xef\xbb\xbfselect 'caf\xe9';", 14, id="the offset counts a leading BOM"),
        pytest.param(b"\xc3\xa9\xff", 2, id="the offset is in bytes not characters"),
        pytest.param(b"ab\xe2\x82", 2, id="a sequence cut short at the end"),
        pytest.param(b"\xff", 0, id="the very first byte"),
    ],
)
def test_invalid_utf8_names_the_file_and_the_byte_offset(data: bytes, offset: int) -> None:
    with pytest.raises(BadFile) as info:
        read("public", NAME, PATH, data)
    assert info.value.problems == [f"{PATH}: invalid UTF-8 at byte offset {offset}"]
    assert info.value.hint == "Save the file as UTF-8."


@pytest.mark.parametrize(
    ("data", "where"),
    [
        pytest.param(b"select 1;\nselect '\x00';", "2:9", id="in an LF file"),
        pytest.param(b"select 1;\r\nselect '\x00';", "2:9", id="in a CRLF file"),
        pytest.param(b"select 1;\rselect '\x00';", "2:9", id="in a CR-only file"),
        pytest.param(b"\xef\xbb\xbf\x00", "1:1", id="right after a BOM"),
    ],
)
def test_a_nul_byte_is_refused_with_line_and_column(data: bytes, where: str) -> None:
    with pytest.raises(BadFile) as info:
        read("public", NAME, PATH, data)
    assert info.value.problems == [f"{PATH}:{where}: NUL byte (PostgreSQL cannot take it)"]


# --- 3. splitting: chunks (sqlfile.parse) and pieces (lexer.split) ------------------------


@pytest.mark.parametrize(
    ("text", "sqls"),
    [
        pytest.param(
            "select 1;\n--> statement-breakpoint\nselect 2;",
            ["select 1;\n", "\nselect 2;"],
            id="a marker on its own line splits",
        ),
        pytest.param(
            "select 1;--> statement-breakpoint\nselect 2;",
            ["select 1;", "\nselect 2;"],
            id="a marker right after a semicolon splits as drizzle writes it",
        ),
        pytest.param(
            "select 1\n--> statement-breakpoint\nselect 2",
            ["select 1\n", "\nselect 2"],
            id="a marker ends a statement that has no semicolon",
        ),
        pytest.param(
            "select 1;\n   --> statement-breakpoint\nselect 2;",
            ["select 1;\n   ", "\nselect 2;"],
            id="an indented marker splits",
        ),
        pytest.param(
            "select 1;--> statement-breakpoint; 'rest of the line\nselect 2;",
            ["select 1;", "\nselect 2;"],
            id="the rest of the marker line belongs to the marker comment",
        ),
        pytest.param(
            "select 1;\n--> statement-breakpoint\n\n-- nothing\n/* here */\n"
            "--> statement-breakpoint\nselect 2;",
            ["select 1;\n", "\nselect 2;"],
            id="a chunk of whitespace and comments is dropped",
        ),
        pytest.param(
            "select 1;\n--> statement-breakpoint\n;;\n--> statement-breakpoint\nselect 2;",
            ["select 1;\n", "\nselect 2;"],
            id="a chunk of empty statements is dropped",
        ),
        pytest.param(
            "--> statement-breakpoint\nselect 1;\n--> statement-breakpoint\n",
            ["\nselect 1;\n"],
            id="markers at both ends leave only the middle chunk",
        ),
    ],
)
def test_markers_split_the_file_into_chunks(text: str, sqls: list[str]) -> None:
    assert [chunk.sql for chunk in migration(text).chunks] == sqls


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "select '\n--> statement-breakpoint\n';", id="a marker inside a string literal"
        ),
        pytest.param(
            "select 'it''s\n--> statement-breakpoint\n';",
            id="a marker after a doubled quote inside a string literal",
        ),
        pytest.param(
            "select E'it\\'s\n--> statement-breakpoint\n';",
            id="a marker after a backslash quote inside an E string",
        ),
        pytest.param(
            "select E'\\\\';\nselect E'x\\\\\\'\n--> statement-breakpoint\n';",
            id="a marker after escaped backslashes inside an E string",
        ),
        pytest.param(
            "select U&'d\\0061t\n--> statement-breakpoint\n';",
            id="a marker inside a U& string",
        ),
        pytest.param(
            "select N'\n--> statement-breakpoint\n', B'1', X'\n--> statement-breakpoint\n';",
            id="a marker inside N and X strings",
        ),
        pytest.param(
            'select 1 as "a""\n--> statement-breakpoint\n";',
            id="a marker inside a quoted identifier",
        ),
        pytest.param(
            'select 1 as U&"\n--> statement-breakpoint\n";',
            id="a marker inside a U& quoted identifier",
        ),
        pytest.param("do $$\n--> statement-breakpoint\n$$;", id="a marker inside a $$ dollar body"),
        pytest.param(
            "do $body$ select $x$\n--> statement-breakpoint\n$x$; $$ $body$;",
            id="a marker inside a $tag$ body with other tags nested inside",
        ),
        pytest.param(
            "select $a$ $A$ $$ $b$ ; $a$;\n--> not a marker",
            id="dollar tags are case sensitive and only the same tag closes",
        ),
        pytest.param(
            "/* outer /* inner */\n--> statement-breakpoint\n*/ select 1;",
            id="a marker inside a nested block comment after the inner one closed",
        ),
        pytest.param(
            "select 1; -- see --> statement-breakpoint\nselect 2;",
            id="a marker inside another line comment",
        ),
        pytest.param(
            "select 1;\n-->statement-breakpoint\nselect 2;",
            id="a marker without its space is just a comment",
        ),
        pytest.param(
            "select 1;\n---> statement-breakpoint\nselect 2;",
            id="a comment with a third dash is not a marker",
        ),
        pytest.param("select a$$b, x$y$z;", id="dollars inside an identifier open no body"),
    ],
)
def test_marker_text_that_is_not_a_marker_does_not_split(text: str) -> None:
    assert [text[p.start : p.end] for p in split(text)] == [text]


def test_a_file_without_markers_is_one_chunk() -> None:
    text = "-- migrator: lock-timeout=1s\ncreate table t (a int);\ninsert into t values (1);\n"
    (chunk,) = migration(text).chunks
    assert (chunk.index, chunk.sql, chunk.start, chunk.line, chunk.statements) == (
        1,
        text,
        0,
        2,
        2,
    )
    assert chunk.hash == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="an empty file"),
        pytest.param("\n\n  \n", id="a whitespace-only file"),
        pytest.param("-- a comment\n/* another /* nested */ */\n", id="a comment-only file"),
        pytest.param(
            "-- a\n--> statement-breakpoint\n/* b */\n--> statement-breakpoint\n",
            id="comments between markers",
        ),
        pytest.param(";\n ; ;", id="only empty statements"),
    ],
)
def test_a_file_without_statements_has_no_chunks(text: str) -> None:
    assert migration(text).chunks == ()


def test_chunks_carry_index_start_line_and_hash() -> None:
    text = (
        "-- header\n"  # 1
        "create table a (x int);\n"  # 2
        "--> statement-breakpoint\n"  # 3
        "-- only a comment\n"  # 4
        "--> statement-breakpoint\n"  # 5
        "\n"  # 6
        "  /* lead */ create table b (x int);\n"  # 7
        "insert into b values (1);--> statement-breakpoint\n"  # 8
        "select 1"  # 9
    )
    chunks = migration(text).chunks
    assert [(c.index, c.line, c.statements) for c in chunks] == [(1, 2, 1), (2, 7, 2), (3, 9, 1)]
    assert [c.sql for c in chunks] == [
        "-- header\ncreate table a (x int);\n",
        "\n\n  /* lead */ create table b (x int);\ninsert into b values (1);",
        "\nselect 1",
    ]
    for chunk in chunks:
        assert text[chunk.start : chunk.start + len(chunk.sql)] == chunk.sql
        assert chunk.hash == hashlib.sha256(chunk.sql.encode()).hexdigest()
    assert [c.start for c in chunks] == [0, text.index("\n\n  /*"), text.index("\nselect 1")]
    assert migration(text).chunk_hashes == tuple(c.hash for c in chunks)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        pytest.param("select 1; select 2", 2, id="a last statement without semicolon counts"),
        pytest.param("select 1; select 2;", 2, id="two terminated statements"),
        pytest.param(";;", 0, id="empty statements do not count"),
        pytest.param("; select 1 ;;\n;", 1, id="empty statements around one"),
        pytest.param("select 1 /* ; */ ; -- ;\n", 1, id="semicolons in comments do not count"),
        pytest.param("select ';'; select 2", 2, id="a semicolon in a string does not count"),
        pytest.param("select E'\\';' ; select 2", 2, id="a semicolon after E backslash quote"),
        pytest.param("select U&'\\'; select 2", 2, id="in a U& string backslash is text"),
        pytest.param('select "a;b"; select 2', 2, id="a semicolon in a quoted identifier"),
        pytest.param("do $$ begin; end $$; select 1", 2, id="semicolons in a $$ body"),
        pytest.param("do $f$ a; $g$ b; $g$ c; $f$", 1, id="semicolons in nested dollar tags"),
        pytest.param("select f(';', (a; b)); select 2", 2, id="semicolons inside parentheses"),
        pytest.param("select 1 ) ; select 2", 2, id="a stray closing parenthesis is harmless"),
        pytest.param(
            "create function f() returns int language sql\n"
            "begin atomic select 1; select 2; end; select 3",
            2,
            id="a BEGIN ATOMIC body is one statement",
        ),
        pytest.param(
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC\n"
            "  select case when true then 1 end; insert into t values (case 1 when 1 then 2 end);\n"
            "END; select 3",
            2,
            id="CASE ... END inside a BEGIN ATOMIC body does not close it",
        ),
        pytest.param("begin; select 1; commit;", 3, id="a plain BEGIN opens no body"),
        pytest.param(
            "CREATE FUNCTION begin() RETURNS int LANGUAGE sql AS 'SELECT 1';\nCOMMIT;\nSELECT 1/0;",
            3,
            id="a function named begin opens no body",
        ),
        pytest.param(
            "create function begin() returns int language sql begin atomic select 1; end; select 2",
            2,
            id="a function named begin with a BEGIN ATOMIC body",
        ),
        pytest.param(
            "create function f() returns int language sql set x = begin\n"
            "begin atomic select 1; end; select 2",
            2,
            id="a setting's value begin opens no body",
        ),
        pytest.param(
            "create function f() returns int language sql begin /* c */\n atomic select 1; end;"
            " select 2",
            2,
            id="comments between BEGIN and ATOMIC",
        ),
        pytest.param(
            "create function f() returns int language sql begin atomic end; select 2",
            2,
            id="an empty BEGIN ATOMIC body",
        ),
        pytest.param(
            "create function f() returns int language sql begin atomic\n"
            "select t.end, t.case from t; select 1; end; select 2",
            2,
            id="qualified columns named end and case in a body",
        ),
        pytest.param(
            "create function f() returns int language sql begin atomic\n"
            "select 1 as end; select 2 as case; end; select 3",
            2,
            id="column labels AS end and AS case in a body",
        ),
        pytest.param(
            "create function f() returns int language sql begin atomic\n"
            "select 1 case; end; commit; select 2",
            3,
            id="a bare column label case in a body",
        ),
        pytest.param(
            "create function f() returns int language sql begin atomic\n"
            "select 1 end; select case when true then 1 end end; end; select 2",
            2,
            id="a bare column label end in a body",
        ),
        pytest.param(
            "create function f() returns int language sql begin atomic select atomic end from t;"
            " end; select 2",
            2,
            id="a column named atomic before a bare label end",
        ),
        pytest.param(
            "create function f() returns int language sql begin atomic select 1; end;"
            " end; select 2",
            3,
            id="an END after the body is a statement of its own",
        ),
        pytest.param(
            "select begin, atomic from t; select 2", 2, id="columns named begin and atomic"
        ),
        pytest.param(
            "create function f() returns int as $$ begin return 1; end $$ language plpgsql; "
            "select 1",
            2,
            id="begin and end inside a dollar body are text",
        ),
        pytest.param(
            "select E'a'\n'b\\'c;'; select 2",
            2,
            id="an E string continued on the next line keeps its backslash escapes",
        ),
        pytest.param(
            "select E'a' -- note ;\n  'b\\'c;'; select 2",
            2,
            id="an E string continued across a line comment keeps its escapes",
        ),
        pytest.param(
            "select 'a'\n'b\\'; select 2", 2, id="a plain string continued keeps no escapes"
        ),
        pytest.param(
            "select E'a' 'b\\'; select 2", 2, id="an E string is not continued on the same line"
        ),
    ],
)
def test_statements_are_counted_per_chunk(text: str, count: int) -> None:
    (piece,) = split(text)
    assert len(piece.statements) == count


def test_an_e_string_is_not_continued_across_a_marker() -> None:
    text = "select E'a'\n--> statement-breakpoint\n'b\\';"
    assert [text[p.start : p.end] for p in split(text)] == ["select E'a'\n", "\n'b\\';"]


# A marker splits even where the server would continue a string across it as a comment line:
# the chunks go to the server one by one, so what follows the marker is read fresh.
E_STRING_MARKERS = [
    pytest.param("select E'a'\n", "\n'b\\';", id="a marker right after the string"),
    pytest.param("select E'a' -- note\n", "\n'b\\';", id="a comment then a marker"),
    pytest.param("select E'a'\n-- note\n  ", "\n'b\\';", id="a comment line then a marker"),
    pytest.param("select E'a'", "\n'b\\';", id="a marker on the string's line"),
    pytest.param("select E'a'\n'b\\'c'\n", "\n'd';", id="a real continuation then a marker"),
    pytest.param("select E'a'\n'b'", "\n'c';", id="a marker on the continuation's line"),
]


@pytest.mark.parametrize(("before", "after"), E_STRING_MARKERS)
@pytest.mark.parametrize("parenthesized", [False, True], ids=["top level", "in parentheses"])
def test_a_marker_ends_an_e_string_and_what_follows_is_read_fresh(
    before: str, after: str, parenthesized: bool
) -> None:
    if parenthesized:  # the fast path in parentheses must read E strings as the top level does
        before, after = before.replace("select ", "select (1, "), after.replace(";", ");")
    text = f"{before}{MARKER}{after}"
    pieces = split(text)
    assert [text[p.start : p.end] for p in pieces] == [before, after]
    for piece in pieces:  # each chunk as the server reads it when it comes alone
        chunk = text[piece.start : piece.end]
        assert [(s.start - piece.start, s.words) for s in piece.statements] == (
            _postgres_statements(chunk)[0]
        )


@pytest.mark.parametrize("parenthesized", [False, True], ids=["top level", "in parentheses"])
def test_a_string_after_a_marker_that_only_a_continuation_would_close_is_unterminated(
    parenthesized: bool,
) -> None:
    head = "select (1, E'a'\n" if parenthesized else "select E'a'\n"
    text = f"{head}{MARKER}\n'b\\'c';"  # read fresh: 'b\' then c, then an unterminated '
    with pytest.raises(LexError) as info:
        split(text)
    assert (line_column(text, info.value.offset), str(info.value)) == (
        (3, 6),
        "unterminated string literal",
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"select (1 -- c\n{MARKER}\n, 2);", id="after a line comment"),
        pytest.param(f"select (1 /* c */\n{MARKER}\n, 2);", id="after a block comment"),
        pytest.param(f"select (1, (2\n{MARKER}\n)));", id="in nested parentheses"),
        pytest.param(f"select a[1\n{MARKER}\n];", id="in brackets"),
    ],
)
def test_a_marker_in_parentheses_splits(text: str) -> None:
    assert len(split(text)) == 2


def test_statements_know_their_start_and_top_level_words() -> None:
    text = "  -- c\n  CREATE UNIQUE INDEX CONCURRENTLY i ON t (Lower(a));\n\n/* x */ Vacuum t"
    (piece,) = split(text)
    assert [(s.start, s.words) for s in piece.statements] == [
        (
            text.index("CREATE"),
            ("create", "unique", "index", "concurrently", "i", "on", "t"),
        ),
        (text.index("Vacuum"), ("vacuum", "t")),
    ]
    assert (piece.start, piece.end) == (0, len(text))


UNTERMINATED = pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        pytest.param("select 1;\nselect 'abc;\n", "2:8", "unterminated string literal", id="quote"),
        pytest.param("select E'abc\\';", "1:8", "unterminated string literal", id="an E string"),
        pytest.param(
            'select 1;\n  select "abc', "2:10", "unterminated quoted identifier", id="identifier"
        ),
        pytest.param(
            "do $x$ begin end $y$;",
            "1:4",
            "unterminated dollar-quoted body $x$",
            id="a dollar body closed by another tag",
        ),
        pytest.param(
            "select 1; /* a /* b */ c",
            "1:11",
            "unterminated /* comment",
            id="a nested block comment closed once",
        ),
        pytest.param(
            "select 1;\n--> statement-breakpoint\nselect '\n",
            "3:8",
            "unterminated string literal",
            id="in a later chunk",
        ),
    ],
)


@UNTERMINATED
def test_split_raises_lex_error_where_an_unterminated_literal_or_comment_opens(
    text: str, where: str, what: str
) -> None:
    with pytest.raises(LexError) as info:
        split(text)
    line, column = line_column(text, info.value.offset)
    assert (f"{line}:{column}", str(info.value)) == (where, what)


@UNTERMINATED
def test_an_unterminated_literal_or_comment_is_refused_with_line_and_column(
    text: str, where: str, what: str
) -> None:
    assert problems(text) == [f"{PATH}:{where}: {what} (it would swallow the rest of the file)"]


SENT_AS_WRITTEN = "migrator sends each chunk to the server as written, and the server"


def psql_command(where: str, command: str, remedy: str) -> str:
    return (
        f"{PATH}:{where}: psql meta-command {command}: {SENT_AS_WRITTEN} does not know psql's "
        f"commands: {remedy}"
    )


def psql_variable(where: str, variable: str) -> str:
    return (
        f"{PATH}:{where}: psql variable {variable}: {SENT_AS_WRITTEN} does not substitute psql "
        "variables: write the value"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "\\i other.sql\n",
            [psql_command("1:1", "\\i", "inline the file")],
            id="an include",
        ),
        pytest.param(
            "select 1;\n  \\ir ../common.sql\nselect 2;",
            [psql_command("2:3", "\\ir", "inline the file")],
            id="a relative include",
        ),
        pytest.param(
            "\\set x 1\nselect :x;",
            [psql_command("1:1", "\\set", "write the value"), psql_variable("2:8", ":x")],
            id="a variable set and used",
        ),
        pytest.param(
            "\\connect other\n",
            [psql_command("1:1", "\\connect", "run migrator on each database")],
            id="a connect",
        ),
        pytest.param(
            "select count(*) from t \\gset\n",
            [psql_command("1:24", "\\gset", "write the value")],
            id="a gset after a query",
        ),
        pytest.param(
            "\\echo it's done\nselect 1;",
            [psql_command("1:1", "\\echo", "do its work in SQL, or remove it")],
            id="a command's arguments are psql's to the end of the line",
        ),
        pytest.param(
            "select 1 \\; select 2;",
            [psql_command("1:10", "\\;", "write ; alone")],
            id="psql's escaped semicolon",
        ),
        pytest.param(
            "select :'name', :\"name\", :name, :{?name};",
            [
                psql_variable("1:8", ":'name'"),
                psql_variable("1:17", ':"name"'),
                psql_variable("1:26", ":name"),
                psql_variable("1:33", ":{?name}"),
            ],
            id="variables in every form",
        ),
        pytest.param(
            "insert into t values (1, f(:'v'), (select :n));",
            [psql_variable("1:28", ":'v'"), psql_variable("1:43", ":n")],
            id="variables in parentheses",
        ),
        pytest.param(
            "select (1, \\gset\n);",
            [psql_command("1:12", "\\gset", "write the value")],
            id="a command in parentheses",
        ),
        pytest.param(
            "select a[1] :x, (b[1:2] :y), json_object('k': v) :z;",
            [psql_variable("1:13", ":x"), psql_variable("1:25", ":y"), psql_variable("1:50", ":z")],
            id="variables beside brackets and JSON_OBJECT",
        ),
        pytest.param(
            "select 1;\n--> statement-breakpoint\nselect :x;\n--> statement-breakpoint\n\\i a",
            [psql_variable("3:8", ":x"), psql_command("5:1", "\\i", "inline the file")],
            id="in every chunk",
        ),
    ],
)
def test_psql_commands_and_variables_are_refused_naming_file_line_and_column(
    text: str, expected: list[str]
) -> None:
    assert problems(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("select a::int, 'x'::text, (b::numeric(3, 1)), $1::int;", id="casts"),
        pytest.param("select f(a := 1, b => 2), f(c:=3);", id="named arguments"),
        pytest.param(
            "select arr[1:n], arr[lo:hi], arr[:n], arr[n:], (arr[:n]), (x[1:'2']), a[1][2:n]"
            " from t;",
            id="array slices",
        ),
        pytest.param("update t set arr[1:n] = '{1}';", id="a slice assigned"),
        pytest.param(
            "select json_object('a':b), JSON_OBJECT('a':'b'), json_objectagg(k:v) from t;",
            id="JSON_OBJECT key : value pairs",
        ),
        pytest.param(
            "select ':x \\i', E'\\\\ :x \\n', $$ \\i x :y $$, \"a:b\\\", U&'\\0041', '\\';",
            id="backslashes and colons in literals and quoted identifiers",
        ),
        pytest.param("-- \\i x :y\n/* \\set :z */ select 1; -- :w", id="in comments"),
        pytest.param("do $body$ begin perform :x; end $body$;", id="in a dollar-quoted body"),
    ],
)
def test_sql_that_only_looks_like_psql_is_not_refused(text: str) -> None:
    assert migration(text).chunks


def test_split_names_psql_syntax_in_the_piece_it_is_in() -> None:
    text = f"\\set x 1\nselect :x;\n{MARKER}\nselect (:'y');"
    first, second = split(text)
    assert (first.psql, second.psql) == (
        ((0, "\\set"), (text.index(":x"), ":x")),
        ((text.index(":'y'"), ":'y'"),),
    )


# --- 4. classification --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "kind", "reason"),
    [
        pytest.param(
            "create index concurrently i on t (a);",
            ChunkKind.AUTOCOMMIT,
            "CREATE INDEX CONCURRENTLY",
            id="CREATE INDEX CONCURRENTLY runs in autocommit",
        ),
        pytest.param(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);",
            ChunkKind.AUTOCOMMIT,
            "CREATE INDEX CONCURRENTLY",
            id="CREATE UNIQUE INDEX CONCURRENTLY runs in autocommit",
        ),
        pytest.param(
            "drop index concurrently if exists i;",
            ChunkKind.AUTOCOMMIT,
            "DROP INDEX CONCURRENTLY",
            id="DROP INDEX CONCURRENTLY runs in autocommit",
        ),
        pytest.param(
            "reindex index concurrently i;",
            ChunkKind.AUTOCOMMIT,
            "REINDEX CONCURRENTLY",
            id="REINDEX INDEX CONCURRENTLY runs in autocommit",
        ),
        pytest.param(
            "reindex (verbose) table concurrently t;",
            ChunkKind.AUTOCOMMIT,
            "REINDEX CONCURRENTLY",
            id="REINDEX with options and CONCURRENTLY runs in autocommit",
        ),
        pytest.param(
            "reindex database app;",
            ChunkKind.AUTOCOMMIT,
            "REINDEX DATABASE",
            id="REINDEX DATABASE runs in autocommit",
        ),
        pytest.param(
            "reindex schema public;",
            ChunkKind.AUTOCOMMIT,
            "REINDEX SCHEMA",
            id="REINDEX SCHEMA runs in autocommit",
        ),
        pytest.param(
            "vacuum (analyze) t;", ChunkKind.AUTOCOMMIT, "VACUUM", id="VACUUM runs in autocommit"
        ),
        pytest.param(
            "create database app;",
            ChunkKind.AUTOCOMMIT,
            "CREATE DATABASE",
            id="CREATE DATABASE runs in autocommit",
        ),
        pytest.param(
            "drop database if exists app;",
            ChunkKind.AUTOCOMMIT,
            "DROP DATABASE",
            id="DROP DATABASE runs in autocommit",
        ),
        pytest.param(
            "create tablespace ts location '/srv/ts';",
            ChunkKind.AUTOCOMMIT,
            "CREATE TABLESPACE",
            id="CREATE TABLESPACE runs in autocommit",
        ),
        pytest.param(
            "alter system set work_mem = '64MB';",
            ChunkKind.AUTOCOMMIT,
            "ALTER SYSTEM",
            id="ALTER SYSTEM runs in autocommit",
        ),
        pytest.param(
            "alter table p detach partition p1 concurrently;",
            ChunkKind.AUTOCOMMIT,
            "ALTER TABLE ... DETACH PARTITION CONCURRENTLY",
            id="DETACH PARTITION CONCURRENTLY runs in autocommit",
        ),
        pytest.param(
            "alter table p detach partition p1 finalize;",
            ChunkKind.AUTOCOMMIT,
            "ALTER TABLE ... DETACH PARTITION FINALIZE",
            id="DETACH PARTITION FINALIZE runs in autocommit",
        ),
        pytest.param(
            "alter database app set tablespace ts;",
            ChunkKind.AUTOCOMMIT,
            "ALTER DATABASE ... SET TABLESPACE",
            id="ALTER DATABASE SET TABLESPACE runs in autocommit",
        ),
        pytest.param("cluster;", ChunkKind.AUTOCOMMIT, "CLUSTER", id="a bare CLUSTER"),
        pytest.param(
            "commit prepared 'tx1';",
            ChunkKind.AUTOCOMMIT,
            "COMMIT PREPARED",
            id="COMMIT PREPARED runs in autocommit",
        ),
        pytest.param(
            "-- vacuum\n/* create index concurrently */\ncreate index concurrently i on t (a)",
            ChunkKind.AUTOCOMMIT,
            "CREATE INDEX CONCURRENTLY",
            id="leading comments do not hide CONCURRENTLY",
        ),
        pytest.param(
            "create index i on t (a);",
            ChunkKind.TRANSACTIONAL,
            "",
            id="a plain CREATE INDEX is transactional",
        ),
        pytest.param(
            "alter type mood add value 'meh';",
            ChunkKind.TRANSACTIONAL,
            "",
            id="ALTER TYPE ADD VALUE is transactional",
        ),
        pytest.param(
            "alter table p detach partition p1;",
            ChunkKind.TRANSACTIONAL,
            "",
            id="a plain DETACH PARTITION is transactional",
        ),
        pytest.param(
            "reindex table t;", ChunkKind.TRANSACTIONAL, "", id="REINDEX TABLE is transactional"
        ),
        pytest.param(
            "cluster t using i;",
            ChunkKind.TRANSACTIONAL,
            "",
            id="CLUSTER of one table is transactional",
        ),
        pytest.param(
            "create table concurrently (index int);",
            ChunkKind.TRANSACTIONAL,
            "",
            id="a table named concurrently is transactional",
        ),
        pytest.param(
            "select 'vacuum'; select 1 as \"vacuum\";",
            ChunkKind.TRANSACTIONAL,
            "",
            id="keywords inside literals do not count",
        ),
        pytest.param(
            "begin;\ncreate table t (a int);\ncommit;",
            ChunkKind.SELF_MANAGED,
            "BEGIN ... COMMIT",
            id="BEGIN then COMMIT manages its own transaction",
        ),
        pytest.param(
            "START TRANSACTION;\ncreate table t (a int);\nEND;",
            ChunkKind.SELF_MANAGED,
            "BEGIN ... COMMIT",
            id="START TRANSACTION then END manages its own transaction",
        ),
        pytest.param(
            "begin isolation level serializable; savepoint s; select 1;\n"
            "rollback to savepoint s; release savepoint s; rollback;",
            ChunkKind.SELF_MANAGED,
            "BEGIN ... COMMIT",
            id="savepoints inside an open transaction are fine",
        ),
        pytest.param(
            "reindex (verbose, concurrently) table t;",
            ChunkKind.AUTOCOMMIT,
            "REINDEX (CONCURRENTLY)",
            id="REINDEX with CONCURRENTLY among its options",
        ),
        pytest.param(
            "reindex /* c */ -- d\n (concurrently) table t;",
            ChunkKind.AUTOCOMMIT,
            "REINDEX (CONCURRENTLY)",
            id="REINDEX with comments before its options",
        ),
        pytest.param(
            "reindex (verbose) table t;",
            ChunkKind.TRANSACTIONAL,
            "",
            id="REINDEX with other options",
        ),
        pytest.param(
            "savepoint s; select 1; rollback to savepoint s; release savepoint s;",
            ChunkKind.TRANSACTIONAL,
            "",
            id="savepoints alone run inside the runner's transaction",
        ),
        pytest.param(
            "begin; select 1; commit and no chain;",
            ChunkKind.SELF_MANAGED,
            "BEGIN ... COMMIT",
            id="COMMIT AND NO CHAIN is a plain COMMIT",
        ),
        pytest.param(
            "begin; select 1; commit; begin work; select 2; abort;",
            ChunkKind.SELF_MANAGED,
            "BEGIN ... COMMIT",
            id="two transactions one after the other",
        ),
        pytest.param(
            "begin; savepoint s; rollback work to savepoint s; rollback transaction to s; commit;",
            ChunkKind.SELF_MANAGED,
            "BEGIN ... COMMIT",
            id="ROLLBACK WORK TO and ROLLBACK TRANSACTION TO return to a savepoint",
        ),
        pytest.param(
            "begin;\n(select 1) union (select 2);\n$1;\ncommit;",
            ChunkKind.SELF_MANAGED,
            "BEGIN ... COMMIT",
            id="statements without words between BEGIN and COMMIT",
        ),
        pytest.param(
            "begin; insert into t values (1); prepare transaction 'x';",
            ChunkKind.SELF_MANAGED,
            "BEGIN ... COMMIT",
            id="PREPARE TRANSACTION ends the chunk's own transaction",
        ),
        pytest.param(
            "prepare transaction as select 1; execute transaction;",
            ChunkKind.TRANSACTIONAL,
            "",
            id="a prepared statement named transaction",
        ),
    ],
)
def test_chunks_are_classified(sql: str, kind: ChunkKind, reason: str) -> None:
    (chunk,) = migration(sql).chunks
    assert (chunk.kind, chunk.reason) == (kind, reason)


def test_each_chunk_is_classified_on_its_own() -> None:
    text = (
        "create table t (a int);\n--> statement-breakpoint\n"
        "create index concurrently i on t (a);\n--> statement-breakpoint\n"
        "begin;\ninsert into t values (1);\ncommit;"
    )
    chunks = migration(text).chunks
    assert [(c.kind, c.reason) for c in chunks] == [
        (ChunkKind.TRANSACTIONAL, ""),
        (ChunkKind.AUTOCOMMIT, "CREATE INDEX CONCURRENTLY"),
        (ChunkKind.SELF_MANAGED, "BEGIN ... COMMIT"),
    ]


SHARED = (
    "PostgreSQL runs a multi-statement chunk as one transaction, where it cannot run: "
    "give it a chunk of its own (add --> statement-breakpoint before and after it)"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "select 1;\n--> statement-breakpoint\nbegin;\ncreate table t (a int);\n",
            "4:1: chunk 2: this chunk opens a transaction and does not end it: "
            "add COMMIT at its end",
            id="a chunk that opens a transaction without ending it",
        ),
        pytest.param(
            "create table t (a int);\ncommit;",
            "2:1: chunk 1: COMMIT without a BEGIN in the same chunk",
            id="a COMMIT without a BEGIN",
        ),
        pytest.param(
            "begin;\n  begin;\ncommit;",
            "2:3: chunk 1: BEGIN inside an open transaction",
            id="a BEGIN inside an open transaction",
        ),
        pytest.param(
            "CREATE FUNCTION begin() RETURNS int LANGUAGE sql AS 'SELECT 1';\nCOMMIT;\nSELECT 1/0;",
            "2:1: chunk 1: COMMIT without a BEGIN in the same chunk",
            id="a COMMIT after a function named begin",
        ),
        pytest.param(
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 case; END;\n"
            "COMMIT;\nSELECT 1/0;",
            "2:1: chunk 1: COMMIT without a BEGIN in the same chunk",
            id="a COMMIT after a body whose column label is case",
        ),
        pytest.param(
            "begin;\nsavepoint s;\nrollback work to s;",
            "3:1: chunk 1: this chunk opens a transaction and does not end it: "
            "add COMMIT at its end",
            id="ROLLBACK WORK TO a savepoint does not end the transaction",
        ),
        pytest.param(
            "insert into t values (1);\nPREPARE TRANSACTION 'x';",
            "2:1: chunk 1: PREPARE TRANSACTION without a BEGIN in the same chunk",
            id="PREPARE TRANSACTION would end the runner's transaction",
        ),
        pytest.param(
            "create table t (a int);\ncreate index concurrently i on t (a);",
            f"2:1: chunk 1: CREATE INDEX CONCURRENTLY shares its chunk with 1 other "
            f"statement(s); {SHARED}",
            id="CONCURRENTLY sharing a chunk with another statement",
        ),
        pytest.param(
            "select 1;--> statement-breakpoint\nbegin; vacuum t; commit;",
            f"2:8: chunk 2: VACUUM shares its chunk with 2 other statement(s); {SHARED}",
            id="VACUUM wrapped in BEGIN and COMMIT",
        ),
        pytest.param(
            "-- migrator: single-transaction\ncreate table t (a int);\n"
            "--> statement-breakpoint\ncreate index concurrently i on t (a);",
            "4:1: chunk 2: CREATE INDEX CONCURRENTLY cannot run in a single-transaction file: "
            "remove the directive or move the statement",
            id="a single-transaction file holding a CONCURRENTLY chunk",
        ),
        pytest.param(
            "-- migrator: single-transaction\nbegin;\ncreate table t (a int);\ncommit;",
            "2:1: chunk 1: BEGIN ... COMMIT cannot run in a single-transaction file: "
            "remove the directive or move the statement",
            id="a single-transaction file holding a BEGIN COMMIT chunk",
        ),
    ],
)
def test_chunks_that_cannot_run_are_refused_naming_file_line_and_chunk(
    text: str, problem: str
) -> None:
    assert problems(text) == [f"{PATH}:{problem}"]


UNLOCK_ALL = (
    "pg_advisory_unlock_all() would release the runner's advisory lock and let another runner "
    "in: take your own locks with pg_advisory_xact_lock(), which the transaction's end releases"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("SELECT pg_advisory_unlock_all();", UNLOCK_ALL, id="unlock all"),
        pytest.param(
            "SELECT x FROM (SELECT pg_advisory_unlock_all()) s;",
            UNLOCK_ALL,
            id="unlock all in a subquery",
        ),
        pytest.param(
            "insert into t select f(x, (PG_CATALOG.PG_ADVISORY_UNLOCK_ALL())) from u;",
            UNLOCK_ALL,
            id="unlock all qualified, upper-case, two parentheses deep",
        ),
        pytest.param(
            "SELECT pg_advisory_unlock(7883946363647717234);",
            UNLOCK_ALL.replace("_all() would", "() can"),
            id="unlock by key",
        ),
        pytest.param(
            "SELECT count(*) FROM t WHERE pg_advisory_unlock_shared(id);",
            UNLOCK_ALL.replace("_all() would", "_shared() can"),
            id="unlock shared by key",
        ),
        pytest.param(
            "RESET ALL;",
            "RESET ALL would undo the settings the runner gives the session (search_path, "
            "lock_timeout, statement_timeout, standard_conforming_strings): reset the settings "
            "you changed by name",
            id="RESET ALL",
        ),
        pytest.param(
            "SET SESSION standard_conforming_strings = off;",
            "SET standard_conforming_strings: the runner reads string literals with it on "
            "(PostgreSQL's default), so that no quote can hide a statement: write escapes as "
            "E'...' instead",
            id="standard_conforming_strings",
        ),
        pytest.param(
            "DISCARD ALL;",
            "DISCARD ALL would drop the runner's advisory lock: use DISCARD PLANS, SEQUENCES or "
            "TEMP, and reset the settings you changed by name",
            id="DISCARD ALL points elsewhere than RESET ALL",
        ),
    ],
)
def test_statements_that_undo_the_runners_session_are_refused(text: str, problem: str) -> None:
    assert problems(f"select 1;\n{text}") == [f"{PATH}:2:1: chunk 1: {problem}"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("SELECT 'pg_advisory_unlock_all()';", id="in a string"),
        pytest.param(
            "-- pg_advisory_unlock_all()\nSELECT 1 /* pg_advisory_unlock(1) */;", id="in comments"
        ),
        pytest.param(
            "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_advisory_unlock_all() FROM PUBLIC;\n"
            "COMMENT ON FUNCTION pg_advisory_unlock(bigint) IS 'x';",
            id="naming without calling",
        ),
        pytest.param(
            "SELECT pg_advisory_xact_lock(1), my_pg_advisory_unlock_all(),"
            " pg_advisory_unlock_allx();",
            id="other functions",
        ),
        pytest.param("RESET search_path; RESET ROLE; DISCARD PLANS;", id="resets by name"),
    ],
)
def test_what_only_looks_like_undoing_the_runners_session_is_not_refused(text: str) -> None:
    assert migration(text).chunks


@pytest.mark.parametrize(
    ("text", "sets_role"),
    [
        pytest.param("SET ROLE app;", True, id="SET ROLE"),
        pytest.param("set local role app;", True, id="SET LOCAL ROLE"),
        pytest.param("SET SESSION AUTHORIZATION app;", True, id="SET SESSION AUTHORIZATION"),
        pytest.param(
            "SET LOCAL SESSION AUTHORIZATION app;", True, id="SET LOCAL SESSION AUTHORIZATION"
        ),
        pytest.param("SELECT set_config('role', 'app', false);", True, id="set_config"),
        pytest.param(
            "SELECT x FROM (SELECT PG_CATALOG.SET_CONFIG('search_path', '', true)) s;",
            True,
            id="set_config in a subquery, qualified and upper-case",
        ),
        pytest.param("SET search_path TO authorization, session;", False, id="other settings"),
        pytest.param(
            "SELECT 'set_config(' /* set role x */; -- set session authorization x\n",
            False,
            id="in literals and comments",
        ),
        pytest.param("SELECT set_configuration(1);", False, id="another function"),
        pytest.param("RESET ROLE;", False, id="RESET ROLE"),
    ],
)
def test_sets_role_when_a_statement_may_change_the_user(text: str, sets_role: bool) -> None:
    assert migration(f"select 1;\n{text}").sets_role is sets_role


def test_every_bad_chunk_is_listed() -> None:
    text = "commit;\n--> statement-breakpoint\nselect 1;\n--> statement-breakpoint\nbegin;"
    assert problems(text) == [
        f"{PATH}:1:1: chunk 1: COMMIT without a BEGIN in the same chunk",
        f"{PATH}:5:1: chunk 3: this chunk opens a transaction and does not end it: "
        "add COMMIT at its end",
    ]


def test_a_no_transaction_file_may_hold_autocommit_and_self_managed_chunks() -> None:
    text = (
        "-- migrator: no-transaction\ncreate index concurrently i on t (a);\n"
        "--> statement-breakpoint\nbegin; select 1; commit;"
    )
    result = migration(text)
    assert result.mode is TxMode.NONE
    assert [c.kind for c in result.chunks] == [ChunkKind.AUTOCOMMIT, ChunkKind.SELF_MANAGED]


# --- 5. directives ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "mode", "lock_timeout", "statement_timeout"),
    [
        pytest.param("", TxMode.STATEMENT, None, None, id="no directive means per statement"),
        pytest.param(
            "-- migrator: single-transaction\n",
            TxMode.SINGLE,
            None,
            None,
            id="single-transaction",
        ),
        pytest.param("-- migrator: no-transaction\n", TxMode.NONE, None, None, id="no-transaction"),
        pytest.param(
            "-- migrator: lock-timeout=30s\n-- migrator: statement-timeout=5min\n",
            TxMode.STATEMENT,
            "30s",
            "5min",
            id="both timeouts",
        ),
        pytest.param(
            "--migrator:lock-timeout = 1.5 s\n-- migrator: statement-timeout=100\n",
            TxMode.STATEMENT,
            "1.5s",
            "100",
            id="spaces around the value and a bare number",
        ),
        pytest.param(
            "\n\n-- migrator: no-transaction\n\n   -- migrator: lock-timeout=500ms\n",
            TxMode.NONE,
            "500ms",
            None,
            id="directives after blank lines at the top still count",
        ),
        pytest.param(
            "-- a note\n--> statement-breakpoint\n-- migrator: single-transaction\n",
            TxMode.SINGLE,
            None,
            None,
            id="directives after other leading comments still count",
        ),
        pytest.param(
            "-- migrator: single-transaction\n-- migrator: single-transaction\n",
            TxMode.SINGLE,
            None,
            None,
            id="the same mode twice",
        ),
        pytest.param(
            "-- migrator: lock-timeout=1s\n-- migrator: lock-timeout=2h\n",
            TxMode.STATEMENT,
            "2h",
            None,
            id="the last timeout wins",
        ),
    ],
)
def test_directives_are_parsed_into_the_migration(
    header: str, mode: TxMode, lock_timeout: str | None, statement_timeout: str | None
) -> None:
    result = migration(header + "create table t (a int);\n")
    assert (result.mode, result.lock_timeout, result.statement_timeout) == (
        mode,
        lock_timeout,
        statement_timeout,
    )


KNOWN = "lint-ignore, lock-timeout, no-transaction, single-transaction, statement-timeout"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "-- migrator: frobnicate\nselect 1;",
            f"1: unknown directive 'frobnicate' (known: {KNOWN})",
            id="an unknown directive is named",
        ),
        pytest.param(
            "-- note\n-- migrator: always-run\nselect 1;",
            f"2: unknown directive 'always-run' (known: {KNOWN})",
            id="always-run is not a migration file directive",
        ),
        pytest.param(
            "-- migrator: lock-timeout=soon\n",
            "1: lock-timeout needs a duration such as 30s, 500ms or 5min, at most 24 days",
            id="a bad duration",
        ),
        pytest.param(
            "-- migrator: statement-timeout=\n",
            "1: statement-timeout needs a duration such as 30s, 500ms or 5min, at most 24 days",
            id="an empty duration",
        ),
        pytest.param(
            "-- migrator: statement-timeout=5 minutes\n",
            "1: statement-timeout needs a duration such as 30s, 500ms or 5min, at most 24 days",
            id="a unit PostgreSQL does not know",
        ),
        pytest.param(
            "-- migrator: single-transaction\n-- migrator: no-transaction\n",
            "2: 'no-transaction' takes no value and excludes the other mode",
            id="both modes at once",
        ),
        pytest.param(
            "-- migrator: single-transaction=yes\n",
            "1: 'single-transaction' takes no value and excludes the other mode",
            id="a mode with a value",
        ),
        pytest.param(
            "select 1;\n-- migrator: no-transaction\n",
            "2: a migrator directive below the file's leading comments is ignored by PostgreSQL "
            "and by migrator: move it to the top of the file",
            id="a directive below the first statement",
        ),
        pytest.param(
            "-- migrator: no-transaction\nselect 1;\n--> statement-breakpoint\n"
            "   --   migrator: lock-timeout=1s\nselect 2;",
            "4: a migrator directive below the file's leading comments is ignored by PostgreSQL "
            "and by migrator: move it to the top of the file",
            id="an indented directive in a later chunk",
        ),
    ],
)
def test_bad_directives_are_refused(text: str, problem: str) -> None:
    assert problems(text) == [f"{PATH}:{problem}"]


def test_every_bad_directive_is_listed() -> None:
    text = "-- migrator: nope\n-- migrator: lock-timeout=x\nselect 1;"
    assert problems(text) == [
        f"{PATH}:1: unknown directive 'nope' (known: {KNOWN})",
        f"{PATH}:2: lock-timeout needs a duration such as 30s, 500ms or 5min, at most 24 days",
    ]


@pytest.mark.parametrize(
    ("text", "directives", "header_end"),
    [
        pytest.param(
            "-- migrator: always-run\n\nselect 1;",
            Directives(always_run=True),
            len("-- migrator: always-run\n\n"),
            id="always-run where it is allowed and the header ends at the first statement",
        ),
        pytest.param("-- only", Directives(), len("-- only"), id="a header without newline"),
        pytest.param("select 1;", Directives(), 0, id="no header"),
    ],
)
def test_read_directives_returns_directives_and_header_end(
    text: str, directives: Directives, header_end: int
) -> None:
    allowed = frozenset({"always-run", "lock-timeout"})
    assert read_directives(text, PATH, allowed=allowed) == (directives, header_end)


def test_parse_takes_the_allowed_directives() -> None:
    file = sql_file("-- migrator: always-run\nselect 1;")
    assert parse(file, allowed=frozenset({"always-run"})).mode is TxMode.STATEMENT
    with pytest.raises(BadFile):
        parse(file)


# --- 6. excerpt and line_column -----------------------------------------------------------

TEXT = "one\ntwo\nthree\nfour\nfive\nsix"


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(0, (1, 1), id="the first character"),
        pytest.param(3, (1, 4), id="a newline belongs to its line"),
        pytest.param(4, (2, 1), id="the character after a newline"),
        pytest.param(10, (3, 3), id="inside a line"),
        pytest.param(len(TEXT), (6, 4), id="the end of the text"),
    ],
)
def test_line_column_is_one_based(offset: int, expected: tuple[int, int]) -> None:
    assert line_column(TEXT, offset) == expected
    assert line_column(TEXT, offset, sqlfile.line_starts(TEXT)) == expected  # the lookup


def test_every_chunk_of_a_long_file_knows_its_line() -> None:
    text = MARKER.join(f"\nINSERT INTO t VALUES ({i});\n" for i in range(20_000))
    migration = sqlfile.parse(SqlFile("public", 1, "0001_x.sql", "0001_x.sql", text, ""))
    assert len(migration.chunks) == 20_000
    last = migration.chunks[-1]
    assert last.line == text.count("\n", 0, last.start) + 2  # its statement's own line


@pytest.mark.parametrize(
    ("text", "line", "around", "expected"),
    [
        pytest.param(
            TEXT,
            3,
            2,
            "  1 | one\n  2 | two\n> 3 | three\n  4 | four\n  5 | five",
            id="two lines either side",
        ),
        pytest.param(TEXT, 1, 2, "> 1 | one\n  2 | two\n  3 | three", id="at the first line"),
        pytest.param(TEXT, 6, 1, "  5 | five\n> 6 | six", id="at the last line"),
        pytest.param(TEXT, 4, 0, "> 4 | four", id="no lines around"),
        pytest.param(
            "\n".join(f"l{n}" for n in range(1, 13)),
            9,
            2,
            "   7 | l7\n   8 | l8\n>  9 | l9\n  10 | l10\n  11 | l11",
            id="numbers are right-aligned to the widest",
        ),
    ],
)
def test_excerpt_numbers_lines_and_marks_the_one_asked(
    text: str, line: int, around: int, expected: str
) -> None:
    assert excerpt(text, line, around=around) == expected


# --- 7. properties of lexer.split, cross-checked with PostgreSQL's scanner ----------------

# Text that literals and comments may hold: the marker, semicolons, quotes of every kind.
_ATOMS = (
    MARKER,
    f"\n{MARKER}\n",
    f";{MARKER}",
    ";",
    ";;",
    " ",
    "\n",
    "\t",
    "x",
    "Z9",
    "-",
    "--",
    "/",
    "*",
    "/*",
    "*/",
    "(",
    ")",
    "'",
    '"',
    "\\",
    "$",
    "$$",
    "$q$",
    "e'",
    "U&'",
    "begin",
    "end;",
    ":x",
    ":'v'",
    "\\i f",
    "set_config(",
)
_TAGS = ("", "a", "tag", "_t1", "Fn")
_WORDS = ("select", "insert", "into", "t", "x1", "values", "from", "where", "and", "Mixed", "_y")
_OTHER = ("1", "42", "3.5", "+", "=", "*", ",", "<", ">")
_SEPARATORS = (" ", "\n", "\t", " \n  ")
_SEMICOLONS = (";", "; ", " ;\n", ";;", "; ;", ";\n\n")


@functools.cache
def _body(exclude: str, semicolons: bool) -> st.SearchStrategy[str]:
    atoms = [
        atom
        for atom in _ATOMS
        if not any(char in atom for char in exclude) and (semicolons or ";" not in atom)
    ]
    return st.lists(st.sampled_from(atoms), max_size=5).map("".join)


def _doubled_backslashes(text: str) -> str:
    # A lone backslash would read differently where PostgreSQL continues an E'' string.
    return text.replace("\\", "\\\\")


@st.composite
def _e_string(draw: st.DrawFn, semicolons: bool) -> str:
    body = draw(_body("", semicolons))
    escaped = []
    for char in body:
        if char == "\\":
            escaped.append("\\\\")
        elif char == "'":
            escaped.append(draw(st.sampled_from(["\\'", "''"])))
        else:
            escaped.append(char)
    return draw(st.sampled_from("Ee")) + "'" + "".join(escaped) + "'"


@st.composite
def _dollar(draw: st.DrawFn, semicolons: bool) -> str:
    tag = draw(st.sampled_from(_TAGS))
    inner = _body("$", semicolons)
    nested = st.tuples(st.sampled_from([t for t in _TAGS if t != tag]), inner).map(
        lambda pair: f"${pair[0]}$ {pair[1]} ${pair[0]}$"
    )
    parts = draw(st.lists(st.one_of(inner, nested), max_size=3))
    return f"${tag}$ " + " ".join(parts) + f" ${tag}$"


@functools.cache
def _block_comment(semicolons: bool, depth: int = 2) -> st.SearchStrategy[str]:
    inner = _body("/*", semicolons)
    part = st.one_of(inner, _block_comment(semicolons, depth - 1)) if depth else inner
    return st.lists(part, max_size=3).map(lambda parts: "/*" + " ".join(parts) + " */")


@functools.cache
def _literal(semicolons: bool) -> st.SearchStrategy[str]:
    body = _body("", semicolons).map(_doubled_backslashes)
    plain = st.tuples(st.sampled_from(["", "N", "U&", "B", "X"]), body).map(
        lambda pair: pair[0] + "'" + pair[1].replace("'", "''") + "'"
    )
    ident = st.tuples(st.sampled_from(["", "U&"]), body).map(
        lambda pair: pair[0] + '"q' + pair[1].replace('"', '""') + '"'
    )
    return st.one_of(plain, _e_string(semicolons), ident, _dollar(semicolons))


@functools.cache
def _comment(semicolons: bool) -> st.SearchStrategy[str]:
    line = _body("\n", semicolons).map(lambda body: f"-- {body}\n")
    return st.one_of(line, _block_comment(semicolons))


# A fragment is (text, is_token): comments are not tokens, a statement needs a token to count.
Fragment = tuple[str, bool]


@functools.cache
def _fragment(semicolons: bool) -> st.SearchStrategy[Fragment]:
    simple = st.one_of(st.sampled_from(_WORDS + _OTHER), _literal(semicolons))
    group = st.lists(simple, max_size=3).map(lambda parts: "(" + " ".join(parts) + ")")
    tokens = st.one_of(simple, group).map(lambda text: (text, True))
    return st.one_of(tokens, tokens, _comment(semicolons).map(lambda text: (text, False)))


@st.composite
def _chunk(draw: st.DrawFn, semicolons: bool) -> tuple[str, int]:
    """Chunk text without real markers, and how many statements it holds."""
    statements = draw(st.lists(st.lists(_fragment(semicolons), min_size=1, max_size=5), max_size=4))
    out: list[str] = []
    count = 0
    for number, fragments in enumerate(statements):
        if number:
            out.append(draw(st.sampled_from(_SEMICOLONS)))
        for position, (text, _) in enumerate(fragments):
            if position:
                out.append(draw(st.sampled_from(_SEPARATORS)))
            out.append(text)
        count += any(is_token for _, is_token in fragments)
    if draw(st.booleans()):
        out.append(";")
    return "".join(out), count


# How real markers join chunks: (text before the marker, the marker line, the newline after it).
_JOINERS = (
    ("\n", MARKER, "\n"),
    (";", MARKER, "\n"),
    ("\n  ", MARKER, "\n"),
    ("\n", f"{MARKER} -- and the rest; 'of the line", "\n"),
)

PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(
    st.lists(_chunk(semicolons=True), min_size=1, max_size=5),
    st.lists(st.sampled_from(_JOINERS), min_size=4, max_size=4),
)
def test_split_keeps_every_character_and_splits_only_at_real_markers(
    chunks: list[tuple[str, int]], joiners: list[tuple[str, str, str]]
) -> None:
    joiners = joiners[: len(chunks) - 1]
    text = chunks[0][0] + "".join(
        head + marker + tail + chunk
        for (head, marker, tail), (chunk, _) in zip(joiners, chunks[1:], strict=True)
    )
    heads = [head for head, _, _ in joiners] + [""]
    tails = [""] + [tail for _, _, tail in joiners]
    expected = [
        tail + chunk + head for (chunk, _), head, tail in zip(chunks, heads, tails, strict=True)
    ]

    pieces = split(text)

    assert len(pieces) == len(joiners) + 1
    assert [text[p.start : p.end] for p in pieces] == expected
    assert [text[a.end : b.start] for a, b in itertools.pairwise(pieces)] == [
        marker for _, marker, _ in joiners
    ]
    assert (pieces[0].start, pieces[-1].end) == (0, len(text))
    assert [len(p.statements) for p in pieces] == [count for _, count in chunks]
    for piece in pieces:
        assert all(piece.start <= s.start < piece.end for s in piece.statements)
        # Backslashes, colons and set_config( stand only in literals and comments here.
        assert piece.psql == ()
        assert all(s.calls == () for s in piece.statements)


_KEYWORD_KINDS = {
    "RESERVED_KEYWORD",
    "UNRESERVED_KEYWORD",
    "COL_NAME_KEYWORD",
    "TYPE_FUNC_NAME_KEYWORD",
}


def _postgres_statements(text: str) -> tuple[list[tuple[int, tuple[str, ...]]], int]:
    """PostgreSQL's view: (start, top-level words) of each non-empty statement, and `;` count."""
    statements: list[tuple[int, tuple[str, ...]]] = []
    start, words, depth, semicolons = -1, list[str](), 0, 0

    def end() -> None:
        if start >= 0:
            statements.append((start, tuple(words)))

    for token in scan(text):
        if token.name in ("SQL_COMMENT", "C_COMMENT"):
            continue
        if token.name == "ASCII_59":
            semicolons += 1
            end()
            start, words, depth = -1, [], 0
            continue
        if start < 0:
            start = token.start
        value = text[token.start : token.end + 1]
        if token.name == "ASCII_40":
            depth += 1
        elif token.name == "ASCII_41":
            depth -= 1
        elif depth == 0 and (
            (token.name == "IDENT" and not value.startswith('"'))
            or (token.kind in _KEYWORD_KINDS and token.name != "NCHAR")
        ):
            words.append(value.lower())
    end()
    return statements, semicolons


@PROPERTY
@given(_chunk(semicolons=True))
def test_statements_match_postgresql_scanner(chunk: tuple[str, int]) -> None:
    text, count = chunk
    assert text.isascii()  # pglast offsets are bytes
    (piece,) = split(text)
    theirs, _ = _postgres_statements(text)
    ours = [(s.start, s.words) for s in piece.statements]
    assert ours == theirs
    assert len(ours) == count


@PROPERTY
@given(_chunk(semicolons=False))
def test_top_level_semicolons_match_postgresql_scanner(chunk: tuple[str, int]) -> None:
    text, count = chunk
    (piece,) = split(text)
    theirs, semicolons = _postgres_statements(text)
    # Every `;` is outside literals and comments here, so each is a top-level one for both.
    assert semicolons == text.count(";")
    assert [(s.start, s.words) for s in piece.statements] == theirs
    assert len(piece.statements) == count
    # Statements are separated by at least one `;`, and only `;` ends one.
    starts = [s.start for s in piece.statements]
    for before, after in itertools.pairwise(starts):
        assert ";" in text[before:after]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("select E'a'\n'b\\'c;'; select 2", id="an E string continued"),
        pytest.param("select E'a' -- ;\n\v'b\\'c;'; select 2", id="continued over a comment"),
        pytest.param("select 'a'\n'b\\'; select 2", id="a plain string continued"),
        pytest.param("select B'1''0'; select X'f'\n'f'; select N'n'", id="bit strings"),
        pytest.param("select $a$ $b$ ; $a$; select $$;$$", id="dollar tags"),
        pytest.param("/* a /* b ; */ ; */ select 1; -- ;\n select 2", id="comments"),
    ],
)
def test_examples_match_postgresql_scanner(text: str) -> None:
    (piece,) = split(text)
    assert len(piece.statements) >= 2
    assert [(s.start, s.words) for s in piece.statements] == _postgres_statements(text)[0]


# --- 8. transaction control, cross-checked with PostgreSQL's parser -----------------------

_CONTROL = (
    "BEGIN",
    "begin work",
    "BEGIN ISOLATION LEVEL READ COMMITTED, READ ONLY",
    "START TRANSACTION",
    "start transaction read only",
    "COMMIT",
    "commit work",
    "COMMIT AND NO CHAIN",
    "END",
    "end transaction",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT s",
    "RELEASE s",
    "release savepoint s",
    "ROLLBACK TO s",
    "rollback work to savepoint s",
    "PREPARE TRANSACTION 'x'",
    "COMMIT PREPARED 'x'",
    "ROLLBACK PREPARED 'x'",
)
# Statements that name begin, end, case, commit... without being transaction control.
_LOOKALIKES = (
    "PREPARE transaction AS SELECT 1",
    "CREATE FUNCTION begin() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    'CREATE TABLE t (begin int, "end" int, "case" text, commit int, atomic int)',
    'SELECT t.begin, t.end, t.case, "end", "commit", 1 AS end, 2 AS case, begin, atomic FROM t',
    "SELECT CASE WHEN begin THEN 1 END end FROM t",
    "SELECT commit, rollback, savepoint, release, abort, start FROM t",
    "SELECT 'commit; begin', $$; end $$, E'\\'; rollback'",
    "DO $$ BEGIN COMMIT; END $$",
    'INSERT INTO t (begin) VALUES (1) RETURNING begin, "end"',
    "SELECT 1 end",
)
_ROUTINES = (
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql",
    "create or replace function begin() returns int",
    "CREATE PROCEDURE p() LANGUAGE sql",
    'CREATE OR REPLACE PROCEDURE "end"()',
    'CREATE FUNCTION f(begin int, atomic int) RETURNS TABLE (begin int, "end" int)',
    "CREATE FUNCTION f() RETURNS int SET search_path = begin",
)
_ATOMIC = ("BEGIN ATOMIC", "begin /* c */ atomic", "BEGIN\n  ATOMIC")
# Statements of a BEGIN ATOMIC body: END and CASE as keywords, column names and labels.
_BODY = (
    "SELECT 1",
    "RETURN 1",
    "COMMIT",
    "SELECT t.end, t.case FROM t",
    "SELECT 1 AS end, 2 AS case",
    "SELECT 1 case",
    "SELECT 1 end",
    "SELECT 1 begin",
    "SELECT CASE WHEN true THEN 1 END end",
    "SELECT CASE WHEN x THEN CASE WHEN y THEN 1 END END FROM t",
    "SELECT atomic end FROM t",
    "INSERT INTO t VALUES (CASE WHEN true THEN 1 END)",
    "SELECT 'end; commit'",
)
_STATEMENT_ENDS = (";", "; ", ";\n", " ;\n-- c\n", "; /* c */ ", ";;\n")


@st.composite
def _routine(draw: st.DrawFn) -> str:
    body = draw(st.lists(st.sampled_from(_BODY), max_size=3))
    ends = draw(st.lists(st.sampled_from(_STATEMENT_ENDS), min_size=3, max_size=3))
    statements = "".join(f"{statement}{end}" for statement, end in zip(body, ends, strict=False))
    head = f"{draw(st.sampled_from(_ROUTINES))} {draw(st.sampled_from(_ATOMIC))}"
    return f"{head} {statements}END"


_VALID = st.one_of(st.sampled_from(_CONTROL), st.sampled_from(_LOOKALIKES), _routine())


@st.composite
def _valid_chunk(draw: st.DrawFn) -> str:
    statements = draw(st.lists(_VALID, min_size=1, max_size=5))
    ends = draw(st.lists(st.sampled_from(_STATEMENT_ENDS), min_size=4, max_size=4))
    ends = [*ends[: len(statements) - 1], draw(st.sampled_from(["", ";", ";\n"]))]
    return "".join(f"{statement}{end}" for statement, end in zip(statements, ends, strict=True))


_ROLES = {
    TransactionStmtKind.TRANS_STMT_BEGIN: "open",
    TransactionStmtKind.TRANS_STMT_START: "open",
    TransactionStmtKind.TRANS_STMT_COMMIT: "close",
    TransactionStmtKind.TRANS_STMT_ROLLBACK: "close",
    TransactionStmtKind.TRANS_STMT_PREPARE: "close",  # it ends the transaction block too
    TransactionStmtKind.TRANS_STMT_SAVEPOINT: "inner",
    TransactionStmtKind.TRANS_STMT_RELEASE: "inner",
    TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: "inner",
    TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED: "",  # autocommit, in a chunk of its own
    TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED: "",
}


def _postgres_roles(text: str) -> list[tuple[int, str]]:
    """PostgreSQL's parser's view: (start, transaction role) of each statement."""
    return [
        (
            raw.stmt_location,
            _ROLES[raw.stmt.kind] if isinstance(raw.stmt, ast.TransactionStmt) else "",
        )
        for raw in parse_sql(text)
    ]


@PROPERTY
@given(st.lists(_valid_chunk(), min_size=1, max_size=3), st.sampled_from(_JOINERS))
def test_statements_and_transaction_control_match_postgresql_parser(
    chunks: list[str], joiner: tuple[str, str, str]
) -> None:
    text = "".join(joiner).join(chunks)
    assert text.isascii()  # pglast offsets are bytes
    pieces = split(text)
    assert len(pieces) == len(chunks)
    for piece in pieces:
        chunk = text[piece.start : piece.end]
        ours = [(s.start - piece.start, _transaction_control(s.words)) for s in piece.statements]
        assert ours == _postgres_roles(chunk), chunk


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "CREATE FUNCTION begin() RETURNS int LANGUAGE sql AS 'SELECT 1';\nCOMMIT;\nSELECT 1/0;",
            id="a function named begin",
        ),
        pytest.param(
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 case; END;\n"
            "COMMIT; SELECT 2",
            id="a bare label case in a body",
        ),
        pytest.param("begin; insert into t values (1); prepare transaction 'x'", id="2PC"),
    ],
)
def test_transaction_control_examples_match_postgresql_parser(text: str) -> None:
    (piece,) = split(text)
    ours = [(s.start, _transaction_control(s.words)) for s in piece.statements]
    assert ours == _postgres_roles(text)
