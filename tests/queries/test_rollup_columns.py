"""The rollup views' columns written down in `queries.rollup_columns` are the ones the rollups' SQL gives."""

from __future__ import annotations

from queries.catalog import ROLLUP_VIEWS
from queries.rollup_columns import ROLLUP_VIEW_COLUMNS, derived


def test_the_written_columns_are_those_the_rollups_sql_gives() -> None:
    # After changing a rollup's SQL: `python -m queries.rollup_columns` prints the new table.
    assert derived() == ROLLUP_VIEW_COLUMNS


def test_every_rollup_view_has_its_columns() -> None:
    assert set(ROLLUP_VIEW_COLUMNS) == set(ROLLUP_VIEWS)
