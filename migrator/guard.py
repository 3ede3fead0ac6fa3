"""PURE. Who may write: production confirmation, the RUN_MODE guard, development-only commands."""

from __future__ import annotations

import enum

from migrator.errors import Refused


class Decision(enum.Enum):
    """What to do before a change: go ahead, or ask the operator to type the database name."""

    PROCEED = "proceed"
    ASK = "ask"


def check_run_mode(required: bool, run_mode: str | None) -> None:
    """Refused unless RUN_MODE=migrate, when MIGRATOR_REQUIRE_RUN_MODE is on."""
    if required and run_mode != "migrate":
        raise Refused(
            "MIGRATOR_REQUIRE_RUN_MODE is on and RUN_MODE is not 'migrate': commands that write "
            "refuse to run",
            hint="Run it with RUN_MODE=migrate.",
        )


def check_development(env: str, command: str) -> None:
    """Refused outside development."""
    if env != "development":
        raise Refused(
            f"{command} is only allowed in development; this is {env}",
            hint="It drops schemas. Set MIGRATOR_ENV=development on a database you can lose.",
        )


class Confirmed(str):
    """A confirmation given once for many targets (a fleet's), standing for each one's."""

    __slots__ = ()


def confirmation(
    env: str,
    dbname: str,
    confirm: str | None,
    confirm_env: str | None,
    interactive: bool,
    *,
    command: str = "",
) -> Decision:
    """Whether a change may go ahead: in production, or always for `command` (reset), only
    once the database's name is given or typed; Refused when nobody can confirm it."""
    if (env != "production" and not command) or isinstance(confirm, Confirmed):
        return Decision.PROCEED
    given = confirm if confirm is not None else confirm_env
    if given is not None:
        check_answer(given, dbname)
        return Decision.PROCEED
    if interactive:
        return Decision.ASK
    raise Refused(
        f"{command or 'production'}: nothing was changed, because nobody confirmed the target "
        f"'{dbname}'",
        hint=f"Pass --confirm {dbname}"
        + ("" if command else f" or set CONFIRM_PROD={dbname}")
        + " (there is no terminal to ask on).",
    )


def check_answer(answer: str, dbname: str) -> None:
    """Refused unless the answer names the target database."""
    if answer.strip() != dbname:
        raise Refused(
            f"production: '{answer.strip()}' is not the target database '{dbname}'; "
            "nothing was changed"
        )
