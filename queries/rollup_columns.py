"""The rollup views' columns as DuckDB reads their files: (name, DuckDB type) per view.

Written down, not derived when a process starts: deriving them builds every
rollup from an empty batch on a connection of its own and reads the types
back, 80-110 ms of every command that opens the log (docs/benchmarks.md,
issue 13). `derived()` is that derivation; tests/queries/test_rollup_columns.py
checks the table against it, and prints the table anew when a rollup's SQL
has changed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

#: View (`queries.catalog.ROLLUP_VIEWS`) -> its files' columns, in order.
ROLLUP_VIEW_COLUMNS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "outcomes": (
        ("received_hour", "TIMESTAMP WITH TIME ZONE"),
        ("started_hour", "TIMESTAMP WITH TIME ZONE"),
        ("workspace_id", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("destination_id", "VARCHAR"),
        ("integration", "VARCHAR"),
        ("attempt", "SMALLINT"),
        ("outcome", "VARCHAR"),
        ("status_code", "SMALLINT"),
        ("error_class", "VARCHAR"),
        ("error_code", "VARCHAR"),
        ("retryable", "BOOLEAN"),
        ("first_error_class", "VARCHAR"),
        ("replayed", "BOOLEAN"),
        ("records", "BIGINT"),
        ("events", "BIGINT"),
        ("duration_ms_sum", "DOUBLE"),
        ("request_bytes_sum", "BIGINT"),
    ),
    "integration_outcomes": (
        ("received_hour", "TIMESTAMP WITH TIME ZONE"),
        ("started_hour", "TIMESTAMP WITH TIME ZONE"),
        ("integration", "VARCHAR"),
        ("attempt", "SMALLINT"),
        ("outcome", "VARCHAR"),
        ("status_code", "SMALLINT"),
        ("error_class", "VARCHAR"),
        ("error_code", "VARCHAR"),
        ("retryable", "BOOLEAN"),
        ("first_error_class", "VARCHAR"),
        ("replayed", "BOOLEAN"),
        ("records", "BIGINT"),
        ("events", "BIGINT"),
        ("duration_ms_sum", "DOUBLE"),
        ("request_bytes_sum", "BIGINT"),
    ),
    "latency_histogram": (
        ("started_hour", "TIMESTAMP WITH TIME ZONE"),
        ("integration", "VARCHAR"),
        ("bucket", "SMALLINT"),
        ("requests", "BIGINT"),
        ("duration_ms_sum", "DOUBLE"),
        ("duration_ms_max", "DOUBLE"),
    ),
    "destination_latency_histogram": (
        ("started_hour", "TIMESTAMP WITH TIME ZONE"),
        ("workspace_id", "VARCHAR"),
        ("destination_id", "VARCHAR"),
        ("integration", "VARCHAR"),
        ("bucket", "SMALLINT"),
        ("requests", "BIGINT"),
        ("duration_ms_sum", "DOUBLE"),
        ("duration_ms_max", "DOUBLE"),
    ),
    "error_templates": (
        ("started_hour", "TIMESTAMP WITH TIME ZONE"),
        ("workspace_id", "VARCHAR"),
        ("destination_id", "VARCHAR"),
        ("integration", "VARCHAR"),
        ("error_class", "VARCHAR"),
        ("status_code", "SMALLINT"),
        ("error_code", "VARCHAR"),
        ("template", "VARCHAR"),
        ("requests", "BIGINT"),
        ("last_seen", "TIMESTAMP WITH TIME ZONE"),
        ("example", "VARCHAR"),
    ),
    "delay_histogram": (
        ("received_hour", "TIMESTAMP WITH TIME ZONE"),
        ("started_hour", "TIMESTAMP WITH TIME ZONE"),
        ("integration", "VARCHAR"),
        ("attempt", "SMALLINT"),
        ("bucket", "SMALLINT"),
        ("deliveries", "BIGINT"),
        ("events", "BIGINT"),
        ("delay_ms_sum", "DOUBLE"),
        ("delay_ms_max", "DOUBLE"),
    ),
    "destination_delay_histogram": (
        ("received_hour", "TIMESTAMP WITH TIME ZONE"),
        ("started_hour", "TIMESTAMP WITH TIME ZONE"),
        ("workspace_id", "VARCHAR"),
        ("destination_id", "VARCHAR"),
        ("integration", "VARCHAR"),
        ("attempt", "SMALLINT"),
        ("bucket", "SMALLINT"),
        ("deliveries", "BIGINT"),
        ("events", "BIGINT"),
        ("delay_ms_sum", "DOUBLE"),
        ("delay_ms_max", "DOUBLE"),
    ),
    "redeliveries": (
        ("received_hour", "TIMESTAMP WITH TIME ZONE"),
        ("workspace_id", "VARCHAR"),
        ("destination_id", "VARCHAR"),
        ("integration", "VARCHAR"),
        ("job_id", "VARCHAR"),
        ("replay_of", "VARCHAR"),
        ("message_id", "VARCHAR"),
        ("event_count", "INTEGER"),
        ("deliveries", "BIGINT"),
        ("unanswered", "BIGINT"),
        ("may_count", "BOOLEAN"),
        ("earlier_deliveries", "BIGINT"),
        ("earlier_unanswered", "BIGINT"),
    ),
    "message_index": (
        ("message_hash", "BIGINT"),
        ("destination_id", "VARCHAR"),
        ("first", "BOOLEAN"),
        ("outcome", "VARCHAR"),
    ),
}


def derived(rollup_views: Mapping[str, str]) -> dict[str, tuple[tuple[str, str], ...]]:
    """The columns the rollups' SQL gives today for each view of `rollup_views` (view -> rollup,
    `queries.catalog.ROLLUP_VIEWS`), read through DuckDB as a view reads the files."""
    import duckdb

    from ingest.rollup import rollup_schemas
    from ingest.schema import empty_table

    schemas = rollup_schemas()
    columns = {}
    with duckdb.connect(":memory:") as scratch:
        for view, rollup in rollup_views.items():
            relation = scratch.from_arrow(empty_table(schemas[rollup]))
            columns[view] = tuple(
                (name, str(sql_type)) for name, sql_type in zip(relation.columns, relation.types, strict=True)
            )
    return columns
