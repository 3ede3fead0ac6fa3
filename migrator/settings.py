"""Settings from flags, MIGRATOR_* variables and defaults, and the connection target."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    PyprojectTomlConfigSettingsSource,
    SettingsConfigDict,
)

from migrator.errors import ConfigError

Environment = Literal["development", "staging", "production"]
_DURATION = r"^[0-9]+(\.[0-9]+)?\s*(us|ms|s|min|h|d)?$"
# libpq reads these when no URL is given; any of them counts as "a connection is configured".
LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


class Settings(BaseSettings):
    """Every setting; each is read from MIGRATOR_<NAME> unless given as a flag."""

    model_config = SettingsConfigDict(
        env_prefix="MIGRATOR_",
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        pyproject_toml_table_header=("tool", "migrator"),
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MIGRATOR_DATABASE_URL", "DATABASE_URL"),
        repr=False,
    )
    env: Environment = "development"
    sql_dir: Path = Path("sql")
    seeds_dir: Path = Path("seeds")
    schemas: Annotated[tuple[str, ...], NoDecode] = ()
    journal_table: str = "__migrations"
    seeds_table: str = "__seeds"
    lock_timeout: str = Field(default="10s", pattern=_DURATION)
    statement_timeout: str = Field(default="0", pattern=_DURATION)
    lock_retries: int = Field(default=3, ge=0)
    lock_wait: float = Field(default=60.0, ge=0)
    embedded_dir: Path = Path(".migrator")
    require_run_mode: bool = False
    wait_for_db: float = Field(default=0.0, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags, then the environment, then dotenv files, then [tool.migrator], then defaults."""
        return init_settings, env_settings, dotenv_settings, PyprojectTomlConfigSettingsSource(cls)

    @field_validator("schemas", mode="before")
    @classmethod
    def _split_schemas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value


def dotenv_files(env: str) -> tuple[str, ...]:
    """dotenv-flow's files for an environment, least specific first (later files win)."""
    return (".env", ".env.local", f".env.{env}", f".env.{env}.local")


def load(**overrides: Any) -> Settings:
    """Settings with the given flags on top; ConfigError names each bad setting, never values."""
    given = {name: value for name, value in overrides.items() if value is not None}
    # The environment's name picks the dotenv files, so find it first from the general ones.
    env = _build(given, dotenv_files("")[:2]).env
    return _build(given, dotenv_files(env))


def _build(given: dict[str, Any], files: tuple[str, ...]) -> Settings:
    try:
        return Settings(_env_file=files, **given)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError(
            "invalid settings: " + "; ".join(problems),
            hint="Each setting NAME is read from MIGRATOR_NAME (see the README).",
        ) from None


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: a conninfo string ("" lets libpq read PG* variables)."""

    conninfo: str
    source: str  # which setting named it, for messages


def target(settings: Settings, environ: dict[str, str] | None = None) -> Target | None:
    """The configured connection, or None when nothing names one."""
    environ = dict(os.environ) if environ is None else environ
    if settings.database_url:
        return Target(settings.database_url, "database_url")
    named = [name for name in LIBPQ_VARIABLES if environ.get(name)]
    if named:
        return Target("", ", ".join(named))
    return None


def explain(**overrides: Any) -> list[tuple[str, str, str]]:
    """(setting, value, where it came from) for every setting; the password masked."""
    from migrator.db import mask

    settings = load(**overrides)
    layers: list[tuple[str, dict[str, Any]]] = [
        ("flag", {name: value for name, value in overrides.items() if value is not None}),
        ("environment", EnvSettingsSource(Settings)()),
    ]
    for file in reversed(dotenv_files(settings.env)):
        layers.append((file, DotEnvSettingsSource(Settings, env_file=file)()))
    layers.append(("pyproject.toml [tool.migrator]", PyprojectTomlConfigSettingsSource(Settings)()))
    rows = []
    for name, field in Settings.model_fields.items():
        keys = {name}
        if isinstance(field.validation_alias, AliasChoices):
            keys.update(str(choice) for choice in field.validation_alias.choices)
        source = next(
            (label for label, values in layers if keys & {key for key in values}), "default"
        )
        value = getattr(settings, name)
        if name == "database_url" and value:
            shown = mask(value)
        elif isinstance(value, tuple):
            shown = ",".join(value)
        else:
            shown = "" if value is None else str(value)
        rows.append((name, shown, source))
    return rows
