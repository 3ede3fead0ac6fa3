"""`make bench`: migrator against the psql floor on synthetic migration sets, with targets.

Every scenario runs in interleaved rounds (floor, migrator, floor, migrator, ...), each apply on
a fresh database, and reports medians, min-max and the median of the round-by-round ratios.
Wall time runs from spawn to reap of the process (no shell); peak RSS is the process's own
maximum resident set (wait4). Not part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

MARK = "--> statement-breakpoint"


def migration(i: int, k: int) -> list[str]:
    """The statements of migration i: a table, then indexes, a column on the previous table,
    inserts whose strings hold ';', and every 10th a plpgsql function with a $$ body."""
    statements = [
        f"CREATE TABLE bt_{i:04d} (\n    id bigserial PRIMARY KEY,\n    name text NOT NULL,\n"
        f"    qty integer NOT NULL DEFAULT 0,\n    created_at timestamptz NOT NULL DEFAULT now()\n)"
    ]
    for j in range(1, k):
        if j == k - 1 and i % 10 == 0:
            statements.append(
                f"CREATE FUNCTION bf_{i:04d}(n integer) RETURNS integer LANGUAGE plpgsql AS $$\n"
                "DECLARE total integer := 0;\nBEGIN\n"
                f"    SELECT count(*) INTO total FROM bt_{i:04d};\n    RETURN total + n;\nEND;\n$$"
            )
        elif j % 3 == 1:
            statements.append(f"CREATE INDEX bt_{i:04d}_i{j} ON bt_{i:04d} (name)")
        elif j % 3 == 2 and i > 1:
            statements.append(
                f"ALTER TABLE bt_{i - 1:04d} ADD COLUMN x{i:04d}_{j} integer NOT NULL DEFAULT {j}"
            )
        else:
            values = ",\n".join(f"    ('item {r}; migration {i:04d}', {r * 3})" for r in (1, 2, 3))
            statements.append(f"INSERT INTO bt_{i:04d} (name, qty) VALUES\n{values}")
    return statements


def generate(root: Path, n: int, k: int) -> tuple[Path, Path]:
    """sql/public/NNNN_*.sql for migrator and all.sql for psql: the same statements, in order."""
    folder = root / "sql" / "public"
    folder.mkdir(parents=True)
    everything = []
    for i in range(1, n + 1):
        statements = migration(i, k)
        (folder / f"{i:04d}_create_bt_{i:04d}.sql").write_text(
            f";\n{MARK}\n".join(statements) + ";\n", encoding="utf-8"
        )
        everything.extend(statements)
    floor = root / "all.sql"
    floor.write_text(";\n".join(everything) + ";\n", encoding="utf-8")
    return root, floor


@dataclass
class Run:
    seconds: float
    rss_mb: float


@dataclass
class Series:
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def span(self) -> str:
        times = [run.seconds for run in self.runs]
        return f"{min(times):.3f}-{max(times):.3f}"

    @property
    def peak_rss(self) -> float:
        return max(run.rss_mb for run in self.runs)


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> Run:
    """Wall time from spawn to reap, and the process's peak RSS; fails loudly on a bad exit."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{error}")
    return Run(elapsed, usage.ru_maxrss / 1024)


class Server:
    """Fresh databases on the benchmark server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = psycopg.connect(url, autocommit=True)
        self.count = 0

    def fresh(self, *, checkpoint: bool = True) -> tuple[str, str]:
        self.count += 1
        name = f"bench_{os.getpid()}_{self.count}"
        self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        self.admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        if checkpoint:
            self.admin.execute("CHECKPOINT")
        return name, make_conninfo(self.url, dbname=name)

    def drop(self, name: str) -> None:
        self.admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def version(self) -> str:
        row = self.admin.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


def verify(url: str, n: int) -> None:
    """The set applied fully: n tables, their rows, and the $$ function bodies intact."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename ~ '^bt_'"
        ).fetchone()
        assert tables and tables[0] == n, f"expected {n} tables, found {tables}"
        if n >= 10:
            row = conn.execute("SELECT bf_0010(1)").fetchone()
            assert row and row[0] == 4, row


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.server = Server(args.url)
        self.python = sys.executable
        self.migrator = [str(Path(self.python).parent / "migrator"), "-q"]  # as users run it
        self.psql = shutil.which("psql") or "psql"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MIGRATOR_", "PG"))}
        self.env.pop("DATABASE_URL", None)
        self.rounds = args.rounds
        self.work = Path(tempfile.mkdtemp(prefix="migrator-bench-"))
        self.results: list[tuple[str, str, str, bool]] = []
        self.table: list[tuple[str, ...]] = []

    def env_for(self, url: str) -> dict[str, str]:
        return {**self.env, "MIGRATOR_DATABASE_URL": url}

    def apply(self, label: str, n: int, k: int, rounds: int, target: float) -> None:
        root, floor = generate(self.work / f"apply_{n}x{k}", n, k)
        psql, mine = Series(), Series()
        ratios = []
        floor_command = [self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(floor)]
        for round_number in range(rounds):
            # Alternate who goes first: dropping the previous run's database and its
            # checkpoint weigh on whatever runs next.
            order = [(psql, "floor"), (mine, "migrator")]
            for series, who in order if round_number % 2 == 0 else order[::-1]:
                name, url = self.server.fresh()
                if who == "floor":
                    series.runs.append(timed([*floor_command, "-d", url], root, self.env))
                else:
                    series.runs.append(timed([*self.migrator, "migrate"], root, self.env_for(url)))
                verify(url, n)
                self.server.drop(name)
            ratios.append(mine.runs[-1].seconds / psql.runs[-1].seconds)
        ratio = statistics.median(ratios)
        self.table.append(
            (
                label,
                f"{psql.median:.3f} ({psql.span})",
                f"{mine.median:.3f} ({mine.span})",
                f"{ratio:.2f}x",
            )
        )
        self.check(f"{label} <= {target:.2f}x the psql floor", f"{ratio:.2f}x", ratio <= target)

    def noop(self, n: int, rounds: int, budget_ms: float) -> None:
        root, _ = generate(self.work / f"noop_{n}", n, 5)
        name, url = self.server.fresh()
        timed([*self.migrator, "migrate"], root, self.env_for(url))
        verify(url, n)
        floor_code = f"import psycopg; psycopg.connect({url!r}).execute('select 1')"
        python, mine = Series(), Series()
        ratios = []
        for _ in range(rounds):
            python.runs.append(timed([self.python, "-c", floor_code], root, self.env))
            mine.runs.append(timed([*self.migrator, "migrate"], root, self.env_for(url)))
            ratios.append(mine.runs[-1].seconds - python.runs[-1].seconds)
        verify(url, n)
        self.server.drop(name)
        over = statistics.median(ratios) * 1000
        self.table.append(
            (
                f"no-op migrate, {n} applied",
                f"{python.median:.3f} ({python.span}) python floor",
                f"{mine.median:.3f} ({mine.span})",
                f"+{over:.0f} ms",
            )
        )
        self.check(
            f"no-op migrate on {n} files <= python floor + {budget_ms:.0f} ms",
            f"+{over:.0f} ms",
            over <= budget_ms,
        )

    def status(self, n: int, rounds: int, budget_ms: float, rss_mb: float) -> None:
        root = self.work / f"status_{n}"
        folder = root / "sql" / "public"
        folder.mkdir(parents=True)
        for i in range(1, n + 1):
            (folder / f"{i:05d}_step_{i}.sql").write_text(
                f"-- step {i}\nCREATE TABLE t_{i} (id int);\n", encoding="utf-8"
            )
        name, url = self.server.fresh()
        setup = timed([*self.migrator, "migrate"], root, self.env_for(url))
        status, noop = Series(), Series()
        for _ in range(rounds):
            status.runs.append(timed([*self.migrator, "status"], root, self.env_for(url)))
            noop.runs.append(timed([*self.migrator, "migrate"], root, self.env_for(url)))
        self.server.drop(name)
        ms = status.median * 1000
        self.table.append((f"status, {n} files", "", f"{status.median:.3f} ({status.span})", ""))
        self.table.append(
            (f"apply {n} one-statement files (setup)", "", f"{setup.seconds:.3f}", "")
        )
        self.check(f"status on {n} files <= {budget_ms:.0f} ms", f"{ms:.0f} ms", ms <= budget_ms)
        peak = max(status.peak_rss, noop.peak_rss, setup.rss_mb)
        self.check(f"peak RSS at {n} files <= {rss_mb:.0f} MB", f"{peak:.1f} MB", peak <= rss_mb)

    def fleet(
        self, databases: int, n: int, k: int, speedup: float, budget_s: float, rss_mb: float
    ) -> None:
        """A fleet of `databases` x n files x k chunks from a targets file: applied with
        --parallel 1 and (on the same databases, emptied) --parallel 4, then a no-op status."""
        root, _ = generate(self.work / f"fleet_{n}x{k}", n, k)
        names, urls = [], []
        for _ in range(databases):
            name, url = self.server.fresh(checkpoint=False)
            names.append(name)
            urls.append(url)
        targets = root / "targets.txt"
        targets.write_text(
            "".join(f"{name}={url}\n" for name, url in zip(names, urls, strict=True))
        )
        command = [*self.migrator, "fleet", "migrate", "--targets", str(targets), "--parallel"]
        try:
            one = timed([*command, "1"], root, self.env)
            for url in urls[:: max(databases // 10, 1)]:
                verify(url, n)
            for url in urls:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            self.server.admin.execute("CHECKPOINT")
            four = timed([*command, "4"], root, self.env)
            for url in urls:
                verify(url, n)
            status = [*self.migrator, "fleet", "status", "--targets", str(targets)]
            noop = Series([timed(status, root, self.env) for _ in range(3)])
        finally:
            for name in names:
                self.server.drop(name)
        label = f"fleet of {databases} x {n}x{k}"
        self.table.append((f"{label}, --parallel 1", "", f"{one.seconds:.2f}", ""))
        self.table.append((f"{label}, --parallel 4", "", f"{four.seconds:.2f}", ""))
        self.table.append(
            (f"no-op fleet status over {databases}", "", f"{noop.median:.2f} ({noop.span})", "")
        )
        ratio = one.seconds / four.seconds
        self.check(
            f"{label}: --parallel 4 >= {speedup}x --parallel 1", f"{ratio:.2f}x", ratio >= speedup
        )
        self.check(
            f"no-op fleet status over {databases} <= {budget_s:.0f} s",
            f"{noop.median:.2f} s",
            noop.median <= budget_s,
        )
        peak = max(one.rss_mb, four.rss_mb, noop.peak_rss)
        self.check(f"fleet peak RSS <= {rss_mb:.0f} MB", f"{peak:.1f} MB", peak <= rss_mb)

    def lint(self, n: int, rounds: int, budget_s: float) -> None:
        """lint --all of n files (5 statements each), no database: the whole command's time."""
        root, _ = generate(self.work / f"lint_{n}", n, 5)
        runs = Series(
            [timed([*self.migrator, "lint", "--all"], root, self.env) for _ in range(rounds)]
        )
        self.table.append((f"lint --all, {n} files", "", f"{runs.median:.3f} ({runs.span})", ""))
        self.check(
            f"lint of {n} files <= {budget_s:.0f} s",
            f"{runs.median:.2f} s",
            runs.median <= budget_s,
        )

    def check(self, target: str, measured: str, passed: bool) -> None:
        self.results.append((target, measured, "PASS" if passed else "FAIL", passed))
        print(f"{'PASS' if passed else 'FAIL'}  {target}: {measured}", flush=True)

    def report(self) -> str:
        lines = [
            f"machine: {platform.platform()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, PostgreSQL {self.server.version()}",
            "",
            "| scenario | floor median s (min-max) | migrator median s (min-max) | ratio |",
            "|---|---|---|---|",
            *(f"| {' | '.join(row)} |" for row in self.table),
            "",
            "| target | measured | result |",
            "|---|---|---|",
            *(f"| {t} | {m} | {r} |" for t, m, r, _ in self.results),
        ]
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale-rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="Small sets, to try the harness.")
    parser.add_argument("--only", choices=["fleet", "lint"], help="Just this scenario.")
    args = parser.parse_args()
    bench = Bench(args)
    try:
        if args.only == "fleet":
            bench.fleet(200, 20, 5, 1.5, 5, 150)
        elif args.only == "lint":
            bench.lint(1000, 5, 2.0)
        elif args.quick:
            bench.apply("apply 20x5", 20, 5, 2, 1.10)
            bench.noop(200, 3, 80)
            bench.status(500, 2, 400, 80)
            bench.fleet(20, 5, 5, 1.5, 5, 150)
        else:
            bench.apply("apply 200x5", 200, 5, args.rounds, 1.10)
            bench.apply("apply 2000x5", 2000, 5, args.scale_rounds, 1.10)
            bench.noop(2000, 10, 100)
            bench.status(10_000, 5, 400, 80)
            bench.fleet(200, 20, 5, 1.5, 5, 150)
            bench.lint(1000, 5, 2.0)
    finally:
        shutil.rmtree(bench.work, ignore_errors=True)
    print()
    print(bench.report())
    return 0 if all(passed for *_, passed in bench.results) else 1


if __name__ == "__main__":
    sys.exit(main())
