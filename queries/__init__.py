"""DuckDB SQL over the attempt log, and the small Python API that runs it.

    from queries import Scope, connect, day_report

    log = connect("data")
    report = day_report(log, Scope.workspace("acme"), start, end)

Every named query is a commented `.sql` file in this package, run with
bound parameters against the hourly rollups of the attempt log (views
`outcomes`, `latency_histogram`, `destination_latency_histogram`,
`error_templates`, `delay_histogram`, `destination_delay_histogram`) or the
raw log (view `attempts`), over ranges of whole UTC hours; docs/sql.md shows how
to query the same views by hand.
"""

from queries.api import (
    by_destination,
    by_error,
    by_integration,
    by_status_code,
    daily,
    day_report,
    delivery_delay,
    delivery_delay_histogram,
    destination_failures,
    destinations,
    double_deliveries,
    error_samples,
    explorer_hours,
    explorer_samples,
    failures_by_class,
    funnel,
    hourly,
    integrations,
    job_created_at,
    job_history,
    latency,
    retries,
    retry_recovery,
    run_sql,
    workspaces,
)
from queries.catalog import ROLLUP_VIEWS, VIEW
from queries.errors import QueryError
from queries.limits import Limits
from queries.loader import load_query, parameter_names, query_names
from queries.log import AttemptLog, connect
from queries.sandbox import SqlResult, SqlSandbox
from queries.scope import Scope, ScopeKind

__all__ = [
    "ROLLUP_VIEWS",
    "VIEW",
    "AttemptLog",
    "Limits",
    "QueryError",
    "Scope",
    "ScopeKind",
    "SqlResult",
    "SqlSandbox",
    "by_destination",
    "by_error",
    "by_integration",
    "by_status_code",
    "connect",
    "daily",
    "day_report",
    "delivery_delay",
    "delivery_delay_histogram",
    "destination_failures",
    "destinations",
    "double_deliveries",
    "error_samples",
    "explorer_hours",
    "explorer_samples",
    "failures_by_class",
    "funnel",
    "hourly",
    "integrations",
    "job_created_at",
    "job_history",
    "latency",
    "load_query",
    "parameter_names",
    "query_names",
    "retries",
    "retry_recovery",
    "run_sql",
    "workspaces",
]
