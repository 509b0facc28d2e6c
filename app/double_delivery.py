"""The "Delivered more than once" section of the customer and partner pages (docs/double-delivery.md).

Per destination (a customer) or integration (a partner): events that reached it twice for
certain (two 2xx) or possibly (a request with no answer, then a 2xx), by cause. A customer can
open an example job's history, the evidence; a partner sees counts only (job ids name customers).
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from app import data, style
from queries.scope import Scope, ScopeKind

CAUSES = {
    "retry_after_timeout": "retry after a request with no answer",
    "lease_expired": "sent again by a second engine (lease expired)",
    "replay": "replay",
}


def section(scope: Scope, figures: pl.DataFrame) -> None:
    """Render the section for `scope` from its `data.double_deliveries` figures.

    The page reads them with its other figures, before drawing anything: a query run between two
    sections has the browser drawing the first while DuckDB works, on the same cores
    (docs/dashboard.md, "Speed").
    """
    st.header("Delivered more than once")
    st.caption(
        "Exactly-once is impossible over HTTP: a request whose answer never came may have been "
        "accepted, and a retry then delivers the event again. Certainly twice: two 2xx answers. "
        "Possibly twice: a request with no answer (timeout, reset), then a 2xx. Events received "
        "in the range; see docs/double-delivery.md."
    )
    if figures.is_empty():
        st.caption("No event of this range was delivered more than once.")
        return
    certain = int(figures.filter(pl.col("certainty") == "certain")["events"].sum())
    possible = int(figures.filter(pl.col("certainty") == "possible")["events"].sum())
    left, right = st.columns(2)
    left.metric("Events delivered twice, certainly", style.card_count(certain), help=style.card_help(certain))
    right.metric(
        "Events delivered twice, possibly", style.card_count(possible), help=style.card_help(possible)
    )
    partner = scope.kind is ScopeKind.INTEGRATION
    where = "integration" if partner else "destination_id"
    table = (
        figures.with_columns(pl.col("cause").replace(CAUSES).alias("cause"))
        .pivot("certainty", index=[where, "cause"], values="events", aggregate_function="sum")
        .fill_null(0)
    )
    for column in ("certain", "possible"):
        if column not in table.columns:
            table = table.with_columns(pl.lit(0).alias(column))
    labels = {where: "Integration" if partner else "Destination", "cause": "Cause"}
    labels |= {"certain": "Events, certainly twice", "possible": "Events, possibly twice"}
    st.dataframe(
        table.select(*labels).rename(labels).sort("Events, possibly twice", descending=True),
        hide_index=True,
        width="stretch",
    )
    if not partner:
        _evidence(scope, figures)


def _evidence(scope: Scope, figures: pl.DataFrame) -> None:
    jobs = sorted({job for jobs in figures["example_jobs"].to_list() for job in jobs or ()})
    job_id = st.selectbox(
        "Job history (evidence): an example job", jobs, index=None, key="double_delivery_job"
    )
    if job_id:
        st.dataframe(data.job_history(scope, job_id), hide_index=True, width="stretch")
