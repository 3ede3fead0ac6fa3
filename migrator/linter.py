"""PURE. Lint: each chunk parsed by PostgreSQL's own parser (pglast), and the statements that
lock or rewrite a table in production reported with the safe way to write them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from migrator import sqlfile
from migrator.errors import ConfigError
from migrator.model import Chunk, Finding, Migration, TxMode

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule: its name (Squawk's, where Squawk has one), severity, what happens, the fix."""

    name: str
    severity: str
    problem: str
    fix: str


_RULES = [
    Rule(
        "syntax-error",
        ERROR,
        "PostgreSQL's parser rejects the chunk",
        "Fix the SQL; the server would refuse it the same way.",
    ),
    Rule(
        "require-concurrent-index-creation",
        ERROR,
        "CREATE INDEX blocks every write to the table while the index builds",
        "CREATE INDEX CONCURRENTLY name ON table (columns);  -- in a chunk of its own, "
        "which migrator runs outside a transaction",
    ),
    Rule(
        "require-concurrent-index-deletion",
        ERROR,
        "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table: reads and writes wait",
        "DROP INDEX CONCURRENTLY name;  -- in a chunk of its own",
    ),
    Rule(
        "adding-foreign-key-constraint",
        ERROR,
        "adding a foreign key checks every row while both tables are locked against writes",
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES u NOT VALID;\n"
        "--> statement-breakpoint\nALTER TABLE t VALIDATE CONSTRAINT fk;",
    ),
    Rule(
        "constraint-missing-not-valid",
        ERROR,
        "adding a CHECK constraint scans the whole table under an ACCESS EXCLUSIVE lock",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (...) NOT VALID;\n"
        "--> statement-breakpoint\nALTER TABLE t VALIDATE CONSTRAINT c;",
    ),
    Rule(
        "adding-not-nullable-field",
        ERROR,
        "making a column NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock (and "
        "a new NOT NULL column without a default fails on a table with rows)",
        "ALTER TABLE t ADD CONSTRAINT c_not_null CHECK (c IS NOT NULL) NOT VALID;\n"
        "--> statement-breakpoint\nALTER TABLE t VALIDATE CONSTRAINT c_not_null;\n"
        "--> statement-breakpoint\nALTER TABLE t ALTER c SET NOT NULL;  -- uses the valid "
        "CHECK, no scan (PostgreSQL 12+)",
    ),
    Rule(
        "changing-column-type",
        ERROR,
        "changing a column's type rewrites the table and its indexes under an ACCESS "
        "EXCLUSIVE lock",
        "Add a column of the new type, fill it in batches, switch the readers, drop the old one.",
    ),
    Rule(
        "adding-field-with-default",
        ERROR,
        "a column with a volatile default rewrites the whole table under an ACCESS EXCLUSIVE lock",
        "ALTER TABLE t ADD c type;  -- no default\n--> statement-breakpoint\n"
        "ALTER TABLE t ALTER c SET DEFAULT expr;  -- new rows; backfill old ones in batches",
    ),
    Rule(
        "disallowed-unique-constraint",
        ERROR,
        "adding a UNIQUE or PRIMARY KEY constraint builds its index while writes wait",
        "CREATE UNIQUE INDEX CONCURRENTLY i ON t (c);\n--> statement-breakpoint\n"
        "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX i;",
    ),
    Rule(
        "renaming-column",
        WARNING,
        "renaming a column breaks the application still running against the old name",
        "Add the new column, write both, move the readers, then drop the old one.",
    ),
    Rule(
        "renaming-table",
        WARNING,
        "renaming a table breaks the application still running against the old name",
        "Create the new table (or a view under the old name) and move the readers first.",
    ),
    Rule(
        "ban-drop-column",
        WARNING,
        "dropping a column breaks the application still reading it, and its data is gone",
        "Stop reading the column in a release first; then drop it.",
    ),
    Rule(
        "ban-drop-table",
        WARNING,
        "dropping a table loses its data and breaks whatever still reads it",
        "Stop using the table in a release first; keep a backup; then drop it.",
    ),
    Rule(
        "ban-drop-database",
        ERROR,
        "DROP DATABASE in a migration",
        "Drop databases by hand, not from a migration.",
    ),
    Rule(
        "ban-truncate-cascade",
        ERROR,
        "TRUNCATE ... CASCADE also empties every table that references it",
        "TRUNCATE the tables meant, by name, without CASCADE.",
    ),
    Rule(
        "prefer-identity",
        WARNING,
        "serial types leave a sequence owned apart from the column",
        "id bigint GENERATED ALWAYS AS IDENTITY",
    ),
    Rule(
        "prefer-timestamptz",
        WARNING,
        "timestamp without time zone loses the offset; comparisons across zones go wrong",
        "timestamptz",
    ),
    Rule(
        "prefer-text-field",
        WARNING,
        "varchar(n) needs an ACCESS EXCLUSIVE lock to raise n later",
        "text, with a CHECK (char_length(c) <= n) if a limit matters",
    ),
    Rule(
        "ban-char-field",
        WARNING,
        "char(n) pads with spaces and compares surprisingly",
        "text (or varchar)",
    ),
    Rule(
        "enum-value-added-and-used",
        ERROR,
        "a value added to an enum cannot be used in the same transaction (55P04): the chunk fails",
        "ALTER TYPE e ADD VALUE 'v';\n--> statement-breakpoint\n-- then use 'v' in a later chunk",
    ),
    Rule(
        "ban-vacuum-full",
        ERROR,
        "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock",
        "Plain VACUUM (or pg_repack) outside the migration.",
    ),
    Rule(
        "ban-cluster",
        ERROR,
        "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock",
        "Leave it to maintenance (or pg_repack), outside the migration.",
    ),
    Rule(
        "ban-lock-table",
        ERROR,
        "LOCK TABLE holds its lock until the chunk commits: everything queued behind waits",
        "Let the statements take the locks they need, with lock_timeout bounding the wait.",
    ),
    Rule(
        "require-concurrent-refresh",
        ERROR,
        "REFRESH MATERIALIZED VIEW blocks every read of the view while it runs",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY v;  -- needs a unique index on the view",
    ),
]
RULES = {rule.name: rule for rule in _RULES}
_SERIALS = frozenset({"serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"})
_VOLATILE = {
    "random",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "nextval",
    "setseed",
}
# A comment line `-- migrator: lint-ignore=rule-a, rule-b`, free text allowed after the names.
_IGNORE = re.compile(
    r"^[ \t]*--[ \t]*migrator:[ \t]*lint-ignore\b[ \t]*=?[ \t]*"
    r"([A-Za-z0-9_-]+(?:[ \t]*,[ \t]*[A-Za-z0-9_-]+)*)?",
    re.MULTILINE,
)


def severities(config: Mapping[str, str]) -> dict[str, str]:
    """Each rule's severity after [tool.migrator.lint] (rule = "off" | "warning" | "error");
    ConfigError for an unknown rule or severity."""
    chosen = {name: rule.severity for name, rule in RULES.items()}
    for name, value in config.items():
        if name not in RULES:
            raise ConfigError(
                f"[tool.migrator.lint]: no rule {name!r}", hint=f"Rules: {', '.join(RULES)}."
            )
        if value not in ("off", WARNING, ERROR):
            raise ConfigError(f"[tool.migrator.lint] {name}: give off, warning or error")
        chosen[name] = value
    return chosen


def ignored(text: str, path: str = "", line: int = 1) -> set[str]:
    """The rules the `-- migrator: lint-ignore=a,b` comment lines of the text name (its first
    line being `line` of `path`); ConfigError naming the place of one that names no rule, or
    an unknown one."""
    found: set[str] = set()
    for match in _IGNORE.finditer(text):
        where = f"{path}:{line + text.count(chr(10), 0, match.start())}"
        names = {name.strip() for name in (match[1] or "").split(",") if name.strip()}
        unknown = sorted(name for name in names if name not in RULES)
        if not names or unknown:
            what = f"unknown rule {', '.join(unknown)}" if unknown else "no rule named"
            raise ConfigError(
                f"{where}: lint-ignore: {what}",
                hint=f"Write -- migrator: lint-ignore=RULE[,RULE]; rules: {', '.join(RULES)}.",
            )
        found |= names
    return found


def lint(migration: Migration, chosen: Mapping[str, str]) -> list[Finding]:
    """Every finding of one file, in order; a table or index made earlier in the same file is
    new, so the rules about locking existing ones stay quiet for it."""
    file = migration.file
    _, header_end = sqlfile.read_directives(
        file.text, file.path, allowed=sqlfile.MIGRATION_DIRECTIVES
    )
    marker = re.search(r"^[ \t]*-->[ \t]*statement-breakpoint", file.text, re.MULTILINE)
    if marker:  # the leading comments end at the first chunk's end, at the latest
        header_end = min(header_end, marker.start())
    whole = ignored(file.text[:header_end], file.path)  # the leading comments: the whole file
    if file.name.endswith(".down.sql"):  # dropping what the up file made is its purpose
        whole |= {"ban-drop-table", "ban-drop-column"}
    made: set[tuple[str, str]] = set()
    # In one transaction (a single-transaction or repeatable file) an enum value added in
    # one chunk cannot be used in a later one either.
    added: list[str] | None = [] if migration.mode is TxMode.SINGLE else None
    findings: list[Finding] = []
    starts = sqlfile.line_starts(file.text)
    for chunk in migration.chunks:
        line = sqlfile.line_column(file.text, chunk.start, starts)[0]
        skip = whole | ignored(chunk.sql, file.path, line)
        for name, offset, detail in _chunk(chunk, made, added):
            severity = chosen.get(name, "off")
            if severity == "off" or name in skip:
                continue
            line, column = sqlfile.line_column(file.text, chunk.start + offset, starts)
            rule = RULES[name]
            message = f"{rule.problem}{detail}"
            findings.append(Finding(file.path, line, column, name, severity, message, rule.fix))
    return findings


def _chunk(
    chunk: Chunk, made: set[tuple[str, str]], added: list[str] | None
) -> Iterator[tuple[str, int, str]]:
    """(rule, offset in the chunk, detail) for each finding of one chunk; `made` gains the
    tables and indexes it creates, `added` (None: this chunk's alone) the enum values."""
    from pglast import parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(chunk.sql)
    except ParseError as error:
        message, at = (*error.args, 0)[:2]
        yield "syntax-error", max(int(at or 0), 0), f": {message}"
        return
    added = [] if added is None else added
    for raw in statements:
        at = raw.stmt_location or 0
        while at < len(chunk.sql) and chunk.sql[at] in " \t\n":
            at += 1
        node: Any = raw.stmt
        kind = type(node).__name__
        text = chunk.sql[at : at + raw.stmt_len] if raw.stmt_len else chunk.sql[at:]
        if kind not in ("AlterEnumStmt", "CommentStmt"):
            for value in added:
                if "'" + value.replace("'", "''") + "'" in text:
                    yield "enum-value-added-and-used", at, f" ('{value}')"
        for rule, detail in _statement(kind, node, made):
            yield rule, at, detail
        if kind == "AlterEnumStmt" and node.newVal:
            added.append(str(node.newVal))


def _name(relation: Any) -> tuple[str, str]:
    """(schema, name) as PostgreSQL reads them (unquoted names folded by the parser)."""
    if relation is None:
        return ("", "")
    return (str(relation.schemaname or ""), str(relation.relname or ""))


def _shown(name: tuple[str, str]) -> str:
    return ".".join(part for part in name if part)


def _statement(kind: str, node: Any, made: set[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    """(rule, detail) for one statement."""
    if kind == "CreateStmt":
        if not node.if_not_exists:  # IF NOT EXISTS: it may be there already, and large
            made.add(_name(node.relation))
        yield from _columns(node.tableElts or ())
    elif kind == "CreateTableAsStmt" and node.into and not node.if_not_exists:
        made.add(_name(node.into.rel))
    elif kind == "IndexStmt":
        table = _name(node.relation)
        if node.idxname:
            made.add((table[0], str(node.idxname)))
        # ON ONLY a partitioned table builds nothing (and cannot be CONCURRENTLY).
        only = node.relation is not None and not node.relation.inh
        if not node.concurrent and not only and table not in made:
            yield "require-concurrent-index-creation", f" ({_shown(table)})"
    elif kind == "DropStmt":
        yield from _drop(node, made)
    elif kind == "DropdbStmt":
        yield "ban-drop-database", ""
    elif kind == "TruncateStmt" and _enum_name(node.behavior) == "DROP_CASCADE":
        yield "ban-truncate-cascade", ""
    elif kind == "RenameStmt":
        renamed, table = _enum_name(node.renameType), _name(node.relation)
        if renamed == "OBJECT_COLUMN" and table not in made:
            yield "renaming-column", f" ({node.subname} to {node.newname})"
        elif renamed == "OBJECT_TABLE" and table not in made:
            yield "renaming-table", f" ({_shown(table)} to {node.newname})"
        elif renamed == "OBJECT_TABLE":
            made.add((table[0], str(node.newname)))
    elif kind == "AlterTableStmt" and _enum_name(node.objtype) == "OBJECT_TABLE":
        table = _name(node.relation)
        for command in node.cmds or ():
            yield from _alter(_shown(table), command, table in made)
    elif kind == "VacuumStmt":
        full = any(option.defname == "full" and _true(option.arg) for option in node.options or ())
        tables = [_name(rel.relation) for rel in node.rels or ()]
        if full and (not tables or any(t not in made for t in tables)):
            yield "ban-vacuum-full", ""
    elif kind == "ClusterStmt" and _name(node.relation) not in made:
        yield "ban-cluster", ""
    elif kind == "LockStmt" and any(_name(rel) not in made for rel in node.relations or ()):
        yield "ban-lock-table", ""
    elif kind == "RefreshMatViewStmt" and not node.concurrent and _name(node.relation) not in made:
        yield "require-concurrent-refresh", f" ({_shown(_name(node.relation))})"


def _true(argument: Any) -> bool:
    """An option's value: none given, or anything but false/off/0, is true."""
    if argument is None:
        return True
    value = str(getattr(argument, "sval", None) or getattr(argument, "ival", "1")).lower()
    return value not in ("false", "off", "0", "no")


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _drop(node: Any, made: set[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    removed = _enum_name(node.removeType)
    names = [  # (schema, name) lists for tables and indexes; functions and types differ
        (str(parts[-2].sval) if len(parts) > 1 else "", str(parts[-1].sval))
        for parts in node.objects or ()
        if isinstance(parts, tuple) and parts and hasattr(parts[-1], "sval")
    ]
    shown = ", ".join(_shown(name) for name in names)
    if removed == "OBJECT_INDEX" and not node.concurrent and any(n not in made for n in names):
        yield "require-concurrent-index-deletion", f" ({shown})"
    elif removed == "OBJECT_TABLE" and any(n not in made for n in names):
        yield "ban-drop-table", f" ({shown})"


def _alter(table: str, command: Any, new: bool) -> Iterable[tuple[str, str]]:
    subtype = _enum_name(command.subtype)
    where = f" ({table})"
    if subtype == "AT_AddColumn":
        yield from _columns([command.def_], existing_table=not new)
    elif subtype == "AT_AddConstraint" and not new:
        yield from _constraint(command.def_, where)
    elif subtype == "AT_SetNotNull" and not new:
        yield "adding-not-nullable-field", f" ({table}.{command.name})"
    elif subtype == "AT_AlterColumnType" and not new:
        yield "changing-column-type", f" ({table}.{command.name})"
    elif subtype == "AT_DropColumn" and not new:
        yield "ban-drop-column", f" ({table}.{command.name})"


def _constraint(constraint: Any, where: str) -> Iterable[tuple[str, str]]:
    kind = _enum_name(constraint.contype)
    if kind == "CONSTR_FOREIGN" and not constraint.skip_validation:
        yield "adding-foreign-key-constraint", where
    elif kind == "CONSTR_CHECK" and not constraint.skip_validation:
        yield "constraint-missing-not-valid", where
    elif kind in ("CONSTR_UNIQUE", "CONSTR_PRIMARY") and not constraint.indexname:
        yield "disallowed-unique-constraint", where


def _columns(elements: Sequence[Any], *, existing_table: bool = False) -> Iterable[tuple[str, str]]:
    """The column rules; with `existing_table`, those about adding a column to it too."""
    for column in elements:
        if type(column).__name__ != "ColumnDef":
            continue
        names = [str(part.sval) for part in (column.typeName.names if column.typeName else ())]
        base = names[-1] if names else ""
        where = f" ({column.colname})"
        if base in _SERIALS:
            yield "prefer-identity", where
        elif base == "timestamp":
            yield "prefer-timestamptz", where
        elif base == "varchar" and column.typeName.typmods:
            yield "prefer-text-field", where
        elif base == "bpchar":
            yield "ban-char-field", where
        if not existing_table:
            continue
        constraints = list(column.constraints or ())
        kinds = {_enum_name(c.contype) for c in constraints}
        defaults = [c for c in constraints if _enum_name(c.contype) == "CONSTR_DEFAULT"]
        null_default = all(_is_null(c.raw_expr) for c in defaults)
        if "CONSTR_NOTNULL" in kinds and null_default:
            yield "adding-not-nullable-field", where
        if kinds & {"CONSTR_IDENTITY", "CONSTR_GENERATED"}:
            yield "adding-field-with-default", f"{where}: every row gets its value, rewritten"
        for constraint in constraints:
            kind = _enum_name(constraint.contype)
            if kind == "CONSTR_DEFAULT" and _volatile(constraint.raw_expr):
                yield "adding-field-with-default", where
            elif kind == "CONSTR_FOREIGN" and not constraint.skip_validation:
                yield "adding-foreign-key-constraint", where
            elif kind in ("CONSTR_UNIQUE", "CONSTR_PRIMARY"):
                yield "disallowed-unique-constraint", where
        if base in _SERIALS:
            yield "adding-field-with-default", f"{where}: a serial column is filled row by row"


def _volatile(expression: Any) -> bool:
    """True when the expression calls a volatile function (known by name)."""
    if expression is None:
        return False
    if type(expression).__name__ == "FuncCall":
        name = str(expression.funcname[-1].sval).lower() if expression.funcname else ""
        if name in _VOLATILE:
            return True
    for slot in getattr(type(expression), "__slots__", ()):
        value = getattr(expression, slot, None)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if type(item).__module__.startswith("pglast") and _volatile(item):
                return True
    return False


def _is_null(expression: Any) -> bool:
    """True for a missing default or DEFAULT NULL."""
    if expression is None:
        return True
    return type(expression).__name__ == "A_Const" and bool(getattr(expression, "isnull", False))
