"""The error samples of the customer and partner pages: the most frequent error answers, grouped by
template, as one table, and the example answer of one template at a time.

One table and one example rather than an expander per template: the table shows every template's
figures at once, and the browser, which draws a page element by element, gets 4 elements where 20
expanders were 80 (the customer page's messages went from 141 to 66; docs/benchmarks.md measures
its clicks). The picker below the table shows one template's example body, the most frequent first.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from app import hints, style


def section(samples: pl.DataFrame, *, partner: bool, key: str) -> None:
    """Draw `samples` (`app.data.error_samples`): the table, then one template's example body.

    A partner sees counts, answers and the redacted example only: no destination, no template.
    `key` names the picker's widget (one per page).
    """
    if not samples.height:
        st.caption("No error responses in this range.")
        return
    samples = samples.with_columns(_ANSWER)
    rows = samples.rows(named=True)
    st.dataframe(
        _table(samples, partner=partner),
        hide_index=True,
        width="stretch",
        column_config={"requests": st.column_config.NumberColumn("requests", format="localized")},
    )
    shown = st.selectbox(
        "Example answer of",
        range(len(rows)),
        format_func=lambda index: f"{index + 1}. {_title(rows[index], partner=partner)}",
        key=key,
    )
    row = rows[shown or 0]
    if not partner:
        st.markdown(f"**What to do:** {hints.hint(row['error_class'], row['status_code'])}")
        st.caption(
            f"Last seen {row['last_seen']:%Y-%m-%d %H:%M:%S} UTC · template: `{row['template'][:200]}`"
        )
    # Plain text, not `st.code`: the browser loads and runs a syntax highlighter for a code block,
    # 0.15-0.2 s of the first click on a page showing one (docs/benchmarks.md).
    with st.container(border=True):
        st.text(row["example"] or "(empty body)")


#: What came back: the HTTP status when there was one, else the error code.
_ANSWER = (
    pl.when(pl.col("status_code").is_not_null())
    .then(pl.format("HTTP {}", pl.col("status_code")))
    .otherwise(pl.col("error_code"))
    .alias("answer")
)


def _title(row: dict[str, Any], *, partner: bool) -> str:
    where = "" if partner else f" on {row['destination_id'] or row['integration']}"
    return f"{style.count(row['requests'])} x {row['answer']} ({row['error_class']}){where}"


def _table(samples: pl.DataFrame, *, partner: bool) -> pl.DataFrame:
    columns = [
        pl.int_range(1, pl.len() + 1).alias("#"),
        pl.col("requests").alias("requests"),
        pl.col("answer"),
        pl.col("error_class").alias("error class"),
    ]
    if not partner:
        columns += [
            pl.coalesce("destination_id", "integration").alias("destination"),
            pl.col("last_seen").dt.strftime("%Y-%m-%d %H:%M:%S").alias("last seen (UTC)"),
            pl.col("template").str.slice(0, 200).alias("template"),
        ]
    return samples.select(columns)
