"""edge-canary check-migrations: the pure checks, and the CLI over real files and git."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import edge_canary.ops.migrations as mig

CHECK = [sys.executable, "-m", "edge_canary", "check-migrations"]


def rules(sql: str) -> list[tuple[int, str]]:
    return [(v.line, v.rule) for v in mig.check_sql(sql, "m.sql")]


# --- refused patterns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("ALTER TABLE users DROP COLUMN email;", "drop_column"),
        ("alter table users drop column if exists email;", "drop_column"),
        ("ALTER TABLE users DROP email;", "drop_column"),
        ("ALTER TABLE IF EXISTS ONLY users DROP COLUMN email;", "drop_column"),
        ("DROP TABLE users;", "drop_table"),
        ("drop table if exists users cascade;", "drop_table"),
        ("ALTER TABLE users ALTER COLUMN id TYPE bigint;", "alter_type"),
        ("ALTER TABLE users ALTER id TYPE bigint USING id::bigint;", "alter_type"),
        ("ALTER TABLE users ALTER COLUMN id SET DATA TYPE bigint;", "alter_type"),
        ('ALTER TABLE users ALTER COLUMN "user id" TYPE bigint;', "alter_type"),
        ("ALTER TABLE users MODIFY COLUMN name varchar(10);", "alter_type"),
        ("ALTER TABLE users RENAME COLUMN name TO full_name;", "rename_column"),
        ("ALTER TABLE users RENAME name TO full_name;", "rename_column"),
        ("ALTER TABLE users RENAME TO people;", "rename_table"),
        ("RENAME TABLE users TO people;", "rename_table"),
        ("ALTER TABLE users ADD COLUMN age int NOT NULL;", "add_not_null"),
        ("ALTER TABLE users ADD age int NOT NULL;", "add_not_null"),
        ("ALTER TABLE users ADD COLUMN IF NOT EXISTS age int NOT NULL;", "add_not_null"),
        ("ALTER TABLE users ADD COLUMN id2 int PRIMARY KEY;", "add_not_null"),
    ],
)
def test_each_refused_pattern_is_reported_with_its_rule(sql: str, rule: str) -> None:
    assert rules(sql) == [(1, rule)]


def test_statement_without_trailing_semicolon_is_still_checked() -> None:
    assert rules("CREATE TABLE a (id int);\nDROP TABLE b") == [(2, "drop_table")]


def test_keywords_split_over_lines_and_mixed_case_are_caught() -> None:
    assert rules("Alter\n  Table users\n  Drop\n  Column email;") == [(3, "drop_column")]


def test_each_clause_of_one_alter_table_is_checked_with_its_own_line() -> None:
    sql = (
        "ALTER TABLE users\n"
        "  ADD COLUMN ok int,\n"
        "  ADD COLUMN bad int NOT NULL,\n"
        "  DROP COLUMN gone,\n"
        "  ADD CONSTRAINT c CHECK (ok IN (1, 2));\n"
    )
    assert rules(sql) == [(3, "add_not_null"), (4, "drop_column")]


# --- allowed -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE users ADD COLUMN nickname text;",
        "ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;",
        "ALTER TABLE users ADD COLUMN n int DEFAULT 0 NOT NULL;",
        "ALTER TABLE users ADD COLUMN id2 bigint GENERATED ALWAYS AS IDENTITY NOT NULL;",
        "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric NOT NULL);",
        "CREATE INDEX CONCURRENTLY orders_total ON orders (total);",
        "ALTER TABLE users ALTER COLUMN nickname SET DEFAULT 'x';",
        "ALTER TABLE users ALTER COLUMN nickname DROP NOT NULL;",
        "ALTER TABLE users ALTER COLUMN nickname DROP DEFAULT;",
        "ALTER TABLE users DROP CONSTRAINT users_fk;",
        "ALTER TABLE users ADD CONSTRAINT users_age CHECK (age > 0) NOT VALID;",
        "ALTER TABLE users ADD PRIMARY KEY (id);",
        "ALTER TABLE users RENAME CONSTRAINT a TO b;",
        "DROP INDEX users_email;",
        "INSERT INTO audit (note) VALUES ('ALTER TABLE users DROP COLUMN email');",
    ],
)
def test_backward_compatible_statements_pass(sql: str) -> None:
    assert rules(sql) == []


@pytest.mark.parametrize(
    "sql",
    [
        "-- DROP TABLE users;\nCREATE TABLE a (id int);",
        "/* DROP TABLE users; */ CREATE TABLE a (id int);",
        "/* outer /* DROP TABLE nested; */ still comment; DROP TABLE x; */ SELECT 1;",
        "SELECT 'it''s; DROP TABLE users';",
        "SELECT E'it\\'s; DROP TABLE users';",
        'CREATE TABLE "drop table x; y" (id int);',
        "CREATE FUNCTION f() RETURNS void AS $$ BEGIN DROP TABLE t; END $$ LANGUAGE plpgsql;",
        "CREATE FUNCTION f() RETURNS void AS $fn$ DROP TABLE t; $fn$ LANGUAGE plpgsql;",
    ],
)
def test_comments_and_literals_are_not_taken_for_statements(sql: str) -> None:
    assert rules(sql) == []


def test_masking_keeps_offsets_so_lines_stay_right() -> None:
    sql = "/* a\nb */ SELECT 'x\ny';\n-- c\nDROP TABLE t;"
    masked = mig.mask_sql(sql)
    assert len(masked) == len(sql)
    assert masked.count("\n") == sql.count("\n")
    assert rules(sql) == [(5, "drop_table")]


def test_violation_line_says_what_and_how() -> None:
    (violation,) = mig.check_sql("\n\nALTER TABLE t DROP COLUMN c;", "db/002.sql")
    line = violation.render()
    assert line.startswith("db/002.sql:3: DROP COLUMN")
    assert " — " in line and "later migration" in line


# --- CLI ---------------------------------------------------------------------------------------


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("MIGRATIONS_DIR", "FORCE_MIGRATE")}
    full_env.update(env)
    return subprocess.run(
        [*CHECK, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args],
        check=True, capture_output=True,
    )


BAD = "ALTER TABLE users DROP COLUMN email;\n"
GOOD = "ALTER TABLE users ADD COLUMN nickname text;\n"


def test_no_dir_given_is_clean_with_one_line(tmp_path: Path) -> None:
    proc = run([], tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.count("\n") == 1 and "nothing to check" in proc.stdout


def test_empty_dir_is_clean(tmp_path: Path) -> None:
    proc = run(["--dir", str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "0 SQL file(s)" in proc.stdout


def test_violations_exit_1_listing_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "001_ok.sql").write_text(GOOD)
    (tmp_path / "002_bad.sql").write_text("-- drop it\n" + BAD)
    proc = run([], tmp_path, MIGRATIONS_DIR=str(tmp_path))
    assert proc.returncode == 1
    assert f"{tmp_path}/002_bad.sql:2: DROP COLUMN" in proc.stdout
    assert "001_ok.sql" not in proc.stdout
    assert "FORCE_MIGRATE=1" in proc.stdout


def test_missing_dir_is_bad_input(tmp_path: Path) -> None:
    proc = run(["--dir", str(tmp_path / "nope")], tmp_path)
    assert proc.returncode == 2
    assert "is not a directory" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("how", ["flag", "env"])
def test_force_bypasses_with_exit_0_and_logs(tmp_path: Path, how: str) -> None:
    mig_dir = tmp_path / "migrations"
    mig_dir.mkdir()
    (mig_dir / "001.sql").write_text(BAD)
    log = tmp_path / "bypass.log"
    log.write_text("earlier line\n")
    args = ["--dir", str(mig_dir), "--log", str(log)]
    proc = run(args + ["--force"], tmp_path) if how == "flag" else run(
        args, tmp_path, FORCE_MIGRATE="1"
    )
    assert proc.returncode == 0
    assert "FORCE_MIGRATE bypass" in proc.stderr and "1 backward-incompatible" in proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "earlier line"  # appended, not overwritten
    assert len(lines) == 2 and "FORCE_MIGRATE bypass" in lines[1] and "001.sql:1" in lines[1]


def test_force_on_clean_migrations_logs_nothing(tmp_path: Path) -> None:
    (tmp_path / "001.sql").write_text(GOOD)
    log = tmp_path / "bypass.log"
    proc = run(["--dir", str(tmp_path), "--log", str(log)], tmp_path, FORCE_MIGRATE="1")
    assert proc.returncode == 0
    assert not log.exists() and proc.stderr == ""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo whose first commit holds an old, already-shipped DROP COLUMN migration."""
    root = tmp_path / "repo"
    (root / "db").mkdir(parents=True)
    (root / "db" / "001_old.sql").write_text(BAD)
    (root / "db" / "README").write_text("DROP TABLE in a non-SQL file is not a migration\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "old")
    git(root, "tag", "shipped")
    return root


def test_since_checks_only_files_new_since_the_ref(repo: Path) -> None:
    (repo / "db" / "002_new.sql").write_text(GOOD)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "new")
    proc = run(["--dir", "db", "--since", "shipped"], repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 SQL file(s)" in proc.stdout and "since shipped" in proc.stdout


def test_since_catches_committed_and_untracked_new_files(repo: Path) -> None:
    (repo / "db" / "002_new.sql").write_text("DROP TABLE users;\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "new")
    (repo / "db" / "003_wip.sql").write_text("ALTER TABLE users RENAME TO people;\n")
    proc = run(["--dir", "db", "--since", "shipped"], repo)
    assert proc.returncode == 1
    assert "db/002_new.sql:1: DROP TABLE" in proc.stdout
    assert "db/003_wip.sql:1: renaming a table" in proc.stdout
    assert "001_old" not in proc.stdout


def test_default_since_is_origin_main_when_it_exists(repo: Path) -> None:
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    (repo / "db" / "002_new.sql").write_text(GOOD)
    proc = run(["--dir", "db"], repo)
    assert proc.returncode == 0, proc.stdout
    assert "since origin/main" in proc.stdout


def test_without_origin_main_every_file_is_checked(repo: Path) -> None:
    proc = run(["--dir", "db"], repo)
    assert proc.returncode == 1
    assert "db/001_old.sql:1: DROP COLUMN" in proc.stdout


def test_unknown_since_ref_is_bad_input(repo: Path) -> None:
    proc = run(["--dir", "db", "--since", "no-such-ref"], repo)
    assert proc.returncode == 2
    assert "no-such-ref" in proc.stderr and "not found" in proc.stderr


def test_since_outside_a_git_repo_is_bad_input(tmp_path: Path) -> None:
    proc = run(["--dir", str(tmp_path), "--since", "main"], tmp_path)
    assert proc.returncode == 2
    assert "not in a git repository" in proc.stderr
