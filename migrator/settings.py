"""One pydantic-settings model: flags, then MIGRATOR_* variables, dotenv-flow files, pyproject."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    PyprojectTomlConfigSettingsSource,
    SettingsConfigDict,
)

from migrator.errors import ConfigError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

Environment = Literal["development", "staging", "production"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
PREFIX = "MIGRATOR_"
PYPROJECT = "pyproject.toml [tool.migrator]"
URL_VARIABLES = ("MIGRATOR_DATABASE_URL", "DATABASE_URL")
# libpq reads these when no URL is given (any of them counts as "a connection is configured"),
# each as a conninfo keyword: what explain shows for them.
_KEYWORDS = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGDATABASE": "dbname",
    "PGUSER": "user",
    "PGSERVICE": "service",
}
LIBPQ_VARIABLES = tuple(_KEYWORDS)
# How each setting with a rule must look; error messages never repeat the value itself.
_MUST = {
    "env": f"must be one of {', '.join(ENVIRONMENTS)}",
    "lock_timeout": "must be a duration such as 10s, 500ms or 5min, at most 24 days",
    "statement_timeout": "must be a duration such as 10s, 500ms or 5min, at most 24 days",
    "journal_table": "must be a table name of 1 to 52 bytes (its _repeatable and _history "
    "tables add up to 11)",
    "seeds_table": "must be a table name of 1 to 63 bytes",
    "lock_retries": "must be a whole number, 0 or more",
    "lock_wait": "must be 0 or more seconds",
    "wait_for_db": "must be 0 or more seconds",
    "require_run_mode": "must be true or false",
    "require_down": "must be true or false",
}
# pydantic's error types for text that is not a number at all: that is "not valid", not a rule.
_NOT_A_NUMBER = {"int_parsing", "float_parsing"}


class Settings(BaseSettings):
    """Every setting; each NAME is read from MIGRATOR_NAME unless given as a flag."""

    model_config = SettingsConfigDict(
        frozen=True,
        env_prefix=PREFIX,
        extra="forbid",  # an unknown key in [tool.migrator] is an error, not silently unused
        validate_by_name=True,  # database_url= as a keyword, besides its two variables
        dotenv_filtering="only_existing",  # an unknown MIGRATOR_* in .env is ignored, as in env
        pyproject_toml_table_header=("tool", "migrator"),
    )

    database_url: SecretStr | None = Field(None, validation_alias=AliasChoices(*URL_VARIABLES))
    env: Environment = "development"
    sql_dir: Path = Path("sql")
    seeds_dir: Path = Path("seeds")
    # "sale, public" in a variable (not JSON), a list in pyproject.toml.
    schemas: Annotated[tuple[str, ...], NoDecode] = ()
    journal_table: str = Field("__migrations", min_length=1)
    seeds_table: str = Field("__seeds", min_length=1)
    lock_timeout: str = "10s"
    statement_timeout: str = "0"
    lock_retries: int = Field(3, ge=0)
    lock_wait: float = Field(60.0, ge=0, allow_inf_nan=False)
    embedded_dir: Path = Path(".migrator")
    require_run_mode: bool = False
    require_down: bool = False  # migrate refuses pending files that have no .down.sql
    wait_for_db: float = Field(0.0, ge=0, allow_inf_nan=False)
    # The folder under sql_dir applied to each tenant schema of a fleet (not a schema itself).
    tenant_template: str | None = None
    # [tool.migrator.databases.<name>]: url_env (or url) and any other setting, for --db NAME.
    databases: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # [tool.migrator.lint]: rule = "off" | "warning" | "error".
    lint: dict[str, str] = Field(default_factory=dict)
    lint_on_migrate: bool = False  # migrate lints the pending files first, refusing on an error
    dump_after_migrate: bool = False  # in development, write sql/schema.sql after a migrate

    def __init__(self, **values: Any) -> None:
        """Settings from `values` on top of the other sources; ConfigError names each bad one."""
        try:
            super().__init__(**values)
        except ValidationError as error:
            if "_build_sources" in values:  # from load(), which names the sources itself
                raise
            raise _invalid(error, _origins(_layers(Settings, values))) from None

    @field_validator("schemas", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return value.split(",") if isinstance(value, str) else value

    @field_validator("schemas")
    @classmethod
    def _without_blanks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.strip() for name in value if name.strip())

    @field_validator("lock_timeout", "statement_timeout", mode="before")
    @classmethod
    def _duration(cls, value: object, info: ValidationInfo) -> str:
        from migrator.sqlfile import timeout_ms

        text = str(value).strip()  # str(): a TOML number of milliseconds is a duration too
        if timeout_ms(text) is None:
            raise ValueError(_MUST[str(info.field_name)])
        return text

    @field_validator("journal_table", "seeds_table")
    @classmethod
    def _table_name(cls, value: str, info: ValidationInfo) -> str:
        # PostgreSQL would cut a longer name; the journal's sibling tables add a suffix to it.
        longest = 52 if info.field_name == "journal_table" else 63
        if not 0 < len(value.encode("utf-8")) <= longest:
            raise ValueError(_MUST[str(info.field_name)])
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Our own sources replace the given ones: each dotenv file is a source of its own (so
        # `migrator config` can name it) and an empty database URL counts as unset.
        flags = init_settings.init_kwargs if isinstance(init_settings, InitSettingsSource) else {}
        return tuple(source for _, source in _layers(settings_cls, flags))


NAMES = tuple(Settings.model_fields)
# Sources key the URL by its variable's name; every other key is the setting's own name.
_SETTING_OF = dict.fromkeys(URL_VARIABLES, "database_url")
_V = TypeVar("_V")


def _set(values: Mapping[str, _V | None]) -> dict[str, _V]:
    """The values that are set: None never is (a flag not given), nor an empty database URL
    (CI often passes MIGRATOR_DATABASE_URL empty when DATABASE_URL is the one meant)."""
    return {
        key: value
        for key, value in values.items()
        if value is not None and (value != "" or key.upper() not in URL_VARIABLES)
    }


def _ours(variables: Mapping[str, str | None]) -> dict[str, str]:
    """The MIGRATOR_* variables and DATABASE_URL that are set: nothing else is ever read."""
    return {
        name: value
        for name, value in _set(variables).items()
        if name.upper().startswith(PREFIX) or name.upper() in URL_VARIABLES
    }


class _Environment(EnvSettingsSource):
    """The process's environment, of which only our variables are kept."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return _ours(super()._load_env_vars())

    def __call__(self) -> dict[str, Any]:
        return super().__call__() if self.env_vars else {}  # no per-setting look-ups for nothing


class _DotenvFile(DotEnvSettingsSource):
    """One dotenv-flow file in the working folder, read by python-dotenv ({} when absent)."""

    def __init__(self, settings_cls: type[BaseSettings], file: str) -> None:
        super().__init__(settings_cls, env_file=file, env_file_encoding="utf-8")

    def _read_env_file(self, file_path: Path) -> Mapping[str, str | None]:
        try:
            return _ours(super()._read_env_file(file_path))
        except OSError as exc:
            raise ConfigError(f"{file_path}: cannot read it ({exc.strerror or exc})") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{file_path}: cannot read it (not UTF-8: {exc.reason})") from None

    def __call__(self) -> dict[str, Any]:
        return super().__call__() if self.env_vars else {}  # most of the files are absent


class _Pyproject(PyprojectTomlConfigSettingsSource):
    """The [tool.migrator] table of ./pyproject.toml ({} when there is none)."""

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        try:
            return super()._read_file(file_path)
        except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise ConfigError(f"pyproject.toml: cannot read it ({exc})") from None

    def __call__(self) -> dict[str, Any]:
        return _set(super().__call__())


def _layers(
    settings_cls: type[BaseSettings], flags: Mapping[str, Any]
) -> list[tuple[str, PydanticBaseSettingsSource]]:
    """Every source with its label, most important first; the environment's name, from the
    first source that gives one, picks the dotenv-flow files."""
    init = InitSettingsSource(settings_cls, _set(flags))
    environment = _Environment(settings_cls)
    general = [(file, _DotenvFile(settings_cls, file)) for file in (".env.local", ".env")]
    pyproject = _Pyproject(settings_cls)
    variable = f"{PREFIX}env".lower()  # as pydantic-settings keys variables (case_sensitive=False)
    named = (
        init.init_kwargs.get("env"),
        environment.env_vars.get(variable),
        *(source.env_vars.get(variable) for _, source in general),
        pyproject.init_kwargs.get("env"),
    )
    env = str(next((name for name in named if name is not None), "development"))
    # An unknown name is reported by validation; it must not pick files meanwhile.
    specific = [f".env.{env}.local", f".env.{env}"] if env in ENVIRONMENTS else []
    return [
        ("flag", init),
        ("environment", environment),
        *((file, _DotenvFile(settings_cls, file)) for file in specific),
        *general,
        (PYPROJECT, pyproject),
    ]


def _origins(layers: list[tuple[str, PydanticBaseSettingsSource]]) -> dict[str, str]:
    """The label of the source each setting (or unknown key) came from: the first that has it."""
    origins: dict[str, str] = {}
    for label, source in layers:
        for key in source():
            origins.setdefault(_SETTING_OF.get(key, key), label)
    return origins


def _build(layers: list[tuple[str, PydanticBaseSettingsSource]], flags: dict[str, Any]) -> Settings:
    """The settings from sources already read (explain also asks them for their labels)."""
    sources = tuple(source for _, source in layers)
    try:
        # BaseSettings' own parameter: the sources as read, not read again.
        return Settings(_build_sources=(sources, flags))
    except ValidationError as error:
        raise _invalid(error, _origins(layers)) from None


def _invalid(error: ValidationError, origins: dict[str, str]) -> ConfigError:
    """One error naming every bad setting and its source, never its value."""
    unknown: dict[str, list[str]] = {}
    problems: dict[str, str] = {}
    for detail in error.errors(include_url=False, include_input=False):
        key = str(detail["loc"][0]) if detail["loc"] else ""
        name = _SETTING_OF.get(key, key)
        source = origins.get(name, "default")
        if detail["type"] == "extra_forbidden":
            unknown.setdefault(source, []).append(name)
        elif name not in problems:
            rule = detail["type"] not in _NOT_A_NUMBER and name in _MUST
            problems[name] = f"{name}: {_MUST[name] if rule else 'is not valid'} (from {source})"
    if unknown:
        return ConfigError(
            "; ".join(
                f"unknown setting {', '.join(keys)} (from {source})"
                for source, keys in unknown.items()
            ),
            hint=f"Settings: {', '.join(NAMES)}.",
        )
    return ConfigError(
        "invalid settings: " + "; ".join(problems.values()),
        hint="Each setting NAME is read from MIGRATOR_NAME (see the README).",
    )


def load(**flags: Any) -> Settings:
    """Settings with the given flags on top (None: not given); `database` names one of the
    [tool.migrator.databases] tables, whose settings then come before all but the flags.
    ConfigError names each bad setting and its source, never the value."""
    database = flags.pop("database", None)
    if database is None:
        return _build(_layers(Settings, flags), flags)
    merged = _database_flags(database, flags)
    try:
        return _build(_layers(Settings, merged), merged)
    except ConfigError as error:
        error.message = error.message.replace("(from flag)", f"(from {_table(database)})")
        raise


def _table(name: str) -> str:
    return f"pyproject.toml [tool.migrator.databases.{name}]"


def _database_flags(name: str, flags: dict[str, Any]) -> dict[str, Any]:
    """The flags for database `name`: its table's settings, its URL (from the variable
    url_env names, or url), then the flags given; ConfigError for what is wrong."""
    databases = _build(_layers(Settings, flags), flags).databases
    if name not in databases:
        raise ConfigError(
            f"--db {name}: no such database in pyproject.toml [tool.migrator.databases]",
            hint=f"Databases: {', '.join(databases) or 'none'}.",
        )
    if flags.get("database_url") is not None:
        raise ConfigError("--db and --database-url go alone: the database's table names its URL")
    values = dict(databases[name])
    url_env, url = values.pop("url_env", None), values.pop("url", None)
    unknown = [key for key in values if key not in NAMES or key in ("databases", "database_url")]
    if unknown:
        raise ConfigError(
            f"unknown setting {', '.join(unknown)} (from {_table(name)})",
            hint="A database's table takes url_env or url, and any setting but databases.",
        )
    if url_env is not None:
        url = os.environ.get(str(url_env)) or None
        if url is None:
            raise ConfigError(
                f"database {name}: {url_env} is not set (its url_env in {_table(name)})",
                hint=f"Set {url_env} to the database's URL.",
            )
    if url is None:
        raise ConfigError(
            f"database {name}: {_table(name)} names no URL",
            hint="Give it url_env = 'VARIABLE' (the variable that holds the URL), or url.",
        )
    return {**values, "database_url": str(url), **_set(flags)}


def database_names(**flags: Any) -> list[str]:
    """The names of the [tool.migrator.databases] tables, in the order written."""
    flags.pop("database", None)
    return list(_build(_layers(Settings, flags), flags).databases)


def explain(**flags: Any) -> list[tuple[str, str, str]]:
    """(setting, value, where it came from) for every setting; the password masked."""
    from migrator.db import mask  # psycopg: only `migrator config` needs it here

    database = flags.pop("database", None)
    if database is not None:
        flags = _database_flags(database, flags)
    layers = _layers(Settings, flags)
    settings = _build(layers, flags)
    origins = _origins(layers)
    rows = []
    for name in NAMES:
        value, source = getattr(settings, name), origins.get(name, "default")
        if isinstance(value, SecretStr):
            shown = mask(value.get_secret_value())
        elif name == "database_url" and (libpq := _libpq(os.environ)):
            shown = " ".join(f"{_KEYWORDS[variable]}={text}" for variable, text in libpq.items())
            source = f"libpq {', '.join(libpq)}"
        elif isinstance(value, tuple):
            shown = ",".join(value)
        elif name == "databases":
            shown = ",".join(value)  # the names only: a table may hold a URL
        elif name == "lint":
            shown = ",".join(f"{rule}={severity}" for rule, severity in value.items())
        else:
            shown = "" if value is None else str(value)
        rows.append((name, shown, source))
    return rows


@dataclass(frozen=True, slots=True)
class Conninfo:
    """Where to connect: a conninfo string ("" lets libpq read PG* variables)."""

    text: str
    source: str  # which setting named it, for messages


def conninfo(settings: Settings, environ: Mapping[str, str] | None = None) -> Conninfo | None:
    """The configured connection, or None when nothing names one."""
    if settings.database_url is not None and (url := settings.database_url.get_secret_value()):
        return Conninfo(url, "database_url")
    named = _libpq(os.environ if environ is None else environ)
    return Conninfo("", ", ".join(named)) if named else None


def _libpq(environ: Mapping[str, str]) -> dict[str, str]:
    """The PG* variables that are set, in LIBPQ_VARIABLES order (never PGPASSWORD)."""
    return {name: environ[name] for name in LIBPQ_VARIABLES if environ.get(name)}
