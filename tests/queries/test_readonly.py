"""The guard: what DuckDB's parser makes of a text decides whether it runs, and what runs."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from queries import QueryError
from queries.readonly import REFUSED_FUNCTIONS, read_only_statement


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(":memory:") as opened:
        yield opened


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("SELECT 1", "SELECT 1"),
        ("-- a comment first\nSELECT 1;", "-- a comment first\nSELECT 1;"),
        ("WITH a AS (SELECT 1) SELECT * FROM a", "WITH a AS (SELECT 1) SELECT * FROM a"),
        ("FROM range(3)", "FROM range(3)"),
        ("VALUES (1), (2)", "VALUES (1), (2)"),
        ("DESCRIBE SELECT 1", "DESCRIBE SELECT 1"),
        ("SUMMARIZE SELECT 1", "SUMMARIZE SELECT 1"),
        ("SHOW TABLES", "SHOW TABLES"),
        ("PIVOT (SELECT 1 AS a) ON a IN (1, 2) USING count(*)", None),
        ("EXPLAIN SELECT 1", "EXPLAIN SELECT 1"),
        ("explain analyze SELECT 1", "EXPLAIN ANALYZE SELECT 1"),
        ("EXPLAIN ANALYSE SELECT 1", "EXPLAIN ANALYZE SELECT 1"),
        ("EXPLAIN ANALYZE (SELECT 1)", "EXPLAIN ANALYZE (SELECT 1)"),
        # Comments are no part of what runs: the statement is built from the parts the tokens show.
        ("/* why */ EXPLAIN -- how\n ANALYZE /* ) */ SELECT 1", "EXPLAIN ANALYZE SELECT 1"),
        ("EXPLAIN DESCRIBE SELECT 1", "EXPLAIN DESCRIBE SELECT 1"),
        ("SELECT '; DROP VIEW attempts' AS text", "SELECT '; DROP VIEW attempts' AS text"),
    ],
)
def test_reads_are_accepted(con: duckdb.DuckDBPyConnection, text: str, runs: str | None) -> None:
    assert read_only_statement(con, text) == (text if runs is None else runs)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # The bypass of the regular expression this guard replaces: the comment
        # hid the closing parenthesis, and COPY ran.
        ("EXPLAIN (FORMAT json /* ) */) COPY (SELECT 1) TO 'x.csv'", "no option list"),
        ("EXPLAIN (ANALYZE false) SELECT 1", "no option list"),
        ("EXPLAIN (SELECT 1)", "no option list"),
        ("EXPLAIN COPY (SELECT 1) TO 'x.csv'", "EXPLAIN runs here only for SELECT queries"),
        ("EXPLAIN ANALYZE /* SELECT */ CREATE TABLE t AS SELECT 1", "not CREATE statements"),
        ("EXPLAIN ANALYZE PREPARE p AS SELECT 1", "not PREPARE statements"),
        ("EXPLAIN ANALYZE SELECT * FROM query('SELECT 1')", r"query\(\) is not allowed"),
        ("EXPLAIN", "does not parse"),
        ("COPY (SELECT 1) TO 'x.csv'", "COPY statement"),
        ("CREATE TABLE t AS SELECT 1", "CREATE statement"),
        ("CREATE TEMP TABLE t AS SELECT 1", "CREATE statement"),
        ("CREATE OR REPLACE VIEW outcomes AS SELECT 1", "CREATE statement"),
        ("CREATE OR REPLACE MACRO in_scope(a, b, c, d, e) AS true", "CREATE statement"),
        ("CREATE SECRET s (TYPE s3)", "CREATE statement"),
        ("DROP VIEW outcomes", "DROP statement"),
        ("ALTER VIEW outcomes RENAME TO gone", "ALTER statement"),
        ("COMMENT ON VIEW outcomes IS 'x'", "ALTER statement"),
        ("INSERT INTO t VALUES (1)", "INSERT statement"),
        ("UPDATE t SET a = 1", "UPDATE statement"),
        ("DELETE FROM t", "DELETE statement"),
        ("TRUNCATE t", "DELETE statement"),
        ("MERGE INTO t USING (SELECT 1 AS a) s ON t.a = s.a WHEN MATCHED THEN DELETE", "MERGE INTO"),
        ("ATTACH ':memory:' AS other", "ATTACH statement"),
        ("DETACH other", "DETACH statement"),
        ("USE other", "SET statement"),
        ("SET threads = 1", "SET statement"),
        ("RESET threads", "SET statement"),
        ("SET VARIABLE x = 1", "SET statement"),
        ("PRAGMA version", "PRAGMA statement"),
        ("PRAGMA enable_profiling", "PRAGMA statement"),
        ("IMPORT DATABASE 'somewhere'", "PRAGMA statement"),
        ("EXPORT DATABASE 'somewhere'", "EXPORT statement"),
        ("CALL pragma_version()", "CALL statement"),
        ("CHECKPOINT", "CALL statement"),
        ("VACUUM", "VACUUM statement"),
        ("INSTALL httpfs", "LOAD statement"),
        ("LOAD httpfs", "LOAD statement"),
        ("UPDATE EXTENSIONS", "only read-only statements"),
        ("PREPARE p AS SELECT 1", "PREPARE statement"),
        ("EXECUTE p", "EXECUTE statement"),
        ("DEALLOCATE p", "DROP statement"),
        ("BEGIN", "TRANSACTION statement"),
        ("ANALYZE", "VACUUM statement"),
        # PIVOT without an IN list creates an ENUM type before it reads.
        ("PIVOT (SELECT 1 AS a) ON a USING count(*)", "MULTI statement"),
        ("SELECT 1; SELECT 2", "one statement at a time: got 2"),
        ("SELECT 1; DROP VIEW attempts", "one statement at a time"),
        ("SELECT 1 /* ; */ ; CREATE TABLE t AS SELECT 1", "one statement at a time"),
        ("", "no SQL statement"),
        (";", "no SQL statement"),
        ("-- nothing", "no SQL statement"),
        ("SELEKT 1", "does not parse"),
        ("SELECT * FROM query('CREATE TABLE t AS SELECT 1')", r"query\(\) is not allowed"),
        ("SELECT (SELECT count(*) FROM query_table('outcomes'))", r"query_table\(\) is not allowed"),
        (
            "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
            r"json_execute_serialized_sql\(\) is not allowed",
        ),
        ("FROM enable_logging(storage := 'file', storage_path := 'logs')", r"enable_logging\(\)"),
        ("FROM enable_profiling(save_location := 'profile.json')", r"enable_profiling\(\)"),
        ("SELECT * FROM range(1) WHERE EXISTS (FROM checkpoint())", r"checkpoint\(\)"),
        ("SELECT WRITE_LOG('x')", r"write_log\(\)"),
        ("FROM add_grammar_extension('x')", r"add_grammar_extension\(\)"),
    ],
)
def test_everything_else_is_refused(con: duckdb.DuckDBPyConnection, text: str, problem: str) -> None:
    with pytest.raises(QueryError, match=problem):
        read_only_statement(con, text)


def test_the_refused_functions_exist_in_this_duckdb(con: duckdb.DuckDBPyConnection) -> None:
    # A name DuckDB dropped or renamed would refuse nothing: the list must follow the version.
    known = {row[0] for row in con.execute("SELECT function_name FROM duckdb_functions()").fetchall()}
    assert sorted(REFUSED_FUNCTIONS - known) == []
