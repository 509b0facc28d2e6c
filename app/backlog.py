"""The customer page's "Backlog and headroom" section: the live engine's backlog of one workspace.

Not a page of its own: the customer page (`app/views/customer.py`) calls `section`. The numbers
come from the engine (`app.engine_status`, filtered to the workspace there) and the hours over the
limit from the attempt log (`queries/destination_hours.sql` through `app.data`, scoped to the
workspace). docs/backlog.md.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import streamlit as st

from app import data, engine_status
from queries.headroom import hours_over_limit
from queries.scope import Scope


def section(scope: Scope) -> None:
    """Per destination of `scope`'s workspace: waiting, rates against the limit, drain, hours over."""
    live = engine_status.backlog(scope.value or "")
    if live.error is not None:
        st.info(
            f"No live backlog: {live.error}. Start the dashboard with the engine's config "
            "(`deliverydash dashboard --config deliverydash.toml`) to see it."
        )
        return
    if not live.rows:
        st.caption("The engine has no destination of this workspace.")
        return
    whose = (
        "one engine of a fleet: jobs waiting are the fleet's, rates this engine's own"
        if live.scope == "engine"
        else "the engine"
    )
    st.caption(
        f"Live from {whose}; rates over the last {live.window_s:g} s. Time to drain = jobs waiting "
        "(due now, retries scheduled later, and in flight) / events finished per second. A destination "
        "without a rate limit has no limit, meter or headroom (None)."
    )
    table = pl.DataFrame(live.rows).select(
        "destination",
        "waiting",
        "requests_per_s",
        "delivered_per_s",
        "limit_per_s",
        "adapted_per_s",
        "headroom_pct",
        pl.struct("drain_state", "drain_s").map_elements(_drain, return_dtype=pl.String).alias("drain"),
    )
    over = _hours_over(scope, {row["destination"]: row["limit_per_s"] for row in live.rows})
    table = table.join(over, on="destination", how="left").with_columns(pl.col("hours_over").fill_null(0))
    number = st.column_config.NumberColumn
    st.dataframe(
        table.to_pandas(),
        hide_index=True,
        column_config={
            "destination": "destination",
            "waiting": number("jobs waiting", format="localized"),
            "requests_per_s": number("rate now (requests/s)", format="%.2f"),
            "delivered_per_s": number("delivered now (events/s)", format="%.2f"),
            "limit_per_s": number("rate limit (requests/s)", format="%g"),
            "adapted_per_s": number("metered at (requests/s)", format="%.2f"),
            "headroom_pct": number("headroom under the limit", format="%.0f%%"),
            "drain": "time to drain at this pace",
            "hours_over": number("hours over the limit today (UTC)", format="%d"),
        },
    )


def _hours_over(scope: Scope, limits: dict[str, float | None]) -> pl.DataFrame:
    now = dt.datetime.now(dt.UTC)
    start = dt.datetime.combine(now.date(), dt.time(), dt.UTC)
    end = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    hours = hours_over_limit(data.destination_hours(scope, start, end), limits)
    return (
        hours.group_by("destination_id")
        .agg(pl.col("over").sum().cast(pl.Int64).alias("hours_over"))
        .rename({"destination_id": "destination"})
    )


def _drain(value: dict[str, object]) -> str:
    state, seconds = value["drain_state"], value["drain_s"]
    if state == "draining" and isinstance(seconds, int | float):
        return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
    return {
        "empty": "nothing waiting",
        "no_progress": "no progress",
        "unknown": "unknown (another engine)",
    }.get(str(state), str(state))
