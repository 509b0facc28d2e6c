"""The SQL escape suite: what tried, or might try, to write, define or read outside the log, and bombs.

Every SQL surface runs every case: `AttemptLog.sql` (tests/queries/test_escapes.py),
`deliverydash sql` one-shot and at its prompt (tests/deliverydash/test_sql_escapes.py)
and the dashboard's SQL console (tests/app/test_sql_console.py). For an escape, the
surface must refuse with a message matching `refusal`, and afterwards the data
directory and the directory outside it must be as they were (`tree`), and the pages'
views answer as before. For a bomb, the surface must stop it with its limit's message,
and the process running it, with everything it started, must have stayed under 2 GiB
(`measured`: the peak resident size of a subprocess and its waited-for descendants).

SQL texts hold placeholders, filled by `Places.fill`: `{data_dir}`, `{attempts}` (the
log's own directory, the one place a sandboxed COPY could write), `{outside}` (a
directory beside the data directory with a secret in it) and `{temp}` (DuckDB's default
temporary directory, `.tmp` under the working directory, with a file in it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SECRET = "secret-outside-the-log"
#: A surface's process, with its worker, must stay under this.
PROCESS_LIMIT = 2 * 1024**3
#: What the pages' connection and the sandbox's catalog hold, to compare before and after.
CATALOG = """
    SELECT 'view' AS kind, view_name AS name, sql FROM duckdb_views() WHERE NOT internal
    UNION ALL SELECT 'table', table_name, sql FROM duckdb_tables()
    UNION ALL SELECT function_type, function_name, macro_definition FROM duckdb_functions()
        WHERE function_type IN ('macro', 'table_macro') AND NOT internal
    ORDER BY ALL
"""

#: The time limit the time bombs run under, in seconds; the others get a long one, so that
#: on a busy machine they meet the limit they aim at, not the clock.
SHORT_TIMEOUT_S = 2.0
LONG_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Places:
    """The directories an escape aims at."""

    data_dir: Path
    outside: Path
    workdir: Path
    """The surface's working directory: DuckDB's default temp directory `.tmp` would be in it."""

    def fill(self, sql: str) -> str:
        return sql.format(
            data_dir=self.data_dir,
            attempts=self.data_dir / "attempts",
            outside=self.outside,
            temp=self.workdir / ".tmp",
        )


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    refusal: str
    """A regular expression the surface's message must match."""
    timeout_s: float = LONG_TIMEOUT_S
    """The time limit to run a bomb with."""


#: The sandbox's own refusal of a file outside the log's directories.
OUTSIDE = "disabled by configuration"

ESCAPES = [
    # Writing files.
    Case(
        "copy-into-the-log",
        "COPY (SELECT 1 AS a) TO '{attempts}/date=2026-11-27/hour=00/x.parquet'",
        "COPY statement",
    ),
    Case(
        "explain-option-list-hides-copy",
        "EXPLAIN (FORMAT json /* ) */) COPY (SELECT 1 AS a) TO '{attempts}/x.csv'",
        "no option list",
    ),
    Case(
        "explain-analyze-copy",
        "EXPLAIN ANALYZE /* SELECT */ COPY (SELECT 1) TO '{outside}/x.csv'",
        "COPY statement",
    ),
    Case("export-database", "EXPORT DATABASE '{outside}/export'", "EXPORT statement"),
    Case("attach-a-file", "ATTACH '{outside}/other.duckdb' AS other", "ATTACH statement"),
    Case("profiling-output", "PRAGMA profiling_output = '{attempts}/profile.json'", "SET statement"),
    Case(
        "logging-to-a-file",
        "FROM enable_logging(storage := 'file', storage_path := '{attempts}')",
        "enable_logging",
    ),
    Case("prepare-a-copy", "PREPARE p AS COPY (SELECT 1) TO '{attempts}/p.csv'", "PREPARE statement"),
    Case("execute-a-prepared", "EXECUTE p", "EXECUTE statement"),
    # Defining and changing what other viewers see.
    Case("create-table", "CREATE TABLE t AS SELECT 1 AS a", "CREATE statement"),
    Case("create-temp-view", "CREATE TEMP VIEW outcomes AS SELECT 1 AS a", "CREATE statement"),
    Case("replace-a-view", "CREATE OR REPLACE VIEW outcomes AS SELECT * FROM attempts", "CREATE statement"),
    Case(
        "replace-the-scope-macro",
        "CREATE OR REPLACE MACRO in_scope(a, b, c, d, e) AS true",
        "CREATE statement",
    ),
    Case("drop-a-view", "DROP VIEW outcomes", "DROP statement"),
    Case("second-statement", "SELECT 1; DROP VIEW outcomes", "one statement at a time"),
    Case(
        "semicolon-in-a-comment",
        "SELECT 1 /* ; */ ; CREATE OR REPLACE VIEW outcomes AS SELECT 1",
        "one statement",
    ),
    Case(
        "explain-option-list-hides-create", "EXPLAIN (ANALYZE) CREATE TABLE t AS SELECT 1", "no option list"
    ),
    Case(
        "explain-analyze-create", "EXPLAIN ANALYZE -- SELECT\nCREATE TABLE t AS SELECT 1", "CREATE statement"
    ),
    Case("pivot-creates-a-type", "PIVOT (SELECT 1 AS a) ON a USING count(*)", "MULTI statement"),
    Case("sql-in-a-string", "SELECT * FROM query('CREATE TABLE t AS SELECT 1')", r"query\(\) is not allowed"),
    Case("set-a-setting", "SET enable_external_access = true", "SET statement"),
    Case("move-the-temp-directory", "SET temp_directory = '{attempts}'", "SET statement"),
    Case("use-another-schema", "USE temp", "SET statement"),
    Case("install", "INSTALL httpfs", "LOAD statement"),
    Case("load", "LOAD httpfs", "LOAD statement"),
    Case("call", "CALL pragma_version()", "CALL statement"),
    Case("checkpoint", "CHECKPOINT", "CALL statement"),
    Case("vacuum", "VACUUM", "VACUUM statement"),
    Case("update-extensions", "UPDATE EXTENSIONS", "read-only statements"),
    # Reading outside the log.
    Case("read-etc", "SELECT * FROM read_csv('/etc/passwd')", OUTSIDE),
    Case("read-outside", "SELECT * FROM read_text('{outside}/secret.txt')", OUTSIDE),
    Case("read-the-engine-state", "SELECT * FROM read_blob('{data_dir}/queue.sqlite3')", OUTSIDE),
    Case("read-up-from-the-log", "SELECT * FROM read_text('{attempts}/../queue.sqlite3')", OUTSIDE),
    Case("list-the-data-dir", "SELECT * FROM glob('{data_dir}/*')", OUTSIDE),
    Case("list-everything", "SELECT * FROM glob('/**')", OUTSIDE),
    Case("read-json-outside", "SELECT * FROM read_json('{outside}/secret.json')", OUTSIDE),
    Case("sniff-outside", "SELECT * FROM sniff_csv('{outside}/secret.txt')", OUTSIDE),
    Case("replacement-scan", "SELECT * FROM '{outside}/secret.csv'", OUTSIDE),
    Case("parquet-outside", "SELECT * FROM parquet_metadata('{outside}/secret.parquet')", OUTSIDE),
    Case("read-a-database", "SELECT * FROM read_duckdb('{outside}/other.duckdb')", OUTSIDE),
    Case("read-the-temp-directory", "SELECT * FROM read_text('{temp}/leak.txt')", OUTSIDE),
    Case("list-the-temp-directory", "SELECT * FROM glob('{temp}/*')", OUTSIDE),
    Case("read-the-relative-temp-directory", "SELECT * FROM read_text('.tmp/leak.txt')", OUTSIDE),
]

MEMORY = "memory limit"
TIME = "time limit"
SIZE = "result size limit"

BOMBS = [
    # DuckDB's memory_limit does not count these: they grew past 4 GiB under 512 MB.
    Case("repeat-string", "SELECT length(repeat('x', 4000000000)) AS n", MEMORY),
    Case("range-list", "SELECT len(range(1000000000)) AS n", MEMORY),
    Case("list-aggregate", "SELECT len(list(i)) AS n FROM range(1000000000) t(i)", MEMORY),
    Case("list-of-strings", "SELECT len(list(repeat('x', 100000))) AS n FROM range(100000)", MEMORY),
    Case(
        "doubling-string",
        "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r WHERE length(s) < 2000000000) "
        "SELECT max(length(s)) AS n FROM r",
        MEMORY,
    ),
    # A sort that would spill: there is no temp directory to spill to.
    Case("sort", "SELECT i FROM range(300000000) t(i) ORDER BY random()", MEMORY),
    Case(
        "cross-join",
        "SELECT count(*) AS n FROM range(100000) a, range(100000) b WHERE a.range + b.range = 3",
        TIME,
        SHORT_TIMEOUT_S,
    ),
    Case("endless-range", "SELECT sum(hash(i)) AS n FROM range(1000000000000) t(i)", TIME, SHORT_TIMEOUT_S),
    Case("wide-result", "SELECT repeat('x', 10000) AS s FROM range(100000)", SIZE),
]


def ids(cases: list[Case]) -> list[str]:
    return [case.id for case in cases]


def make_places(root: Path, data_dir: Path) -> Places:
    """The escapes' targets beside `data_dir`, under `root`: a secret outside, a file in `.tmp`."""
    outside = root / "outside"
    outside.mkdir()
    for name in ("secret.txt", "secret.json", "secret.csv", "secret.parquet"):
        (outside / name).write_text(f'"{SECRET}"\n')
    workdir = root / "workdir"
    (workdir / ".tmp").mkdir(parents=True)
    (workdir / ".tmp" / "leak.txt").write_text(SECRET)
    (data_dir / "queue.sqlite3").write_text(SECRET)
    return Places(data_dir=data_dir, outside=outside, workdir=workdir)


def tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under `roots`: (size, modification time); what a write would change."""
    found: dict[str, tuple[int, int]] = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            stat = path.lstat()
            found[str(path)] = (stat.st_size if path.is_file() else 0, stat.st_mtime_ns)
    return found


@dataclass(frozen=True)
class Measured:
    """What a subprocess printed, and the peak resident size of it and all it started and waited for."""

    returncode: int
    stdout: str
    stderr: str
    peak_bytes: int


_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], input=sys.stdin.read(), capture_output=True, text=True, check=False)
print(json.dumps({"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                  "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def measured(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, input: str = ""
) -> Measured:
    """Run `argv` under a parent that reads its peak resident size (its workers' included) when it ends."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv],
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout)
    return Measured(result["returncode"], result["stdout"], result["stderr"], result["peak_kib"] * 1024)
