"""lint: every rule with a firing case, its safe form, and the same-file new-table exception;
the command without a server; ignores; SARIF; migrate --lint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Database, cli, write

from migrator import linter, sqlfile
from migrator.model import SqlFile

BREAK = "--> statement-breakpoint\n"
NEW = "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, a int, b text);\n" + BREAK

# (rule, a chunk that fires it, the safe form, whether creating t earlier in the file quiets it)
CASES = [
    ("require-concurrent-index-creation", "CREATE INDEX i ON t (a);",
     "CREATE INDEX CONCURRENTLY i ON t (a);", True),
    ("require-concurrent-index-deletion", "DROP INDEX i;", "DROP INDEX CONCURRENTLY i;", False),
    ("adding-foreign-key-constraint",
     "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u;",
     "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u NOT VALID;", True),
    ("constraint-missing-not-valid", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);",
     "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;", True),
    ("adding-not-nullable-field", "ALTER TABLE t ALTER a SET NOT NULL;",
     "ALTER TABLE t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;", True),
    ("adding-not-nullable-field", "ALTER TABLE t ADD c int NOT NULL;",
     "ALTER TABLE t ADD c int NOT NULL DEFAULT 0;", True),
    ("changing-column-type", "ALTER TABLE t ALTER a TYPE bigint;", "ALTER TABLE t ADD a2 bigint;",
     True),
    ("adding-field-with-default", "ALTER TABLE t ADD c uuid DEFAULT gen_random_uuid();",
     "ALTER TABLE t ADD c timestamptz DEFAULT now();", True),
    ("disallowed-unique-constraint", "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a);",
     "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX i;", True),
    ("renaming-column", "ALTER TABLE t RENAME COLUMN a TO a2;", "ALTER TABLE t ADD a2 int;", True),
    ("renaming-table", "ALTER TABLE t RENAME TO t2;", "CREATE VIEW t2 AS SELECT * FROM t;", True),
    ("ban-drop-column", "ALTER TABLE t DROP COLUMN a;", "ALTER TABLE t ALTER a DROP DEFAULT;",
     True),
    ("ban-drop-table", "DROP TABLE t;", "DROP VIEW v;", True),
    ("ban-drop-database", "DROP DATABASE d;", "SELECT 1;", False),
    ("ban-truncate-cascade", "TRUNCATE t CASCADE;", "TRUNCATE t;", False),
    ("prefer-identity", "CREATE TABLE u (id serial);",
     "CREATE TABLE u (id int GENERATED ALWAYS AS IDENTITY);", False),
    ("prefer-timestamptz", "CREATE TABLE u (at timestamp);", "CREATE TABLE u (at timestamptz);",
     False),
    ("prefer-text-field", "CREATE TABLE u (name varchar(20));", "CREATE TABLE u (name text);",
     False),
    ("ban-char-field", "CREATE TABLE u (code char(3));", "CREATE TABLE u (code text);", False),
    ("enum-value-added-and-used",
     "ALTER TYPE kind ADD VALUE 'promo';\nUPDATE t SET b = 'promo';",
     "ALTER TYPE kind ADD VALUE 'promo';", False),
    ("ban-vacuum-full", "VACUUM FULL t;", "VACUUM t;", True),
    ("ban-cluster", "CLUSTER t USING i;", "ANALYZE t;", True),
    ("ban-lock-table", "LOCK TABLE t IN ACCESS EXCLUSIVE MODE;", "SELECT 1;", True),
    ("require-concurrent-refresh", "REFRESH MATERIALIZED VIEW t;",
     "REFRESH MATERIALIZED VIEW CONCURRENTLY t;", True),
]  # fmt: skip


def rules_of(text: str, name: str = "0002_x.sql") -> list[str]:
    file = sqlfile.read("public", name, f"sql/public/{name}", text.encode())
    return [f.rule for f in linter.lint(sqlfile.parse(file), linter.severities({}))]


@pytest.mark.parametrize(("rule", "firing", "safe", "new_quiets"), CASES)
def test_each_rule_fires_its_safe_form_does_not_and_a_new_table_is_exempt(
    rule: str, firing: str, safe: str, new_quiets: bool
) -> None:
    assert rule in rules_of(firing + "\n")
    assert rule not in rules_of(safe + "\n")
    made_here = rules_of(NEW + firing + "\n")
    assert (rule not in made_here) is new_quiets, made_here


def test_every_rule_has_a_case() -> None:
    assert {rule for rule, *_ in CASES} | {"syntax-error"} == set(linter.RULES)


def test_findings_name_the_place_and_teach_the_fix() -> None:
    file = sqlfile.read(
        "public",
        "0002_x.sql",
        "sql/public/0002_x.sql",
        b"SELECT 1;\n" + BREAK.encode() + b"  CREATE INDEX i ON t (a);\n",
    )
    (finding,) = linter.lint(sqlfile.parse(file), linter.severities({}))
    assert (finding.path, finding.line, finding.column) == ("sql/public/0002_x.sql", 3, 3)
    assert finding.severity == "error" and "CONCURRENTLY" in finding.fix


def test_severities_from_the_configuration_and_unknown_rules() -> None:
    chosen = linter.severities({"prefer-identity": "error", "ban-drop-table": "off"})
    assert chosen["prefer-identity"] == "error" and chosen["ban-drop-table"] == "off"
    with pytest.raises(Exception, match="no rule"):
        linter.severities({"no-such-rule": "off"})


def test_down_files_may_drop_what_their_up_file_made() -> None:
    assert rules_of("DROP TABLE t;\n", "0002_x.down.sql") == []


def test_a_syntax_error_is_reported_with_its_place_and_no_server_is_needed(
    tmp_path: Path,
) -> None:
    write(tmp_path, {"sql/public/0001_a.sql": "SELECT 1;\n" + BREAK + "CREATE TABEL t (a int);\n"})
    # A server nobody answers on: lint --all must not try it.
    env = {"MIGRATOR_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = cli("lint", "--all", env=env)
    assert result.exit_code == 3, result.output
    assert "sql/public/0001_a.sql:3:8: syntax-error (error)" in result.stdout
    assert 'syntax error at or near "TABEL"' in result.stdout
    named = cli("lint", "sql/public/0001_a.sql", env=env)
    assert named.exit_code == 3 and "syntax-error" in named.stdout


def test_ignores_in_a_chunk_in_the_header_and_in_pyproject(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": "CREATE INDEX i ON t (a);\n"
            + BREAK
            + "-- migrator: lint-ignore=require-concurrent-index-creation\n"
            "CREATE INDEX j ON t (a);\n",
            "sql/public/0002_b.sql": "-- migrator: lint-ignore=ban-drop-column, renaming-table\n"
            "ALTER TABLE t DROP a;\n" + BREAK + "ALTER TABLE t RENAME TO u;\n",
        },
    )
    result = cli("--json", "lint", "--all")
    findings = [(f["path"], f["line"], f["rule"]) for f in json.loads(result.stdout)["findings"]]
    assert findings == [("sql/public/0001_a.sql", 1, "require-concurrent-index-creation")]
    write(
        tmp_path,
        {"pyproject.toml": "[tool.migrator.lint]\nrequire-concurrent-index-creation = 'warning'\n"},
    )
    quiet = cli("lint", "--all")
    assert quiet.exit_code == 0  # warnings alone pass
    assert "0 errors, 1 warning" in quiet.stdout


def test_sarif_and_github_formats(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"sql/public/0001_a.sql": "CREATE TABLE u (id serial);\nCREATE INDEX i ON t (a);\n"},
    )
    sarif = cli("lint", "--all", "--format", "sarif")
    assert sarif.exit_code == 3
    document = json.loads(sarif.stdout)  # stdout holds the SARIF alone
    assert document["version"] == "2.1.0" and "$schema" in document
    (run,) = document["runs"]
    assert run["tool"]["driver"]["name"] == "migrator"
    assert {rule["id"] for rule in run["tool"]["driver"]["rules"]} == {
        "prefer-identity",
        "require-concurrent-index-creation",
    }
    for result in run["results"]:
        assert result["ruleId"] and result["message"]["text"] and result["level"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == "sql/public/0001_a.sql"
        assert location["region"]["startLine"] >= 1
    github = cli("lint", "--all", "--format", "github")
    assert (
        "::error file=sql/public/0001_a.sql,line=2,col=1,title=require-concurrent" in github.stdout
    )
    assert "::warning file=sql/public/0001_a.sql,line=1" in github.stdout


def test_lint_checks_only_the_pending_files_of_a_configured_database(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path, {"sql/public/0001_a.sql": "CREATE TABLE t (a int);\nCREATE INDEX i ON t (a);\n"}
    )
    assert cli("migrate", url=database.url).exit_code == 0
    write(tmp_path, {"sql/public/0002_b.sql": "ALTER TABLE t ALTER a TYPE bigint;\n"})
    result = cli("lint", url=database.url)
    assert result.exit_code == 3
    assert "0002_b.sql" in result.stdout and "0001_a.sql" not in result.stdout


def test_migrate_lint_refuses_on_an_error_and_applies_nothing(
    database: Database, tmp_path: Path
) -> None:
    write(
        tmp_path,
        {
            "sql/public/0001_a.sql": "CREATE TABLE t (a int);\n",
            "sql/public/0002_b.sql": "CREATE INDEX i ON t (a);\n",
        },
    )
    refused = cli("migrate", "--lint", url=database.url)
    assert refused.exit_code == 3
    assert "require-concurrent-index-creation" in refused.stderr
    assert database.scalar("SELECT to_regclass('public.t')") is None
    assert database.scalar("SELECT to_regclass('public.__migrations')") is None
    document = json.loads(cli("--json", "migrate", "--lint", url=database.url).stdout)
    assert [entry["name"] for entry in document["pending"]] == ["0001_a.sql", "0002_b.sql"]
    assert document["error"]["type"] == "LintFailed" and document["exit_code"] == 3
    setting = cli("migrate", url=database.url, env={"MIGRATOR_LINT_ON_MIGRATE": "true"})
    assert setting.exit_code == 3
    assert cli("migrate", url=database.url).exit_code == 0  # without lint it runs


def test_the_example_project_lints_clean() -> None:
    from conftest import REPO

    result = cli("--sql-dir", str(REPO / "sql"), "lint", "--all")
    assert result.exit_code == 0, result.output


def test_lint_of_a_file_is_pure_data() -> None:
    file = SqlFile("public", 1, "0001_a.sql", "sql/public/0001_a.sql", "SELECT 1;\n", "h")
    assert linter.lint(sqlfile.parse(file), linter.severities({})) == []


# Found by a review by reproduction; each failed before its fix.

FIRES = [
    ("enum-value-added-and-used",
     "-- migrator: single-transaction\nALTER TYPE mood ADD VALUE 'x';\n" + BREAK
     + "CREATE VIEW v AS SELECT 'x'::mood;\n"),
    ("enum-value-added-and-used", "ALTER TYPE mood ADD VALUE 'it''s';\nSELECT 'it''s'::mood;\n"),
    ("require-concurrent-index-creation",
     "CREATE TABLE a.users (id int);\nCREATE INDEX ON b.users (id);\n"),
    ("require-concurrent-index-creation",
     'CREATE TABLE "Orders" (id int);\nCREATE INDEX ON orders (id);\n'),
    ("require-concurrent-index-creation",
     "CREATE TABLE IF NOT EXISTS t (id int);\nCREATE INDEX ON t (id);\n"),
    ("adding-field-with-default", "ALTER TABLE t ADD a int GENERATED ALWAYS AS IDENTITY;\n"),
    ("adding-field-with-default", "ALTER TABLE t ADD b int GENERATED ALWAYS AS (id * 2) STORED;\n"),
    ("adding-not-nullable-field", "ALTER TABLE t ADD c int NOT NULL DEFAULT NULL;\n"),
]  # fmt: skip
QUIET = [
    ("enum-value-added-and-used",
     "ALTER TYPE mood ADD VALUE 'a';\nALTER TYPE mood ADD VALUE 'b' AFTER 'a';\n"),
    ("enum-value-added-and-used", "ALTER TYPE mood ADD VALUE 'a';\nCOMMENT ON TYPE mood IS 'a';\n"),
    ("require-concurrent-index-creation",
     "CREATE TABLE t1 (id int);\nALTER TABLE t1 RENAME TO t2;\nCREATE INDEX ON t2 (id);\n"),
    ("require-concurrent-index-creation", "CREATE INDEX i ON ONLY events (at);\n"),
    ("changing-column-type", "ALTER TYPE addr ALTER ATTRIBUTE zip TYPE bigint;\n"),
    ("ban-drop-column", "ALTER TYPE addr DROP ATTRIBUTE zip;\n"),
    ("prefer-text-field", "CREATE TABLE u (name varchar);\n"),
    ("ban-vacuum-full", "VACUUM (FULL false) t;\n"),
    ("require-concurrent-index-creation",
     "-- migrator: lint-ignore=require-concurrent-index-creation because the table is tiny\n"
     "CREATE INDEX i ON t (a);\n"),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "text"), FIRES)
def test_fires_where_it_was_missed(rule: str, text: str) -> None:
    assert rule in rules_of(text)


@pytest.mark.parametrize(("rule", "text"), QUIET)
def test_quiet_where_it_misfired(rule: str, text: str) -> None:
    assert rule not in rules_of(text)


def test_an_ignore_in_a_string_or_past_the_first_chunk_does_not_count() -> None:
    in_string = "SELECT '-- migrator: lint-ignore=ban-lock-table';\nLOCK t;\n"
    assert "ban-lock-table" in rules_of(in_string)
    later = (
        "-- header\n"
        + BREAK
        + "-- migrator: lint-ignore=ban-lock-table\nLOCK t;\n"
        + BREAK
        + "LOCK t;\n"
    )
    assert rules_of(later) == ["ban-lock-table"]  # the second chunk's


def test_an_unknown_or_empty_ignore_is_an_error(tmp_path: Path) -> None:
    for comment in ("lint-ignore=require-concurent-index-creation", "lint-ignore"):
        write(
            tmp_path,
            {"sql/public/0001_a.sql": f"SELECT 1;\n{BREAK}-- migrator: {comment}\nSELECT 2;\n"},
        )
        result = cli("lint", "--all")
        assert result.exit_code == 2, result.output
        assert "sql/public/0001_a.sql:3: lint-ignore" in result.stderr


def test_schemas_and_files_together_are_both_linted_and_paths_must_be_sql(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        {
            "sql/other/0001_o.sql": "LOCK t;\n",
            "sql/app/0001_ok.sql": "SELECT 1;\n",
            "notes.txt": "x\n",
        },
    )
    both = cli("lint", "other", "sql/app/0001_ok.sql")
    assert both.exit_code == 3 and "ban-lock-table" in both.stdout
    assert cli("lint", "notes.txt").exit_code == 2
    assert cli("--json", "lint", "--all", "--format", "sarif").exit_code == 2


def test_github_annotations_escape_their_properties(tmp_path: Path) -> None:
    write(tmp_path, {"sql/my,app/0001_a:b.sql": "LOCK t;\n"})
    result = cli("lint", "--all", "--format", "github")
    assert "file=sql/my%2Capp/0001_a%3Ab.sql,line=1" in result.stdout


def test_migrate_dry_run_lint_lints(database: Database, tmp_path: Path) -> None:
    write(tmp_path, {"sql/public/0001_a.sql": "CREATE INDEX i ON t (a);\n"})
    assert cli("migrate", "--dry-run", "--lint", url=database.url).exit_code == 3
