"""The pure planner: table-driven, no database."""

from __future__ import annotations

import pytest

from migrator import planner, sqlfile
from migrator.db import mask, scrub
from migrator.errors import BadFile, DriftError
from migrator.model import Chunk, FileState, JournalRow, RowStatus, Scope, SqlFile

MARK = "\n--> statement-breakpoint\n"


def file(version: int, text: str = "SELECT 1;", schema: str = "public") -> SqlFile:
    name = f"{version:04d}_f.sql"
    return SqlFile(schema, version, name, f"sql/{schema}/{name}", text, sqlfile.sha256(text))


def row(
    source: SqlFile,
    status: RowStatus = RowStatus.APPLIED,
    done: int | None = None,
    hash: str | None = None,
) -> JournalRow:
    migration = sqlfile.parse(source)
    total = len(migration.chunks)
    return JournalRow(
        source.version,
        source.name,
        hash or source.hash,
        migration.chunk_hashes,
        status,
        total,
        total if done is None else done,
    )


ONE, TWO, THREE = file(1), file(2, "SELECT 2;" + MARK + "SELECT 3;"), file(3)


@pytest.mark.parametrize(
    ("files", "rows", "expected"),
    [
        pytest.param([ONE, TWO], [], ["pending", "pending"], id="nothing applied"),
        pytest.param([ONE, TWO], [row(ONE)], ["applied", "pending"], id="one applied"),
        pytest.param([ONE, TWO], [row(ONE, hash="0" * 64)], ["changed", "pending"], id="changed"),
        pytest.param([ONE], [row(ONE), row(TWO)], ["applied", "missing"], id="missing"),
        pytest.param(
            [ONE, TWO, THREE],
            [row(ONE), row(THREE)],
            ["applied", "out-of-order", "applied"],
            id="out of order",
        ),
        pytest.param(
            [ONE, TWO],
            [row(ONE), row(TWO, RowStatus.FAILED, 1)],
            ["applied", "failed"],
            id="failed",
        ),
        pytest.param(
            [ONE, TWO],
            [row(ONE), row(TWO, RowStatus.RUNNING, 1)],
            ["applied", "running"],
            id="interrupted",
        ),
        pytest.param([ONE], [row(ONE, RowStatus.BASELINE)], ["baseline"], id="baseline"),
    ],
)
def test_assess_states(files: list[SqlFile], rows: list[JournalRow], expected: list[str]) -> None:
    assert [status.state.value for status in planner.assess("public", files, rows)] == expected


def test_failed_file_detail_names_the_chunk_and_the_error() -> None:
    failed = row(TWO, RowStatus.FAILED, 1)
    failed = JournalRow(**{**{f: getattr(failed, f) for f in failed.__slots__}, "error": "boom\nx"})
    (status,) = planner.assess("public", [TWO], [failed])
    assert status.detail == "failed at chunk 2 of 2: boom"


def test_plan_takes_pending_and_resumes_failed_files_in_version_order() -> None:
    plans = planner.plan({"public": [ONE, TWO, THREE]}, {"public": [row(TWO, RowStatus.FAILED, 1)]})
    assert [(step.migration.file.version, step.chunks_done) for step in plans[0].steps] == [
        (1, 0),
        (2, 1),
        (3, 0),
    ]


def test_plan_stops_at_to() -> None:
    plans = planner.plan({"public": [ONE, TWO, THREE]}, {}, Scope(to=2))
    assert [step.migration.file.version for step in plans[0].steps] == [1, 2]
    assert [status.version for status in plans[0].left] == [3]  # left pending, and said so


def test_plan_refuses_drift_in_any_schema_naming_every_offender() -> None:
    other = file(1, schema="sale")
    with pytest.raises(DriftError) as caught:
        planner.plan(
            {"public": [ONE, TWO], "sale": []},
            {"public": [row(ONE, hash="0" * 64)], "sale": [row(other)]},
        )
    assert caught.value.problems == [
        "sql/public/0001_f.sql: changed since it was applied",
        "sale/0001_f.sql: journaled as applied, but the file is gone",
    ]


def test_out_of_order_is_allowed_on_request() -> None:
    plans = planner.plan(
        {"public": [ONE, TWO, THREE]},
        {"public": [row(ONE), row(THREE)]},
        Scope(allow_out_of_order=True),
    )
    assert [step.migration.file.version for step in plans[0].steps] == [2]


def test_resume_is_refused_when_a_done_chunk_changed_but_allowed_for_undone_ones() -> None:
    failed = row(TWO, RowStatus.FAILED, 1)
    edited_later = file(2, "SELECT 2;" + MARK + "SELECT 33;")
    plans = planner.plan({"public": [edited_later]}, {"public": [failed]})
    assert plans[0].steps[0].chunks_done == 1
    edited_done = file(2, "SELECT 22;" + MARK + "SELECT 3;")
    with pytest.raises(DriftError) as caught:
        planner.plan({"public": [edited_done]}, {"public": [failed]})
    assert "chunk 1 changed after it ran" in caught.value.problems[0]


def test_plan_parses_only_what_it_will_run() -> None:
    broken = file(1, "SELECT 'never closed")
    applied = JournalRow(1, broken.name, broken.hash, (), RowStatus.APPLIED, 1, 1)
    assert planner.plan({"public": [broken]}, {"public": [applied]})[0].steps == ()
    with pytest.raises(BadFile):
        planner.plan({"public": [broken]}, {})


@pytest.mark.parametrize(
    ("conninfo", "shown"),
    [
        ("postgresql://app:pw@db.example:6432/shop", "postgresql://app:***@db.example:6432/shop"),
        ("postgresql://app@db/shop", "postgresql://app@db/shop"),
        ("host=db user=app password=pw dbname=shop", "postgresql://app:***@db/shop"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/x",
            "postgresql://postgres@/postgres?host=/tmp/x",
        ),
        ("not a url", "(an invalid connection string)"),
        # libpq reads these user and password parts otherwise than written: show none of them.
        ("postgresql://app:pa/ssw0rd@host/db", "postgresql://***@host/db"),
        ("postgresql://app:p@ss@host/db", "postgresql://***@host/db"),
    ],
)
def test_mask_never_shows_the_password(conninfo: str, shown: str) -> None:
    assert mask(conninfo) == shown


@pytest.mark.parametrize(
    ("conninfo", "message", "scrubbed"),
    [
        (  # a one-letter password: the letter stays everywhere else
            "postgresql://app:x@db/shop",
            "cannot reach postgresql://app:x@db/shop: x marks the spot",
            "cannot reach postgresql://app:***@db/shop: x marks the spot",
        ),
        (  # a password libpq does not read as one: hidden whole, wherever the URL appears
            "postgresql://app:pa/ssw0rd@host/db",
            'no host "app:pa/ssw0rd@host" in postgresql://app:pa/ssw0rd@host/db',
            'no host "app:***@host" in postgresql://***@host/db',
        ),
    ],
)
def test_scrub_masks_the_connection_string_and_edits_nothing_else(
    conninfo: str, message: str, scrubbed: str
) -> None:
    assert scrub(message, conninfo) == scrubbed


def test_schema_order_puts_configured_then_public_then_names() -> None:
    from migrator.discovery import schema_order

    assert schema_order(["sale", "public", "pricing", "audit"], ()) == [
        "public",
        "audit",
        "pricing",
        "sale",
    ]
    assert schema_order(["sale", "public", "pricing"], ("sale",)) == ["sale", "public", "pricing"]


def test_file_state_problem_flags() -> None:
    assert {state for state in FileState if planner.FileStatus("s", 1, "n", state).is_problem} == {
        FileState.CHANGED,
        FileState.MISSING,
        FileState.OUT_OF_ORDER,
    }


def _chunks(*statements: str) -> tuple[Chunk, ...]:
    return sqlfile.parse(file(1, MARK.join(statements))).chunks


BIG = "SELECT '" + "x" * (3 << 20) + "'"  # 3 Mi characters: two do not fit one batch


@pytest.mark.parametrize(
    ("statements", "position", "server_version", "end"),
    [
        (["SELECT 1"] * 1207, 0, 150000, 500),
        (["SELECT 1"] * 1207, 500, 150000, 1000),
        (["SELECT 1"] * 1207, 1000, 150000, 1207),
        (["SELECT 1"] * 3 + ["VACUUM"] + ["SELECT 1"] * 3, 0, 150000, 3),
        (["SELECT 1"] * 3 + ["VACUUM"] + ["SELECT 1"] * 3, 4, 150000, 7),
        (["SELECT 1"] * 5, 1, 120000, 2),  # statement_timeout timed whole queries before 13
        ([BIG, BIG, "SELECT 1"], 0, 160000, 1),
        ([BIG, "SELECT 1", BIG], 0, 160000, 2),
    ],
)
def test_batch_bounds(statements: list[str], position: int, server_version: int, end: int) -> None:
    from migrator.batch import end as batch_end

    assert batch_end(_chunks(*statements), position, server_version) == end
