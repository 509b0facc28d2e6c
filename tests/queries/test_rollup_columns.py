"""The rollup views' columns written down in `queries.rollup_columns` are the ones the rollups' SQL gives."""

from __future__ import annotations

import pprint

from queries.catalog import ROLLUP_VIEWS
from queries.rollup_columns import ROLLUP_VIEW_COLUMNS, derived


def test_the_written_columns_are_those_the_rollups_sql_gives() -> None:
    today = derived(ROLLUP_VIEWS)
    # After changing a rollup's SQL: the table to write in queries/rollup_columns.py.
    assert today == ROLLUP_VIEW_COLUMNS, pprint.pformat(today, width=110, sort_dicts=False)


def test_every_rollup_view_has_its_columns() -> None:
    assert set(ROLLUP_VIEW_COLUMNS) == set(ROLLUP_VIEWS)
