"""Settings from flags, MIGRATOR_* variables, dotenv-flow files, [tool.migrator] and defaults.

A small stdlib loader rather than pydantic-settings: importing pydantic costs about 64 ms,
which is most of what an up-to-date `migrate` may spend beyond connecting (see
docs/performance.md). The sources and their order are the same.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from migrator.errors import ConfigError

ENVIRONMENTS = ("development", "staging", "production")
PREFIX = "MIGRATOR_"
_DURATION = re.compile(r"[0-9]+(\.[0-9]+)?\s*(us|ms|s|min|h|d)?")
# libpq reads these when no URL is given; any of them counts as "a connection is configured".
LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting; each is read from MIGRATOR_<NAME> unless given as a flag."""

    database_url: str | None = None
    env: str = "development"
    sql_dir: Path = Path("sql")
    seeds_dir: Path = Path("seeds")
    schemas: tuple[str, ...] = ()
    journal_table: str = "__migrations"
    seeds_table: str = "__seeds"
    lock_timeout: str = "10s"
    statement_timeout: str = "0"
    lock_retries: int = 3
    lock_wait: float = 60.0
    embedded_dir: Path = Path(".migrator")
    require_run_mode: bool = False
    wait_for_db: float = 0.0

    def __repr__(self) -> str:
        return "Settings(...)"  # never the database URL, which may hold a password


NAMES = tuple(field.name for field in fields(Settings))
# The variables each setting is read from, first found wins.
_VARIABLES: dict[str, tuple[str, ...]] = {name: (PREFIX + name.upper(),) for name in NAMES}
_VARIABLES["database_url"] = ("MIGRATOR_DATABASE_URL", "DATABASE_URL")


def _convert(name: str, value: Any) -> Any:
    """A raw value (text from a variable or file, or a TOML value) as the setting's type."""
    if name == "database_url":
        return str(value) if value not in (None, "") else None
    if name in ("sql_dir", "seeds_dir", "embedded_dir"):
        return Path(str(value))
    if name == "schemas":
        names = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(item).strip() for item in names if str(item).strip())
    if name == "env":
        if str(value) not in ENVIRONMENTS:
            raise ValueError(f"must be one of {', '.join(ENVIRONMENTS)}")
        return str(value)
    if name in ("lock_timeout", "statement_timeout"):
        if not _DURATION.fullmatch(str(value).strip()):
            raise ValueError("must be a duration such as 10s, 500ms or 5min")
        return str(value).strip()
    if name == "lock_retries":
        number = int(str(value).strip()) if not isinstance(value, bool) else None
        if number is None or number < 0:
            raise ValueError("must be a whole number, 0 or more")
        return number
    if name in ("lock_wait", "wait_for_db"):
        seconds = float(str(value).strip())
        if seconds < 0:
            raise ValueError("must be 0 or more seconds")
        return seconds
    if name == "require_run_mode":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() not in _TRUE | _FALSE:
            raise ValueError("must be true or false")
        return str(value).strip().lower() in _TRUE
    return str(value)


def dotenv_files(env: str) -> tuple[str, ...]:
    """dotenv-flow's files for an environment, least specific first (later files win)."""
    return (".env", ".env.local", f".env.{env}", f".env.{env}.local")


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file ({} when absent): comments, export and quotes allowed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def read_pyproject(path: Path = Path("pyproject.toml")) -> dict[str, Any]:
    """The [tool.migrator] table ({} when there is none); ConfigError for unknown keys."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    import tomllib  # only when there is a pyproject.toml: start-up time counts

    try:
        with handle:
            table = tomllib.load(handle).get("tool", {}).get("migrator", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    unknown = [key for key in table if key not in NAMES]
    if unknown:
        raise ConfigError(
            f"{path} [tool.migrator]: unknown setting {', '.join(sorted(unknown))}",
            hint=f"Settings: {', '.join(NAMES)}.",
        )
    return dict(table)


@dataclass(frozen=True, slots=True)
class _Layer:
    label: str
    values: dict[str, Any]  # setting name -> raw value


def _variables(label: str, source: dict[str, str]) -> _Layer:
    found = {}
    for name, variables in _VARIABLES.items():
        for variable in variables:
            if variable in source:
                found[name] = source[variable]
                break
    return _Layer(label, found)


def _layers(flags: dict[str, Any], environ: dict[str, str]) -> list[_Layer]:
    """Every source, most important first; the environment's name picks the dotenv files."""
    top = [_Layer("flag", flags), _variables("environment", environ)]
    general = [_dotenv(file) for file in reversed(dotenv_files("")[:2])]
    pyproject = _Layer("pyproject.toml [tool.migrator]", read_pyproject())
    named = (layer.values["env"] for layer in [*top, *general, pyproject] if "env" in layer.values)
    env = str(next(named, "development"))
    return [*top, *(_dotenv(file) for file in reversed(dotenv_files(env))), pyproject]


def _dotenv(file: str) -> _Layer:
    return _variables(file, read_dotenv(Path(file)))


def _resolve(flags: dict[str, Any]) -> tuple[Settings, dict[str, str]]:
    given = {name: value for name, value in flags.items() if value is not None}
    unknown = [name for name in given if name not in NAMES]
    if unknown:
        raise ConfigError(f"unknown setting {', '.join(unknown)}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems = []
    for layer in _layers(given, dict(os.environ)):
        for name, raw in layer.values.items():
            if name in values:
                continue
            try:
                values[name] = _convert(name, raw)
            except (TypeError, ValueError) as exc:
                message = str(exc) if "must" in str(exc) else "is not valid"
                problems.append(f"{name}: {message} (from {layer.label})")
                continue
            sources[name] = layer.label
    if problems:
        raise ConfigError(
            "invalid settings: " + "; ".join(problems),
            hint="Each setting NAME is read from MIGRATOR_NAME (see the README).",
        )
    return Settings(**values), sources


def load(**flags: Any) -> Settings:
    """Settings with the given flags on top; ConfigError names each bad setting, never values."""
    return _resolve(flags)[0]


def explain(**flags: Any) -> list[tuple[str, str, str]]:
    """(setting, value, where it came from) for every setting; the password masked."""
    from migrator.db import mask

    settings, sources = _resolve(flags)
    rows = []
    for name in NAMES:
        value = getattr(settings, name)
        if name == "database_url" and value:
            shown = mask(value)
        elif isinstance(value, tuple):
            shown = ",".join(value)
        else:
            shown = "" if value is None else str(value)
        rows.append((name, shown, sources.get(name, "default")))
    return rows


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
