"""The report's section on events delivered more than once (docs/double-delivery.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

#: Destinations (or integrations) listed before the rest are summed into one line.
TOP = 10


def render_double_deliveries(figures: pl.DataFrame, received: int) -> str:
    """Events delivered more than once, certainly and possibly, per destination (or integration
    for a partner's scope) and cause, with a job to look up (`job_history`)."""
    import polars as pl

    if figures.is_empty():
        return "\nDelivered more than once: none (no event of the range reached a destination twice)\n"
    per_place = figures.with_columns(
        place=pl.coalesce("destination_id", "integration"),
        certain=pl.when(pl.col("certainty") == "certain").then("events").otherwise(0),
        possible=pl.when(pl.col("certainty") == "possible").then("events").otherwise(0),
    )
    rows = (
        per_place.group_by("place", "cause")
        .agg(
            pl.col("certain").sum(),
            pl.col("possible").sum(),
            pl.col("example_jobs").list.first().drop_nulls().first().alias("example_job"),
        )
        .sort(["certain", "possible", "place", "cause"], descending=[True, True, False, False])
    )
    certain, possible = int(rows["certain"].sum()), int(rows["possible"].sum())
    share = 100 * (certain + possible) / received if received else 0.0
    lines = [
        "",
        f"Delivered more than once (events): {certain:,} certainly, {possible:,} possibly "
        f"({share:.3f}% of events received)",
        f"  {'destination':<28}{'cause':<22}{'certain':>10}{'possible':>10}  example job",
    ]
    for place, cause, n_certain, n_possible, job in rows.head(TOP).iter_rows():
        lines.append(f"  {place:<28}{cause:<22}{n_certain:>10,}{n_possible:>10,}  {job or ''}")
    if rows.height > TOP:
        rest = rows.slice(TOP)
        lines.append(
            f"  {f'{rest.height:,} more':<50}{int(rest['certain'].sum()):>10,}"
            f"{int(rest['possible'].sum()):>10,}"
        )
    lines.append("  certain: two 2xx; possible: a request with no answer, then a 2xx")
    lines.append("  (docs/double-delivery.md; `job_history` shows an example job's requests)")
    return "\n".join(lines) + "\n"
