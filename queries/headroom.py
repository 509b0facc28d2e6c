"""Hours a destination's traffic reached its rate limit: `destination_hours.sql` against the limits.

The attempt log does not hold rate limits (they are the engine's configuration), so the caller
passes them: `deliverydash status` and the dashboard take them from the engine's
`GET /admin/status` (`limit_per_s` of each destination). An hour is *over the limit* when

- the partner answered 429 at least once in it (it said so), or
- the requests started in it reached `AT_LIMIT_FRACTION` of the limit x 3600: the engine's meter
  never sends faster than the limit, so a customer whose traffic exceeds it shows as requests
  pinned at (just under) it, with a backlog growing behind.

See docs/backlog.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import polars as pl

#: Requests in an hour at or above this share of the limit x 3600 count as at the limit.
AT_LIMIT_FRACTION: Final = 0.9


def hours_over_limit(per_hour: pl.DataFrame, limits: Mapping[str, float | None]) -> pl.DataFrame:
    """`per_hour` (`destination_hours.sql`) with `limit_per_hour` (null: no limit known), `use_pct`
    (requests in % of it) and `over` (see the module docstring), for the destinations in `limits`."""
    known = pl.DataFrame(
        {"destination_id": list(limits), "limit_per_s": [limits[d] for d in limits]},
        schema={"destination_id": pl.String, "limit_per_s": pl.Float64},
    )
    capacity = pl.col("limit_per_s") * 3600
    return (
        per_hour.join(known, on="destination_id", how="inner")
        .with_columns(capacity.alias("limit_per_hour"))
        .with_columns((100 * pl.col("requests") / pl.col("limit_per_hour")).alias("use_pct"))
        .with_columns(
            (
                (pl.col("rate_limited") > 0)
                | (pl.col("requests") >= AT_LIMIT_FRACTION * pl.col("limit_per_hour")).fill_null(False)
            ).alias("over")
        )
        .drop("limit_per_s")
        .sort("destination_id", "hour")
    )


def count_over(hours: pl.DataFrame) -> dict[str, int]:
    """Hours over the limit per destination, from `hours_over_limit`'s result (0 for none)."""
    counts = hours.group_by("destination_id").agg(pl.col("over").sum().alias("hours"))
    return {row["destination_id"]: int(row["hours"]) for row in counts.iter_rows(named=True)}
