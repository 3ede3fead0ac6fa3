"""The text sent to the server per file and per batch of chunks, and what its results say."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from migrator import db
from migrator.journal import ELAPSED_COLUMN
from migrator.model import Chunk, ChunkKind

# A batch's bounds: the server parses a whole query before running it, and the client holds
# every result of it, so a file of thousands of chunks goes in several batches.
BATCH_CHUNKS = 500
BATCH_TEXT = 4 << 20  # characters of chunk text
# A chunk and its journal update commit in one transaction, so losing an asynchronous commit
# to a server crash loses both or neither; the last chunk of every file commits synchronously,
# which flushes all the commits before it.
ASYNCHRONOUS_COMMIT = "SET LOCAL synchronous_commit TO off"

Record = Callable[[int], str]  # chunks_done -> the journal update, as SQL text


@dataclass(frozen=True, slots=True)
class Batch:
    """Transactional chunks as one simple query, and where each chunk starts in it."""

    chunks: tuple[Chunk, ...]
    text: str
    offsets: tuple[int, ...]  # in characters


def end(chunks: Sequence[Chunk], position: int, server_version: int) -> int:
    """Where the batch of transactional chunks starting at `position` ends (exclusive)."""
    stop = position + 1
    if server_version < 130000:
        # statement_timeout timed a multi-statement query as a whole before PostgreSQL 13.
        return stop
    size = len(chunks[position].sql)
    while (
        stop < len(chunks)
        and chunks[stop].kind is ChunkKind.TRANSACTIONAL
        and stop - position < BATCH_CHUNKS
        and size + len(chunks[stop].sql) <= BATCH_TEXT
    ):
        size += len(chunks[stop].sql)
        stop += 1
    return stop


def compose(chunks: Sequence[Chunk], record: Record, total: int) -> Batch:
    """Each chunk in its own BEGIN ... COMMIT together with its journal update (`record`);
    `total` is the file's number of chunks (its last commits synchronously)."""
    parts: list[str] = []
    offsets: list[int] = []
    length = 0
    for chunk in chunks:
        head = f"BEGIN; {ASYNCHRONOUS_COMMIT};\n" if chunk.index < total else "BEGIN;\n"
        # The newline ends a line comment the chunk may finish with; ";" ends its last statement.
        part = f"{head}{chunk.sql}\n;{record(chunk.index)};\nCOMMIT;\n"
        offsets.append(length + len(head))
        parts.append(part)
        length += len(part)
    return Batch(tuple(chunks), "".join(parts), tuple(offsets))


def elapsed(cursor: db.Cursor) -> list[int]:
    """The file's elapsed milliseconds that each journal update of a batch returned, in order."""
    # Raw results: a cursor would build column descriptions for every one of them.
    found: list[int] = []
    column = ELAPSED_COLUMN.encode()
    while True:
        result = cursor.pgresult
        if result and result.nfields == 1 and result.ntuples == 1 and result.fname(0) == column:
            found.append(int(result.get_value(0, 0) or 0))
        if not cursor.nextset():
            return found


def start(reset: str, prepare: str, start_row: str, *, asynchronous: bool) -> str:
    """A file's first query: the session reset, the PREPAREs it needs (after the reset, so
    that they look the journal up as the session user), and its start row."""
    parts = [reset, prepare] if prepare else [reset]
    parts.append(start_row)
    if asynchronous:
        parts.append(ASYNCHRONOUS_COMMIT)
    return "; ".join(parts)


def as_session_user(record: Record) -> Record:
    """The journal update written as the user who connected, whatever role or session user
    the file set (SET LOCAL reverts at commit to what the file set)."""
    return lambda chunks_done: db.AS_SESSION_USER + "; " + record(chunks_done)
