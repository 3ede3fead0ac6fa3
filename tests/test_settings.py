"""Settings: every source and its label, python-dotenv's syntax, the database URL kept secret,
and bad values named with their source but never shown. No database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import cli, write
from pydantic import ValidationError

from migrator import settings
from migrator.errors import ConfigError

SECRET = "s3cr3t-pw"
URL = f"postgresql://u:{SECRET}@h/db"


def explained(**flags: Any) -> dict[str, tuple[str, str]]:
    """{setting: (shown value, source)} from settings.explain."""
    return {name: (value, source) for name, value, source in settings.explain(**flags)}


def secret(loaded: settings.Settings) -> str | None:
    return None if loaded.database_url is None else loaded.database_url.get_secret_value()


def test_the_defaults_in_a_folder_with_no_files() -> None:
    loaded = settings.load()
    assert loaded.model_dump() == {
        "database_url": None,
        "env": "development",
        "sql_dir": Path("sql"),
        "seeds_dir": Path("seeds"),
        "schemas": (),
        "journal_table": "__migrations",
        "seeds_table": "__seeds",
        "lock_timeout": "10s",
        "statement_timeout": "0",
        "lock_retries": 3,
        "lock_wait": 60.0,
        "embedded_dir": Path(".migrator"),
        "require_run_mode": False,
        "require_down": False,
        "wait_for_db": 0.0,
        "tenant_template": None,
        "databases": {},
        "lint": {},
        "lint_on_migrate": False,
        "dump_after_migrate": False,
    }
    assert {source for _, source in explained().values()} == {"default"}
    assert settings.conninfo(loaded, {}) is None


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        settings.load().lock_wait = 1


# python-dotenv's syntax, which the hand-written loader got wrong (it kept the quotes of
# `"5s" # short`).


@pytest.mark.parametrize(
    ("line", "setting", "expected"),
    [
        pytest.param(
            'MIGRATOR_LOCK_TIMEOUT="5s" # short', "lock_timeout", "5s", id="quoted+comment"
        ),
        pytest.param(
            "MIGRATOR_LOCK_TIMEOUT='5s' # short", "lock_timeout", "5s", id="single quotes"
        ),
        pytest.param("MIGRATOR_LOCK_TIMEOUT=5s # short", "lock_timeout", "5s", id="bare+comment"),
        pytest.param("MIGRATOR_JOURNAL_TABLE='a#b'", "journal_table", "a#b", id="# in quotes"),
        pytest.param("MIGRATOR_JOURNAL_TABLE=a#b", "journal_table", "a#b", id="# in a word"),
        pytest.param(r'MIGRATOR_JOURNAL_TABLE="a\nb"', "journal_table", "a\nb", id='escape in "'),
        pytest.param(r"MIGRATOR_JOURNAL_TABLE='a\nb'", "journal_table", r"a\nb", id="none in '"),
        pytest.param(
            'MIGRATOR_JOURNAL_TABLE="say \\"hi\\""', "journal_table", 'say "hi"', id='\\"'
        ),
        pytest.param("export MIGRATOR_SQL_DIR=db/sql", "sql_dir", Path("db/sql"), id="export"),
        pytest.param("  MIGRATOR_LOCK_RETRIES = 5  ", "lock_retries", 5, id="spaces"),
        pytest.param('MIGRATOR_SCHEMAS="sale, public"', "schemas", ("sale", "public"), id="list"),
        pytest.param("MIGRATOR_REQUIRE_RUN_MODE=on", "require_run_mode", True, id="on"),
        pytest.param("MIGRATOR_REQUIRE_RUN_MODE=No", "require_run_mode", False, id="No"),
    ],
)
def test_a_dotenv_line(tmp_path: Path, line: str, setting: str, expected: object) -> None:
    write(tmp_path, {".env": f"# a comment\n\n{line}\n"})
    assert getattr(settings.load(), setting) == expected
    assert explained()[setting][1] == ".env"


def test_the_quoted_value_with_a_comment_through_migrator_config(tmp_path: Path) -> None:
    write(tmp_path, {".env": 'MIGRATOR_LOCK_TIMEOUT="5s" # short\n'})
    shown = cli("config")
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.stdout.splitlines() if line.startswith("lock_timeout"))
    assert line.split(None, 2) == ["lock_timeout", "5s", ".env"]


def test_dotenv_files_take_export_quotes_and_comments(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\nexport MIGRATOR_SQL_DIR='db/sql'\nMIGRATOR_LOCK_WAIT=5 # seconds\n"
        'MIGRATOR_SCHEMAS="sale, public"\nMIGRATOR_REQUIRE_RUN_MODE=yes\n'
    )
    loaded = settings.load()
    assert str(loaded.sql_dir) == "db/sql"
    assert loaded.lock_wait == 5.0
    assert loaded.schemas == ("sale", "public")
    assert loaded.require_run_mode is True


def test_other_variables_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Other applications' variables in a dotenv file, and MIGRATOR_* names that are no setting
    (in a file or the environment), are neither read nor an error."""
    write(
        tmp_path,
        {
            ".env": "REDIS_URL=redis://x\nSECRET_KEY=abc\nMIGRATOR_NO_SUCH=1\nMIGRATOR_SQL_DIR=db\n",
            ".env.local": "lowercase_thing=1\n",
        },
    )
    monkeypatch.setenv("MIGRATOR_ALSO_NO_SUCH", "2")
    loaded = settings.load()
    assert loaded.sql_dir == Path("db")
    assert not hasattr(loaded, "no_such")
    assert {name for name, *_ in settings.explain()} == set(settings.NAMES)


# Sources and their labels.


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATOR_SQL_DIR", "from_env")
    monkeypatch.setenv("MIGRATOR_SCHEMAS", "sale, public")
    loaded = settings.load(sql_dir="from_flag")
    assert str(loaded.sql_dir) == "from_flag"
    assert loaded.schemas == ("sale", "public")


def test_a_flag_of_none_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATOR_SQL_DIR", "from_env")
    assert settings.load(sql_dir=None, env=None).sql_dir == Path("from_env")
    assert explained(sql_dir=None)["sql_dir"] == ("from_env", "environment")


def test_pyproject_values_and_lists(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\n\n[tool.migrator]\n'
            'sql_dir = "db/sql"\nschemas = ["sale", " public "]\nlock_retries = 0\n'
            "require_run_mode = true\nlock_timeout = 500\n"
        },
    )
    loaded = settings.load()
    assert (loaded.sql_dir, loaded.schemas) == (Path("db/sql"), ("sale", "public"))
    assert (loaded.lock_retries, loaded.require_run_mode, loaded.lock_timeout) == (0, True, "500")
    assert explained()["schemas"] == ("sale,public", "pyproject.toml [tool.migrator]")


def test_the_model_itself_reads_the_same_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings(...), as the Python API may build it, and load() agree on every source."""
    monkeypatch.setenv("MIGRATOR_ENV", "staging")
    monkeypatch.setenv("MIGRATOR_DATABASE_URL", "")
    monkeypatch.setenv("DATABASE_URL", URL)
    write(
        tmp_path,
        {
            ".env.staging.local": "MIGRATOR_LOCK_WAIT=1\n",
            ".env.staging": "MIGRATOR_LOCK_RETRIES=2\n",
            ".env.local": "MIGRATOR_SEEDS_TABLE=s\n",
            ".env": "MIGRATOR_JOURNAL_TABLE=j\nMIGRATOR_NO_SUCH=1\nOTHER=1\n",
            "pyproject.toml": '[tool.migrator]\nschemas = ["sale"]\n',
        },
    )
    flags: dict[str, Any] = {"sql_dir": "flagged", "seeds_dir": None}
    built = settings.Settings(**flags)
    assert built == settings.load(**flags)
    assert (secret(built), built.sql_dir, built.lock_wait, built.lock_retries) == (
        URL,
        Path("flagged"),
        1.0,
        2,
    )
    assert (built.seeds_table, built.journal_table, built.schemas) == ("s", "j", ("sale",))


@pytest.mark.parametrize(
    ("files", "environ", "flags", "env", "source"),
    [
        pytest.param({}, {}, {}, "development", "default", id="default"),
        pytest.param({".env": "MIGRATOR_ENV=staging"}, {}, {}, "staging", ".env", id=".env"),
        pytest.param(
            {".env": "MIGRATOR_ENV=production", ".env.local": "MIGRATOR_ENV=staging"},
            {},
            {},
            "staging",
            ".env.local",
            id=".env.local over .env",
        ),
        pytest.param(
            {"pyproject.toml": '[tool.migrator]\nenv = "staging"\n'},
            {},
            {},
            "staging",
            "pyproject.toml [tool.migrator]",
            id="pyproject",
        ),
        pytest.param(
            {".env": "MIGRATOR_ENV=production"},
            {"MIGRATOR_ENV": "staging"},
            {},
            "staging",
            "environment",
            id="environment over files",
        ),
        pytest.param(
            {}, {"MIGRATOR_ENV": "production"}, {"env": "staging"}, "staging", "flag", id="flag"
        ),
    ],
)
def test_the_environment_name_picks_the_dotenv_files(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    environ: dict[str, str],
    flags: dict[str, str],
    env: str,
    source: str,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    write(
        tmp_path,
        {
            **{name: f"{text}\n" for name, text in files.items()},
            **{f".env.{name}": f"MIGRATOR_SEEDS_TABLE={name}\n" for name in settings.ENVIRONMENTS},
        },
    )
    loaded = settings.load(**flags)
    assert (loaded.env, loaded.seeds_table) == (env, env)
    rows = explained(**flags)
    assert rows["env"] == (env, source)
    assert rows["seeds_table"] == (env, f".env.{env}")


def test_an_unknown_environment_name_picks_no_files(tmp_path: Path) -> None:
    write(tmp_path, {".env": "MIGRATOR_ENV=../x\n", ".env.../x": "MIGRATOR_LOCK_WAIT=1\n"})
    with pytest.raises(ConfigError) as caught:
        settings.load()
    assert caught.value.message == (
        "invalid settings: env: must be one of development, staging, production (from .env)"
    )


# The database URL: its two variables, kept secret, and libpq's PG* variables.


@pytest.mark.parametrize(
    ("environ", "files", "flags", "expected", "source"),
    [
        pytest.param({"DATABASE_URL": URL}, {}, {}, URL, "environment", id="DATABASE_URL"),
        pytest.param(
            {"MIGRATOR_DATABASE_URL": URL, "DATABASE_URL": "postgresql://other/db"},
            {},
            {},
            URL,
            "environment",
            id="MIGRATOR_DATABASE_URL wins",
        ),
        pytest.param(
            {"MIGRATOR_DATABASE_URL": "", "DATABASE_URL": URL},
            {},
            {},
            URL,
            "environment",
            id="empty is unset",
        ),
        pytest.param({"DATABASE_URL": ""}, {}, {}, None, "default", id="empty only"),
        pytest.param(
            {"MIGRATOR_DATABASE_URL": ""},
            {".env": f"DATABASE_URL={URL}\n"},
            {},
            URL,
            ".env",
            id="empty falls through to .env",
        ),
        pytest.param(
            {},
            {".env": f"MIGRATOR_DATABASE_URL=\nDATABASE_URL='{URL}'\n"},
            {},
            URL,
            ".env",
            id="in .env",
        ),
        pytest.param(
            {"MIGRATOR_DATABASE_URL": "postgresql://e/db"},
            {},
            {"database_url": URL},
            URL,
            "flag",
            id="flag",
        ),
        pytest.param({"DATABASE_URL": URL}, {}, {"database_url": ""}, URL, "environment", id='""'),
        pytest.param(
            {},
            {"pyproject.toml": f'[tool.migrator]\ndatabase_url = "{URL}"\n'},
            {},
            URL,
            "pyproject.toml [tool.migrator]",
            id="pyproject",
        ),
    ],
)
def test_the_database_url(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    files: dict[str, str | bytes],
    flags: dict[str, str],
    expected: str | None,
    source: str,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    write(tmp_path, files)
    loaded = settings.load(**flags)
    assert secret(loaded) == expected
    shown = "postgresql://u:***@h/db" if expected == URL else ""
    assert explained(**flags)["database_url"] == (shown, source)


@pytest.mark.parametrize(
    ("environ", "conninfo"),
    [
        (
            {"MIGRATOR_DATABASE_URL": "postgresql://a/x", "DATABASE_URL": "postgresql://b/y"},
            "postgresql://a/x",
        ),
        ({"DATABASE_URL": "postgresql://b/y"}, "postgresql://b/y"),
        ({"PGHOST": "db"}, ""),
        ({}, None),
    ],
)
def test_connection_target_precedence(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], conninfo: str | None
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    found = settings.conninfo(settings.load(), environ)
    assert (found.text if found else None) == conninfo


def test_repr_and_str_never_show_the_url() -> None:
    loaded = settings.load(database_url=URL)
    assert secret(loaded) == URL
    for text in (repr(loaded), str(loaded), str(settings.explain(database_url=URL))):
        assert SECRET not in text
        assert "postgresql://" not in text or "***" in text


@pytest.mark.parametrize(
    ("environ", "shown", "source"),
    [
        pytest.param(
            {"PGHOST": "db", "PGPORT": "5433", "PGUSER": "app", "PGPASSWORD": SECRET},
            "host=db port=5433 user=app",
            "libpq PGHOST, PGPORT, PGUSER",
            id="host, port, user",
        ),
        pytest.param(
            {"PGSERVICE": "ci", "PGDATABASE": "app", "PGHOSTADDR": "10.0.0.1"},
            "hostaddr=10.0.0.1 dbname=app service=ci",
            "libpq PGHOSTADDR, PGDATABASE, PGSERVICE",
            id="service",
        ),
        pytest.param({"PGPASSWORD": SECRET}, "", "default", id="a password alone"),
        pytest.param(
            {"PGHOST": "db", "MIGRATOR_DATABASE_URL": URL},
            "postgresql://u:***@h/db",
            "environment",
            id="a URL wins",
        ),
    ],
)
def test_explain_shows_what_libpq_will_read(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], shown: str, source: str
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert explained()["database_url"] == (shown, source)


# Bad values: every one named with its source, none shown.


def test_bad_values_are_named_with_their_source_but_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MIGRATOR_LOCK_WAIT", "soon-secret")
    monkeypatch.setenv("MIGRATOR_ENV", "prod")
    with pytest.raises(ConfigError) as caught:
        settings.load()
    assert "lock_wait: is not valid (from environment)" in caught.value.message
    assert "env: must be one of development, staging, production" in caught.value.message
    assert "soon-secret" not in caught.value.message


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("env", "prod", "must be one of development, staging, production"),
        (
            "lock_timeout",
            "5 seconds",
            "must be a duration such as 10s, 500ms or 5min, at most 24 days",
        ),
        (
            "statement_timeout",
            "-1",
            "must be a duration such as 10s, 500ms or 5min, at most 24 days",
        ),
        ("lock_retries", "-1", "must be a whole number, 0 or more"),
        ("lock_retries", "many", "is not valid"),
        ("lock_wait", "-0.5", "must be 0 or more seconds"),
        ("wait_for_db", "-3", "must be 0 or more seconds"),
        ("wait_for_db", "soon", "is not valid"),
        ("require_run_mode", "maybe", "must be true or false"),
    ],
)
def test_each_bad_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    variable = f"MIGRATOR_{name.upper()}"
    for source in ("environment", ".env.local", "flag"):
        monkeypatch.delenv(variable, raising=False)
        (tmp_path / ".env.local").unlink(missing_ok=True)
        flags = {name: value} if source == "flag" else {}
        if source == "environment":
            monkeypatch.setenv(variable, value)
        elif source == ".env.local":
            write(tmp_path, {".env.local": f"{variable}={value}\n"})
        with pytest.raises(ConfigError) as caught:
            settings.load(**flags)
        assert caught.value.message == f"invalid settings: {name}: {problem} (from {source})"
        assert caught.value.hint == "Each setting NAME is read from MIGRATOR_NAME (see the README)."


def test_every_bad_setting_in_one_error_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGRATOR_DATABASE_URL", URL)
    write(
        tmp_path,
        {
            ".env": "MIGRATOR_LOCK_RETRIES=-2\n",
            "pyproject.toml": '[tool.migrator]\nlock_timeout = "soon"\nsql_dir = 5\n',
        },
    )
    with pytest.raises(ConfigError) as caught:
        settings.load()
    assert caught.value.message == (
        "invalid settings: sql_dir: is not valid (from pyproject.toml [tool.migrator]); "
        "lock_timeout: must be a duration such as 10s, 500ms or 5min, at most 24 days "
        "(from pyproject.toml [tool.migrator]); "
        "lock_retries: must be a whole number, 0 or more (from .env)"
    )
    assert SECRET not in caught.value.message and SECRET not in str(caught.value.__cause__)
    shown = cli("config")
    assert shown.exit_code == 2 and SECRET not in shown.output


def test_an_unknown_pyproject_setting_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.migrator]\nsql_dirs = "db"\n')
    with pytest.raises(ConfigError) as caught:
        settings.load()
    assert "unknown setting sql_dirs" in caught.value.message
    assert "pyproject.toml [tool.migrator]" in caught.value.message
    assert caught.value.hint == f"Settings: {', '.join(settings.NAMES)}."
    assert "sql_dir," in caught.value.hint


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"pyproject.toml": "[tool.migrator\n"}, "pyproject.toml: cannot read it"),
        ({".env": b"MIGRATOR_SQL_DIR=\xff\n"}, ".env: cannot read it (not UTF-8"),
    ],
)
def test_an_unreadable_file_is_a_config_error(
    tmp_path: Path, files: dict[str, str | bytes], problem: str
) -> None:
    write(tmp_path, files)
    with pytest.raises(ConfigError) as caught:
        settings.load()
    assert caught.value.message.startswith(problem)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("MIGRATOR_STATEMENT_TIMEOUT", "30d", "statement_timeout: must be a duration"),
        ("MIGRATOR_LOCK_TIMEOUT", "2147483648", "lock_timeout: must be a duration"),
        ("MIGRATOR_JOURNAL_TABLE", "", "journal_table: must be a table name of 1 to 52 bytes"),
        ("MIGRATOR_JOURNAL_TABLE", "j" * 53, "journal_table: must be a table name of 1 to 52"),
        ("MIGRATOR_SEEDS_TABLE", "s" * 64, "seeds_table: must be a table name of 1 to 63 bytes"),
        ("MIGRATOR_LOCK_WAIT", "nan", "lock_wait: must be 0 or more seconds"),
        ("MIGRATOR_WAIT_FOR_DB", "inf", "wait_for_db: must be 0 or more seconds"),
    ],
)
def test_values_postgresql_or_the_runner_cannot_hold_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        settings.load()
    assert problem in caught.value.message and "(from environment)" in caught.value.message
    monkeypatch.delenv(variable)
    assert settings.load(lock_timeout="24d").lock_timeout == "24d"  # the largest that fits
