"""Fleets: one command over many targets (databases, or tenant schemas of one database), in
bounded parallel, each target with its own connection and advisory lock."""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migrator.errors import (
    ConfigError,
    FleetFailed,
    FleetInterrupted,
    FleetTerminated,
    LockNotAcquired,
    MigrationFailed,
    MigratorError,
    Refused,
)
from migrator.model import (
    Chunk,
    FileOutcome,
    FleetResult,
    LockHolder,
    Reporter,
    SeedOutcome,
    ServerMessage,
    SilentReporter,
    Step,
    TargetOutcome,
)

if TYPE_CHECKING:
    from migrator.settings import Settings

COMMANDS = ("migrate", "status", "validate", "seed")
_NAMED = re.compile(r"([A-Za-z0-9_.-]+)=(.+)", re.DOTALL)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Target:
    """One member of a fleet: a database (`conninfo`), or a tenant schema of the configured
    database (`schema`, `conninfo` empty)."""

    name: str
    conninfo: str = ""
    schema: str = ""


def parse_targets(text: str, environ: Mapping[str, str], path: str) -> list[Target]:
    """PURE. The targets of a targets file: one per line, a URL or name=URL, `#` comments,
    ${VAR} taken from `environ`; ConfigError naming the line for what is wrong."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    from migrator.db import mask

    targets: list[Target] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = _uncommented(line).strip()
        if not entry:
            continue
        missing = [name for name in _VARIABLE.findall(entry) if name not in environ]
        if missing:
            raise ConfigError(
                f"{path}:{number}: ${{{missing[0]}}} is not set in the environment",
                hint="Set it, or write the value in the file.",
            )
        entry = _VARIABLE.sub(lambda found: environ[found[1]], entry)
        named = _NAMED.fullmatch(entry)
        if named and named[1] not in _libpq_keywords():  # NAME=URL, not host=... dbname=...
            name, conninfo = named[1], named[2].strip()
        else:
            name, conninfo = mask(entry), entry
        try:
            conninfo_to_dict(conninfo)
        except Error:
            raise ConfigError(
                f"{path}:{number}: not a connection string ({mask(conninfo)})",
                hint="Write a URL (postgresql://user@host/db), NAME=URL, or libpq's "
                "key=value form, one per line.",
            ) from None
        targets.append(Target(name, conninfo))
    return _checked(targets, path)


def _uncommented(line: str) -> str:
    """The line without its `#` comment: a `#` at its start or after a space, outside quotes
    (libpq's key='value' form may hold one)."""
    quoted = False
    for at, character in enumerate(line):
        if character == "'" and (at == 0 or line[at - 1] != "\\"):
            quoted = not quoted
        elif character == "#" and not quoted and (at == 0 or line[at - 1].isspace()):
            return line[:at]
    return line


@functools.cache
def _libpq_keywords() -> frozenset[str]:
    from psycopg.pq import Conninfo

    return frozenset(option.keyword.decode() for option in Conninfo.get_defaults())


def database_targets(rows: Sequence[str], base: str) -> list[Target]:
    """PURE. Targets from a query's rows: a URL (or key=value conninfo) as it is, or a
    database name on the server of `base`, the configured connection."""
    from psycopg.conninfo import make_conninfo

    from migrator.db import mask

    targets = []
    for row in rows:
        value = str(row).strip()
        if "://" in value or "=" in value:
            targets.append(Target(mask(value), value))
        else:
            targets.append(Target(value, make_conninfo(base, dbname=value)))
    return _checked(targets, "--targets-query")


def schema_targets(rows: Sequence[str | None]) -> list[Target]:
    """PURE. Tenant schemas from a query's rows, each a target of the configured database."""
    from migrator.discovery import schema_problem

    targets = []
    for number, row in enumerate(rows, start=1):
        name = "" if row is None else str(row)
        problem = schema_problem(name)
        if not name or name != name.strip():
            problem = "an empty name, or one with spaces around it"
        elif name.lower() in ("information_schema", "public"):
            problem = "not a tenant's schema"
        if problem:
            raise ConfigError(f"--tenant-schemas: row {number}, schema {name!r}: {problem}")
        targets.append(Target(name, "", name))
    return _checked(targets, "--tenant-schemas")


def _checked(targets: list[Target], where: str) -> list[Target]:
    if not targets:
        raise ConfigError(f"{where}: no targets", hint="List at least one database.")
    seen: set[str] = set()
    for target in targets:
        if target.name in seen:
            raise ConfigError(f"{where}: target {target.name} is listed twice")
        seen.add(target.name)
    return targets


def parse_shard(text: str) -> tuple[int, int]:
    """PURE. "I/N" as (I, N), 1 <= I <= N; ConfigError otherwise."""
    found = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text)
    if not found or not 1 <= int(found[1]) <= int(found[2]):
        raise ConfigError(
            f"--shard {text!r} is not I/N with 1 <= I <= N",
            hint="For example --shard 2/4: the second of four shares.",
        )
    return int(found[1]), int(found[2])


def shard(targets: Sequence[Target], index: int, count: int) -> list[Target]:
    """PURE. Share `index` of `count`: each target by a hash of its name, so that every share
    is the same whatever the order of the list, and a target added moves no other."""
    return [
        target
        for target in targets
        if int(hashlib.sha256(target.name.encode()).hexdigest()[:12], 16) % count == index - 1
    ]


@dataclass(frozen=True, slots=True)
class Options:
    """How a fleet runs."""

    parallel: int = 4
    canary: int = 0
    keep_going: bool = False


class Stopped(Exception):
    """Raised in a target's run at its next chunk once the fleet stops (Ctrl-C)."""


class _Listener(SilentReporter):
    """A target's reporter: counts the files (or seed processes) it applied, relays its
    warnings, asks nobody (the fleet was confirmed once), and stops the target at its next
    chunk once the fleet stops."""

    def __init__(
        self, target: Target, fleet: Reporter, stop: threading.Event, lock: threading.Lock
    ) -> None:
        self.target = target
        self.fleet = fleet
        self.stop = stop
        self.lock = lock
        self.applied = 0

    def server_message(self, message: ServerMessage) -> None:
        """WARNINGs reach the fleet's output, named by target."""
        if message.severity == "WARNING":
            with self.lock:
                self.fleet.notice(f"{self.target.name}: WARNING: {message.message}")

    def lock_waiting(self, holder: LockHolder | None) -> None:
        """Another runner has this target: said once."""
        with self.lock:
            self.fleet.info(f"{self.target.name}: waiting for its migration lock")

    def chunks_started(self, step: Step, first: Chunk, last: Chunk) -> None:
        """Where a stopping fleet stops a target: between chunks."""
        if self.stop.is_set():
            raise Stopped()

    def seed_started(self, name: str) -> None:
        """Where a stopping fleet stops a seed run: between processes."""
        if self.stop.is_set():
            raise Stopped()

    def file_done(self, outcome: FileOutcome) -> None:
        """One more file applied, shown in the fleet's table; a stopping fleet stops here
        too, before the next file starts."""
        self.applied += 1
        with self.lock:
            self.fleet.target_progress(self.target.name, self.applied)
        if self.stop.is_set():
            raise Stopped()

    def seed_done(self, outcome: SeedOutcome) -> None:
        """One more process run."""
        if outcome.action == "ran":
            self.applied += 1


Runner = Callable[["Settings", Target, Reporter], tuple[int, str]]  # -> (open work, detail)


def run(
    targets: Sequence[Target],
    settings: Settings,
    runner: Runner,
    options: Options,
    reporter: Reporter,
) -> FleetResult:
    """Run `runner` on every target, `options.parallel` at a time: the canaries first, alone;
    after a failure no new target starts unless `keep_going` (the running ones finish); Ctrl-C
    or SIGTERM stops launching and stops the running ones at their next chunk or file. The
    outcome of every target, in the given order."""
    from pydantic import SecretStr

    halt = threading.Event()  # start no new target
    interrupt = threading.Event()  # and stop the running ones too
    lock = threading.Lock()
    outcomes: dict[str, TargetOutcome] = {}

    def one(target: Target) -> TargetOutcome:
        if halt.is_set():
            return TargetOutcome(target.name, "skipped", detail="not started: the fleet stopped")
        with lock:
            reporter.target_started(target.name)
        listener = _Listener(target, reporter, interrupt, lock)
        chosen = settings
        if target.conninfo:
            chosen = settings.model_copy(update={"database_url": SecretStr(target.conninfo)})
        started = time.monotonic()
        left, detail = 0, ""
        try:
            left, detail = runner(chosen, target, listener)
            state, code, error = "done", 0, ""
        except Stopped:
            state, code, error = "interrupted", 130, "stopped by the fleet's interruption"
        except LockNotAcquired as exc:
            state, code, error = "locked", exc.exit_code, exc.message
        except MigratorError as exc:
            state, code, error = "failed", exc.exit_code, exc.message
            if isinstance(exc, MigrationFailed):
                left = len(exc.pending)
        except Exception as exc:  # a database error of this target's, not the fleet's end
            from migrator.db import scrub

            message = scrub(" ".join(str(exc).split()), target.conninfo)
            state, code, error = "failed", 1, message
        outcome = TargetOutcome(
            target.name,
            state,
            listener.applied,
            left,
            int((time.monotonic() - started) * 1000),
            error,
            code,
            detail,
        )
        with lock:
            reporter.target_done(outcome)
        if state in ("failed", "locked") and not options.keep_going:
            halt.set()
        return outcome

    canaries, rest = list(targets[: options.canary]), list(targets[options.canary :])
    stopped_by = ""
    canary_failed = False
    running: dict[Future[TargetOutcome], Target] = {}
    with ThreadPoolExecutor(max_workers=max(options.parallel, 1)) as pool:
        try:
            # The canaries one at a time, then the rest; the main thread only waits, so that
            # a signal lands here and not in a target's statement.
            for group, width in ((canaries, 1), (rest, max(options.parallel, 1))):
                queue = list(group)
                while queue or running:
                    while queue and len(running) < width and not halt.is_set():
                        target = queue.pop(0)
                        running[pool.submit(one, target)] = target
                    if halt.is_set():
                        queue.clear()
                    if not running:
                        break
                    done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in done:
                        target = running.pop(future)
                        outcomes[target.name] = future.result()
                if group is canaries and any(
                    outcomes[c.name].state != "done" for c in canaries if c.name in outcomes
                ):
                    canary_failed = True
                    halt.set()
        except KeyboardInterrupt as signal:
            stopped_by = "SIGTERM" if getattr(signal, "exit_code", 130) == 143 else "SIGINT"
            halt.set()
            interrupt.set()  # before the pool waits for them: they stop at their next chunk
            for future, target in list(running.items()):
                outcomes[target.name] = future.result()
    for target in targets:
        if target.name not in outcomes:
            why = "a canary failed" if canary_failed else "the fleet stopped"
            outcomes[target.name] = TargetOutcome(
                target.name, "skipped", detail=f"not started: {why}"
            )
    ordered = tuple(outcomes[target.name] for target in targets)
    return FleetResult(ordered, bool(stopped_by), stopped_by)


def exit_code(result: FleetResult) -> int:
    """0 when every target is done; 5 when the only trouble is lock waits that timed out; 4
    when targets refused; else 1 (130 after Ctrl-C)."""
    if result.interrupted:
        return 143 if result.signal == "SIGTERM" else 130
    states = {outcome.state for outcome in result.outcomes}
    if states <= {"done"}:
        return 0
    failed = [o for o in result.outcomes if o.state == "failed"]
    if not failed and "locked" in states:
        return 5
    if failed and all(o.exit_code == 4 for o in failed):
        return 4
    return 1


def describe(outcomes: Sequence[TargetOutcome]) -> str:
    """ "3 done, 1 failed, 6 skipped"."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
    return ", ".join(f"{count} {state}" for state, count in counts.items())


def raise_for(result: FleetResult) -> None:
    """The fleet's exit as an error (nothing when every target is done)."""
    code = exit_code(result)
    if code == 0:
        return
    summary = describe(result.outcomes)
    if code in (130, 143):
        stopped = FleetTerminated if code == 143 else FleetInterrupted
        raise stopped(
            f"fleet: stopped by {result.signal}: {summary}",
            hint="Each target's journal records what it did; run the fleet again to go on.",
        )
    named = ", ".join(o.target for o in result.outcomes if o.state in ("failed", "locked"))
    again = (
        "Run the fleet again once fixed: each target applies only what is pending, and a "
        "failed one resumes at its failed chunk."
    )
    if code == 5:
        raise LockNotAcquired(f"fleet: {summary}; the lock wait timed out on {named}", hint=again)
    if code == 4:
        raise Refused(f"fleet: {summary}; refused on {named}")
    raise FleetFailed(f"fleet: {summary}; failed: {named}", hint=again)
