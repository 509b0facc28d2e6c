"""The attempt-log contract in `ingest.schema`: names, types, and what `conform` refuses."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from ingest.files import attempts_glob
from ingest.schema import (
    ATTEMPT_SCHEMA,
    COLUMN_NAMES,
    COLUMNS,
    SchemaError,
    conform,
    empty_table,
    json_lines_to_table,
    rows_to_table,
)
from ingest.taxonomy import ErrorClass, Outcome
from ingest.writer import AttemptLogWriter, write_partitioned
from tests.ingest.rows import attempt_row

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 3, 10, 12, 30, tzinfo=dt.UTC)

CONTRACT_NAMES = (
    "attempt_id",
    "job_id",
    "attempt",
    "workspace_id",
    "source_id",
    "destination_id",
    "integration",
    "event_count",
    "events",
    "received_at",
    "started_at",
    "duration_ms",
    "status_code",
    "error_class",
    "error_code",
    "retryable",
    "outcome",
    "retry_after_s",
    "next_attempt_at",
    "request_bytes",
    "response_body",
    "error_message",
    # Added after the contract's columns.
    "first_error_class",
    "replay_of",
)
NULLABLE = {
    "duration_ms",
    "status_code",
    "error_code",
    "retry_after_s",
    "next_attempt_at",
    "request_bytes",
    "response_body",
    "error_message",
    "first_error_class",
    "replay_of",
}


@pytest.fixture
def table() -> pa.Table:
    return rows_to_table([attempt_row(1, T0), attempt_row(2, T0 + dt.timedelta(seconds=1))])


def replaced(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """`table` with column `name` swapped for plain `values` (no schema)."""
    columns = {n: table.column(n) for n in table.column_names}
    columns[name] = values
    return pa.table(columns)


def test_column_names_in_contract_order() -> None:
    assert COLUMN_NAMES == CONTRACT_NAMES
    assert tuple(ATTEMPT_SCHEMA.names) == CONTRACT_NAMES


def test_nullability_follows_the_contract() -> None:
    assert {f.name for f in ATTEMPT_SCHEMA if f.nullable} == NULLABLE


def test_every_column_is_documented() -> None:
    assert all(c.doc.strip() and c.sql_type for c in COLUMNS)


def test_error_class_and_outcome_docs_list_every_value() -> None:
    docs = {c.name: c.doc for c in COLUMNS}
    for value in ErrorClass:
        assert re.search(rf"\b{value}\b", docs["error_class"]), value
    for value in Outcome:
        assert re.search(rf"\b{value}\b", docs["outcome"]), value


@pytest.fixture(scope="module")
def duckdb_types(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Column types as DuckDB describes a file the writer published."""
    data_dir = tmp_path_factory.mktemp("described")
    write_partitioned(rows_to_table([attempt_row(1, T0)]), data_dir)
    con = duckdb.connect()
    relation = con.read_parquet(attempts_glob(data_dir), hive_partitioning=False)
    return dict(zip(relation.columns, [str(t) for t in relation.types], strict=True))


def test_duckdb_sees_exactly_the_contract_columns(duckdb_types: dict[str, str]) -> None:
    assert tuple(duckdb_types) == CONTRACT_NAMES


def _sql_type_params() -> list[object]:
    return [pytest.param(column, id=column.name) for column in COLUMNS]


@pytest.mark.parametrize("column", _sql_type_params())
def test_duckdb_type_is_the_documented_sql_type(column, duckdb_types: dict[str, str]) -> None:
    assert duckdb_types[column.name] == column.sql_type


def test_duckdb_describe_agrees_with_relation_types(tmp_path: Path) -> None:
    write_partitioned(rows_to_table([attempt_row(1, T0)]), tmp_path)
    described = (
        duckdb.connect()
        .execute(
            "DESCRIBE SELECT * FROM read_parquet($glob, hive_partitioning = false)",
            {"glob": attempts_glob(tmp_path)},
        )
        .fetchall()
    )
    scalar = [c for c in COLUMNS if c.name != "events"]
    assert [(name, sql_type) for name, sql_type, *_ in described if name != "events"] == [
        (c.name, c.sql_type) for c in scalar
    ]


def test_conform_returns_the_contract_schema(table: pa.Table) -> None:
    shuffled = table.select(list(reversed(table.column_names)))
    widened = replaced(shuffled, "attempt", pa.array([1, 1], pa.int64()))
    extra = widened.append_column("colour", pa.array(["red", "blue"]))
    result = conform(extra)
    assert result.schema.equals(ATTEMPT_SCHEMA)
    assert result.equals(table)


def test_conform_accepts_a_record_batch(table: pa.Table) -> None:
    batch = table.to_batches()[0]
    assert conform(batch).equals(table)


def test_conform_converts_other_time_zones_to_the_same_instant(table: pa.Table) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    local = pa.array([T0.astimezone(plus_two)] * 2, pa.timestamp("us", tz="+02:00"))
    result = conform(replaced(table, "started_at", local))
    assert result.column("started_at").to_pylist() == [T0, T0]


def test_times_are_kept_to_the_millisecond() -> None:
    fine = T0 + dt.timedelta(seconds=1, microseconds=234_567)
    row = attempt_row(1, fine) | {"received_at": fine, "next_attempt_at": fine}
    stored = rows_to_table([row]).to_pylist()[0]
    kept = T0 + dt.timedelta(seconds=1, milliseconds=234)
    assert (stored["received_at"], stored["started_at"], stored["next_attempt_at"]) == (kept, kept, kept)


def test_durations_are_rounded_to_a_tenth_of_a_millisecond(table: pa.Table) -> None:
    exact = pa.array([12.3456, 0.04], pa.float64())
    result = conform(replaced(table, "duration_ms", exact)).column("duration_ms").to_pylist()
    assert result == pytest.approx([12.3, 0.0], abs=1e-6)


def test_times_survive_a_parquet_round_trip_as_timestamptz(tmp_path: Path) -> None:
    fine = T0 + dt.timedelta(microseconds=987_654)
    write_partitioned(rows_to_table([attempt_row(1, fine)]), tmp_path)
    rows = duckdb.sql(
        f"SELECT typeof(started_at) AS type, started_at FROM read_parquet('{attempts_glob(tmp_path)}')"
    ).fetchall()
    assert rows == [("TIMESTAMP WITH TIME ZONE", T0 + dt.timedelta(milliseconds=987))]


@pytest.mark.parametrize("missing", [["outcome"], ["attempt_id", "error_message"]])
def test_conform_names_missing_columns(table: pa.Table, missing: list[str]) -> None:
    with pytest.raises(SchemaError) as info:
        conform(table.drop_columns(missing))
    for name in missing:
        assert name in str(info.value)


@pytest.mark.parametrize("name", sorted(set(CONTRACT_NAMES) - NULLABLE))
def test_conform_names_null_in_non_nullable_column(table: pa.Table, name: str) -> None:
    nulls = pa.nulls(2, ATTEMPT_SCHEMA.field(name).type)
    with pytest.raises(SchemaError, match=f"column '{name}' has 2 NULL"):
        conform(replaced(table, name, nulls))


@pytest.mark.parametrize("name", sorted(NULLABLE))
def test_conform_accepts_null_in_nullable_column(table: pa.Table, name: str) -> None:
    nulls = pa.nulls(2, ATTEMPT_SCHEMA.field(name).type)
    assert conform(replaced(table, name, nulls)).column(name).null_count == 2


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("attempt", pa.array(["one", "two"])),
        ("attempt", pa.array([1, 100_000])),
        ("event_count", pa.array([1.5, 2.0])),
        ("started_at", pa.array([True, False])),
        ("events", pa.array(["a", "b"])),
    ],
    ids=["text-to-int", "overflow", "fraction", "bool-to-time", "text-to-list"],
)
def test_conform_names_impossible_cast(table: pa.Table, name: str, values: pa.Array) -> None:
    with pytest.raises(SchemaError, match=f"column '{name}' cannot hold its values"):
        conform(replaced(table, name, values))


def test_schema_error_is_a_value_error() -> None:
    assert issubclass(SchemaError, ValueError)


def test_rows_to_table_builds_the_contract_table() -> None:
    result = rows_to_table([attempt_row(1, T0)])
    assert result.schema.equals(ATTEMPT_SCHEMA)
    assert result.to_pylist()[0]["events"] == [
        {"message_id": "msg-1", "type": "track", "name": "Order Completed"}
    ]


def test_rows_to_table_of_nothing_is_empty() -> None:
    result = rows_to_table([])
    assert result.num_rows == 0
    assert result.schema.equals(ATTEMPT_SCHEMA)


def test_rows_to_table_names_unknown_columns() -> None:
    rows = [attempt_row(1, T0), attempt_row(2, T0, colour="red", Outcome="x")]
    with pytest.raises(SchemaError, match=r"unknown attempt column\(s\): Outcome, colour"):
        rows_to_table(rows)


def test_rows_to_table_rejects_wrong_types() -> None:
    with pytest.raises(SchemaError, match="do not match the contract"):
        rows_to_table([attempt_row(1, T0, attempt="first")])


def test_rows_to_table_names_missing_non_nullable_column() -> None:
    row = attempt_row(1, T0)
    del row["outcome"]
    with pytest.raises(SchemaError, match="outcome"):
        rows_to_table([row])


def test_writer_rejects_incomplete_rows_at_write_time(tmp_path: Path) -> None:
    incomplete = attempt_row(1, T0)
    del incomplete["outcome"]
    writer = AttemptLogWriter(tmp_path)
    with pytest.raises(SchemaError, match="outcome"):
        writer.write([incomplete])
    writer.write([attempt_row(2, T0)])
    writer.close()
    assert writer.rows_written == 1


def test_every_column_appears_in_the_attempt_log_doc() -> None:
    doc = REPO / "docs" / "attempt-log.md"
    if not doc.exists():
        pytest.skip("docs/attempt-log.md is not written yet")
    text = doc.read_text(encoding="utf-8")
    missing = [name for name in COLUMN_NAMES if not re.search(rf"\b{name}\b", text)]
    assert missing == []


def _json_lines(rows: list[dict[str, object]]) -> bytes:
    """Rows in the queue outbox's form: JSON lines, times as epoch microseconds."""
    from delivery.queue.sqlite import encode_record

    return "\n".join(encode_record(row) for row in rows).encode()


def test_json_lines_give_the_same_table_as_rows() -> None:
    fine = T0 + dt.timedelta(microseconds=123_456)
    rows = [attempt_row(1, fine), attempt_row(2, T0, outcome="retry", next_attempt_at=fine)]
    assert json_lines_to_table(_json_lines(rows)).equals(rows_to_table(rows))


def test_json_lines_of_nothing_are_an_empty_table() -> None:
    assert json_lines_to_table(b"").schema.equals(ATTEMPT_SCHEMA)


def test_json_lines_refuse_a_key_outside_the_contract() -> None:
    data = _json_lines([attempt_row(1, T0)]).replace(b'{"attempt_id"', b'{"secret":"x","attempt_id"', 1)
    with pytest.raises(SchemaError, match="do not match the contract"):
        json_lines_to_table(data)


def test_json_lines_read_the_non_finite_floats_json_writes() -> None:
    # The outbox writes a non-finite float the `json` way (NaN, Infinity), not valid JSON.
    data = _json_lines([attempt_row(1, T0, duration_ms=float("inf"))])
    assert b"Infinity" in data
    assert json_lines_to_table(data).column("duration_ms").to_pylist() == [float("inf")]


def test_json_lines_refuse_what_is_not_json() -> None:
    with pytest.raises(SchemaError, match="do not match the contract"):
        json_lines_to_table(b'{"attempt_id": "a", oops}')


def test_json_lines_read_a_record_longer_than_the_readers_block() -> None:
    events = [{"message_id": f"m-{i:07d}", "type": "track", "name": "x" * 40} for i in range(20_000)]
    rows = [attempt_row(1, T0), attempt_row(2, T0, events=events, event_count=len(events))]
    data = _json_lines(rows)
    assert len(data) > 1 << 20
    assert json_lines_to_table(data).equals(rows_to_table(rows))


def test_empty_table_is_the_schema_with_no_rows() -> None:
    table = empty_table(ATTEMPT_SCHEMA)
    assert table.num_rows == 0
    assert table.equals(ATTEMPT_SCHEMA.empty_table(), check_metadata=True)
