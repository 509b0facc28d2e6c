"""SQL console: DuckDB over the attempt log, for engineers only (main.py registers it for them alone)."""

from __future__ import annotations

import streamlit as st

from app import data, session
from app.access import ViewerKind

#: Saved example queries: (title, SQL). Each runs in well under a second on a 100M-attempt day.
EXAMPLES = (
    (
        "Requests per error class",
        "SELECT error_class, sum(records) AS requests\nFROM outcomes\nWHERE attempt >= 1\n"
        "GROUP BY ALL\nORDER BY requests DESC",
    ),
    (
        "Status codes of one integration",
        "SELECT status_code, sum(records) AS requests\nFROM outcomes\n"
        "WHERE integration = 'webhook' AND attempt >= 1\nGROUP BY ALL\nORDER BY requests DESC",
    ),
    (
        "Most frequent error bodies",
        "SELECT template, error_class, sum(requests) AS requests, arg_max(example, last_seen) AS example\n"
        "FROM error_templates\nGROUP BY ALL\nORDER BY requests DESC\nLIMIT 20",
    ),
    (
        "The latest failed attempts",
        "SELECT started_at, destination_id, attempt, status_code, error_class, error_code, response_body\n"
        "FROM attempts\nWHERE date = (SELECT max(date) FROM attempts) AND error_class <> 'none'\n"
        "ORDER BY started_at DESC\nLIMIT 50",
    ),
    (
        "Every attempt of one job",
        "SELECT attempt, started_at, status_code, error_class, error_code, outcome\nFROM attempts\n"
        "WHERE job_id = (SELECT job_id FROM attempts WHERE attempt = 3 LIMIT 1)\nORDER BY attempt",
    ),
)

viewer = session.viewer()
# main.py registers this page for operators only; checked again so a change there cannot open it.
if viewer.kind not in (ViewerKind.LOCAL, ViewerKind.ENGINEER):
    st.error("The SQL console is for engineers only.")
    st.stop()

# Start a worker while the engineer types (once the page has stayed on screen a second), so the
# first query does not wait for one.
data.start_sql_worker()

st.title("SQL console")
st.caption(
    "Read-only DuckDB SQL over the views `attempts` (one row per request) and the hourly rollups "
    "`outcomes`, `latency_histogram`, `destination_latency_histogram`, `error_templates` (docs/sql.md). "
    "One statement that reads (SELECT, WITH, DESCRIBE, SUMMARIZE, SHOW, EXPLAIN); "
    f"stopped after {data.SQL_TIMEOUT_S:g} s or {data.SQL_MEMORY_LIMIT} of memory; "
    f"at most {data.SQL_MAX_ROWS:,} rows and {data.SQL_MAX_BYTES // 2**20} MiB fetched."
)

titles = [title for title, _ in EXAMPLES]
example = st.selectbox("Saved example queries", titles, index=None, placeholder="Start from an example…")
if example is not None and st.session_state.get("_example") != example:
    st.session_state["_example"] = example
    st.session_state["sql"] = dict(EXAMPLES)[example]
text = st.text_area("Query", key="sql", height=180, placeholder="SELECT … FROM attempts …")

if st.button("Run", type="primary") and text.strip():
    try:
        with st.spinner("Running the query…"):
            answer = data.run_sql(text)
    except data.QueryError as exc:
        st.error(f"The query was refused or failed: {exc}")
    else:
        result = answer.frame
        if answer.truncated:
            limit = data.SQL_MAX_ROWS
            st.warning(f"The result has more than {limit:,} rows: showing the first {limit:,}.")
        st.caption(f"{result.height:,} row(s), {result.width} column(s)")
        integers = {
            name: st.column_config.NumberColumn(name, format="localized")
            for name, dtype in result.schema.items()
            if dtype.is_integer()
        }
        st.dataframe(result.to_pandas(), hide_index=True, column_config=integers)
        st.download_button(
            "Download as CSV",
            data.as_csv(result),
            file_name="deliverydash-query.csv",
            mime="text/csv",
        )
