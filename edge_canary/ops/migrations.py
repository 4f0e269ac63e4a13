"""Refuse SQL migrations that would break the release still running during a canary deploy.

During a canary, old and new binaries share one database: a migration must keep working for the
old one (expand now, contract in a later release). Over the SQL files in MIGRATIONS_DIR that are new
since a git ref, refuse DROP COLUMN, DROP TABLE, column type changes, column/table renames and
ADD COLUMN ... NOT NULL without a DEFAULT. FORCE_MIGRATE=1 (or --force) bypasses it, logged.

Exit status: 0 clean (or bypassed), 1 backward-incompatible statements found, 2 bad input.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SINCE = "origin/main"


@dataclass(frozen=True)
class Rule:
    what: str
    how: str


RULES: dict[str, Rule] = {
    "drop_column": Rule(
        "DROP COLUMN breaks the running release, which still reads or writes the column",
        "stop using the column in a release first, then drop it in a later migration",
    ),
    "drop_table": Rule(
        "DROP TABLE breaks the running release, which still uses the table",
        "stop using the table in a release first, then drop it in a later migration",
    ),
    "alter_type": Rule(
        "changing a column's type breaks the running release's reads and writes",
        "add a new column with the new type, backfill it, move readers, drop the old one later",
    ),
    "rename_column": Rule(
        "RENAME COLUMN breaks the running release, which uses the old name",
        "add the new column, write both and backfill, move readers, drop the old one later",
    ),
    "rename_table": Rule(
        "renaming a table breaks the running release, which uses the old name",
        "create the new table (or a view under the new name), move readers, drop the old later",
    ),
    "add_not_null": Rule(
        "ADD COLUMN ... NOT NULL without DEFAULT makes the running release's INSERTs fail",
        "give the column a DEFAULT, or add it nullable and set NOT NULL in a later release",
    ),
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    rule: str

    def render(self) -> str:
        rule = RULES[self.rule]
        return f"{self.path}:{self.line}: {rule.what} — {rule.how}"


class UsageError(Exception):
    """Bad input: one line saying what is wrong and what to do."""


# ------------------------------------------------------------------------------------------------
# Pure checking: text in, findings out


def mask_sql(sql: str) -> str:
    """Blank comments and the contents of literals, keeping every offset and newline in place.

    Comments become spaces; the insides of '...' strings, "..." identifiers and $tag$...$tag$ bodies
    become 'x', so keywords inside them are never taken for statements and a quoted name stays one
    token.
    """
    out = list(sql)
    i, n = 0, len(sql)

    def blank(start: int, end: int, fill: str) -> None:
        for k in range(start, end):
            if out[k] not in "\r\n":
                out[k] = fill

    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            blank(i, end, " ")
            i = end
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2  # PostgreSQL block comments nest
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j, " ")
            i = j
        elif c in "'\"":
            backslash = c == "'" and i > 0 and sql[i - 1] in "eE" and (
                i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_")
            )
            j = i + 1
            while j < n:
                if backslash and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote escapes itself
                        j += 2
                        continue
                    break
                j += 1
            blank(i + 1, min(j, n), "x")
            i = j + 1
        elif c == "$" and (m := re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", sql[i:])):
            tag = m.group(0)
            end = sql.find(tag, i + len(tag))
            end = n if end < 0 else end
            blank(i + len(tag), end, "x")
            i = end + len(tag)
        else:
            i += 1
    return "".join(out)


def split_top_level(text: str, sep: str) -> Iterator[tuple[int, str]]:
    """Pieces of `text` between `sep` characters outside parentheses, with their offsets."""
    depth, start = 0, 0
    for k, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            yield start, text[start:k]
            start = k + 1
    yield start, text[start:]


def lstrip_offset(start: int, text: str) -> tuple[int, str]:
    stripped = text.lstrip()
    return start + len(text) - len(stripped), stripped


_FLAGS = re.IGNORECASE | re.DOTALL
ALTER_TABLE = re.compile(
    r"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?:\"[^\"]*\"|[^\s\"(]+)(?:\s*\*)?\s+", _FLAGS
)
NOT_A_COLUMN = (
    r"(?:CONSTRAINT|INDEX|KEY|PRIMARY|FOREIGN|UNIQUE|CHECK|PARTITION|FULLTEXT|SPATIAL|EXCLUDE"
    r"|SYSTEM|PERIOD)\b"
)
CLAUSE_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"DROP\s+COLUMN\b", _FLAGS), "drop_column"),
    (re.compile(rf"DROP\s+(?!{NOT_A_COLUMN})\S", _FLAGS), "drop_column"),
    (re.compile(r"ALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b", _FLAGS), "alter_type"),
    (re.compile(r"(?:MODIFY|CHANGE)\b", _FLAGS), "alter_type"),
    (re.compile(r"RENAME\s+(?:TO|AS)\b", _FLAGS), "rename_table"),
    (re.compile(r"RENAME\s+COLUMN\b", _FLAGS), "rename_column"),
    (re.compile(r"RENAME\s+(?!CONSTRAINT\b|INDEX\b|KEY\b)\S+\s+TO\b", _FLAGS), "rename_column"),
]
ADD_COLUMN = re.compile(rf"ADD\s+(?!{NOT_A_COLUMN})", _FLAGS)
MAKES_NOT_NULL = re.compile(r"\bNOT\s+NULL\b|\bPRIMARY\s+KEY\b", _FLAGS)
GIVES_VALUE = re.compile(r"\bDEFAULT\b|\bGENERATED\b", _FLAGS)
STATEMENT_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"DROP\s+TABLE\b", _FLAGS), "drop_table"),
    (re.compile(r"RENAME\s+TABLE\b", _FLAGS), "rename_table"),
]


def check_clause(clause: str) -> str | None:
    """The rule one ALTER TABLE clause (e.g. "DROP COLUMN x") breaks, if any."""
    for pattern, rule in CLAUSE_RULES:
        if pattern.match(clause):
            return rule
    adds_column = ADD_COLUMN.match(clause)
    if adds_column and MAKES_NOT_NULL.search(clause) and not GIVES_VALUE.search(clause):
        return "add_not_null"
    return None


def check_statement(statement: str) -> list[tuple[int, str]]:
    """(offset, rule) for each backward-incompatible part of one masked statement."""
    offset, text = lstrip_offset(0, statement)
    for pattern, rule in STATEMENT_RULES:
        if pattern.match(text):
            return [(offset, rule)]
    head = ALTER_TABLE.match(text)
    if not head:
        return []
    found: list[tuple[int, str]] = []
    body_offset = offset + head.end()
    for start, piece in split_top_level(text[head.end():], ","):
        clause_offset, clause = lstrip_offset(body_offset + start, piece)
        broken = check_clause(clause)
        if broken:
            found.append((clause_offset, broken))
    return found


def check_sql(sql: str, path: str) -> list[Violation]:
    """Every backward-incompatible statement of one SQL text, with the line it starts on."""
    masked = mask_sql(sql)
    violations = []
    for start, statement in split_top_level(masked, ";"):
        for offset, rule in check_statement(statement):
            line = masked.count("\n", 0, start + offset) + 1
            violations.append(Violation(path, line, rule))
    return violations


# ------------------------------------------------------------------------------------------------
# Side effects: which files, git, output, bypass log


def git(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, check=False
    )


def ref_exists(directory: Path, ref: str) -> bool:
    return git(directory, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode == 0


def is_sql(name: str) -> bool:
    return name.lower().endswith(".sql")


def files_to_check(directory: Path, since: str | None) -> tuple[list[Path], str]:
    """SQL files under `directory` to check and a phrase saying which ones they are.

    An explicit `since` must be an existing ref; without one, origin/main is used when it exists,
    else every file is checked.
    """
    in_repo = git(directory, "rev-parse", "--is-inside-work-tree").stdout.strip() == "true"
    if since is not None and not in_repo:
        raise UsageError(f"{directory} is not in a git repository, so --since {since} cannot apply;"
                         " drop --since to check every file")
    if since is not None and not ref_exists(directory, since):
        raise UsageError(f"git ref {since!r} not found in the repository of {directory}; "
                         "fetch it or pass an existing --since")
    if since is None and in_repo and ref_exists(directory, DEFAULT_SINCE):
        since = DEFAULT_SINCE
    if since is None:
        files = sorted(p for p in directory.rglob("*") if p.is_file() and is_sql(p.name))
        return files, f"in {directory} (all files)"

    names: set[str] = set()
    for args in (
        ("diff", "--name-only", "--relative", "--diff-filter=ACMR", "-z", since, "--", "."),
        ("ls-files", "--others", "--exclude-standard", "-z", "--", "."),
    ):
        proc = git(directory, *args)
        if proc.returncode != 0:
            raise UsageError(f"git {args[0]} failed in {directory}: {proc.stderr.strip()}")
        names.update(n for n in proc.stdout.split("\0") if n and is_sql(n))
    files = sorted(directory / n for n in names if (directory / n).is_file())
    return files, f"in {directory} new since {since}"


def log_bypass(violations: Sequence[Violation], log_path: Path | None) -> None:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    who = f"{user}@{socket.gethostname()}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    summary = (f"FORCE_MIGRATE bypass by {who}: {len(violations)} backward-incompatible "
               "statement(s) allowed")
    if log_path is not None:
        with log_path.open("a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {summary}: " + "; ".join(v.render() for v in violations) + "\n")
        summary += f" (logged to {log_path})"
    print(f"migration check: {summary}", file=sys.stderr)


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: Sequence[str], env: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Refuse backward-incompatible SQL migrations (new since a git ref).",
    )
    parser.add_argument("--dir", default=env.get("MIGRATIONS_DIR") or None,
                        help="migrations directory (default: $MIGRATIONS_DIR; none: nothing to do)")
    parser.add_argument("--since", default=None,
                        help=f"git ref the new files are counted from (default: {DEFAULT_SINCE} "
                             "if it exists, else every file)")
    parser.add_argument("--force", action="store_true", default=truthy(env.get("FORCE_MIGRATE")),
                        help="bypass a refusal, logged (default: $FORCE_MIGRATE=1)")
    parser.add_argument("--log", type=Path, default=None,
                        help="append each bypass to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    args = parse_args(sys.argv[1:] if argv is None else argv, env)
    if not args.dir:
        print("migration check: no MIGRATIONS_DIR given, nothing to check")
        return 0
    directory = Path(args.dir)
    try:
        if not directory.is_dir():
            raise UsageError(f"MIGRATIONS_DIR {directory} is not a directory; "
                             "give the directory holding the .sql migrations")
        files, which = files_to_check(directory, args.since)
        violations: list[Violation] = []
        for path in files:
            try:
                sql = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read {path} ({exc}); fix the file and re-run") from None
            violations.extend(check_sql(sql, str(path)))
    except UsageError as exc:
        print(f"migration check: {exc}", file=sys.stderr)
        return 2
    if not violations:
        print(f"migration check: {len(files)} SQL file(s) {which}: backward compatible")
        return 0
    for violation in violations:
        print(violation.render())
    if args.force:
        try:
            log_bypass(violations, args.log)
        except OSError as exc:
            print(f"migration check: cannot write bypass log {args.log} ({exc}); fix the path "
                  "or drop --log", file=sys.stderr)
            return 2
        return 0
    print(f"migration check: {len(violations)} backward-incompatible statement(s) {which}; make "
          "them backward compatible (expand now, contract in a later release) or set "
          "FORCE_MIGRATE=1 to bypass (logged)")
    return 1

