"""Every `.sql` file in `queries/`: it runs, it is documented, it binds the common parameters, it prunes.

And the macros they share (`queries/_macros.sql`): only macros, each
documented and used, the one place the scope rule is written.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

import queries
from queries import AttemptLog, QueryError, Scope, load_query, parameter_names, query_names
from queries.catalog import VIEWS
from queries.loader import load_macros, names_read

from .conftest import D1, D2

PACKAGE_DIR = Path(queries.__file__).parent
#: The named queries' files: every `.sql` file but those whose name starts with `_`.
SQL_FILES = sorted(path for path in PACKAGE_DIR.glob("*.sql") if not path.name.startswith("_"))
MACRO_FILE = PACKAGE_DIR / "_macros.sql"
COMMON_PARAMETERS = {"scope_kind", "scope_value", "start", "end"}
#: Values for the parameters some queries add to the common ones (the explorer's filters: any).
EXTRA_PARAMETERS: dict[str, object] = {
    "limit": 20,
    "per_integration": True,
    "error_class": None,
    "error_code": None,
    "status_code": None,
    "destination_id": None,
    "integration": None,
    "resolution_s": 60.0,
}
#: A job of the fixture in each scope of SCOPES, for job_history.sql.
JOB_IN_SCOPE = {
    "all": "J3",
    "workspace=acme": "J3",
    "destination=dst_globex_mix": "J5",
    "integration=webhook": "J9",
}
#: An event of the fixture in each scope of SCOPES, for the trace's queries: its message id, and
#: its job's workspace and source (trace_destinations); trace_attempts may look everywhere.
EVENT_IN_SCOPE = {
    "all": ("J3-msg-0", "acme"),
    "workspace=acme": ("J3-msg-0", "acme"),
    "destination=dst_globex_mix": ("J5-msg-0", "globex"),
    "integration=webhook": ("J9-msg-0", "globex"),
}
#: Scopes with nothing for a query to show in the fixture, and why.
EMPTY_IN_FIXTURE = {
    # J5, the destination's only job, was never delivered.
    ("delivery_delay_histogram", "destination=dst_globex_mix"),
    # Every acme job received on D1 was delivered.
    ("destination_failures", "workspace=acme"),
    ("failures_by_class", "workspace=acme"),
    # No acme job, and not J5, was delivered after a request with no answer.
    ("double_deliveries", "workspace=acme"),
    ("double_deliveries", "destination=dst_globex_mix"),
    # The message index has no integration column: partners never trace (queries.trace).
    ("trace_index", "integration=webhook"),
}
#: One scope of each kind, each with rows in the fixture.
SCOPES = [
    Scope.all(),
    Scope.workspace("acme"),
    Scope.destination("dst_globex_mix"),
    Scope.integration("webhook"),
]


def extra_for(name: str, scope: Scope = SCOPES[0]) -> dict[str, object]:
    wanted = parameter_names(name) - COMMON_PARAMETERS
    message_id, workspace = EVENT_IN_SCOPE[str(scope)]
    trace = {
        "message_id": message_id,
        "workspace_id": workspace,
        "source_id": f"src_{workspace}",
        "destinations": ["dst_acme_hook", "dst_acme_amp", "dst_globex_hook", "dst_globex_mix"],
        "dates": [D1.date()],
        "hours": list(range(24)),
    }
    offered = EXTRA_PARAMETERS | trace | {"job_id": JOB_IN_SCOPE[str(scope)]}
    unknown = wanted - offered.keys()
    assert not unknown, f"{name}.sql takes {unknown}: give the test a value in EXTRA_PARAMETERS"
    return {key: offered[key] for key in wanted}


def test_the_package_lists_every_file() -> None:
    assert query_names() == [path.stem for path in SQL_FILES]
    assert len(SQL_FILES) >= 10


def test_the_macro_file_is_no_query() -> None:
    assert MACRO_FILE.exists()
    assert "_macros" not in query_names()
    with pytest.raises(QueryError, match="no query named"):
        load_query("_macros")


def without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def macro_definitions() -> dict[str, str]:
    """Each macro `_macros.sql` defines, with its statement (comments left out)."""
    with duckdb.connect(":memory:") as con:
        statements = con.extract_statements(load_macros())
    definitions = {}
    for statement in statements:
        sql = without_comments(statement.query).strip()
        match = re.match(r"CREATE OR REPLACE MACRO (\w+)\(", sql)
        assert statement.type == duckdb.StatementType.CREATE and match, f"not a macro:\n{sql}"
        definitions[match[1]] = sql
    return definitions


def test_every_macro_is_documented_and_used() -> None:
    text = MACRO_FILE.read_text(encoding="utf-8")
    definitions = macro_definitions()
    assert {"in_scope", "started_in", "scoped_outcomes", "cohort_outcomes"} <= definitions.keys()
    callers = [without_comments(load_query(name)) for name in query_names()] + list(definitions.values())
    for name, statement in definitions.items():
        assert f"-- {name}(" in text, f"{name} has no comment saying what it is"
        used = [caller for caller in callers if caller != statement and re.search(rf"\b{name}\(", caller)]
        assert used, f"neither a query nor another macro calls {name}"


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_the_scope_rule_is_written_once(path: Path) -> None:
    """A query passes its scope to a macro; it never compares $scope_kind with a kind of row itself."""
    text = load_query(path.stem)
    assert "$scope_kind, $scope_value," in text, "the scope reaches no macro"
    assert not re.search(r"\$scope_kind\s*=\s*'(all|workspace|destination)'", text)
    assert re.search(r"WHEN 'workspace' THEN workspace_id = scope_value", load_macros())


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("scope", SCOPES, ids=str)
def test_runs_against_the_fixture(log: AttemptLog, path: Path, scope: Scope) -> None:
    result = log.run(path.stem, scope, D1, D2, **extra_for(path.stem, scope))
    if (path.stem, str(scope)) in EMPTY_IN_FIXTURE:
        assert result.height == 0, f"{path.name} finds rows for {scope} now: update EMPTY_IN_FIXTURE"
    else:
        assert result.height > 0, f"{path.name} found nothing for {scope} in the fixture"


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
def test_starts_with_its_name_and_binds_the_common_parameters(path: Path) -> None:
    text = load_query(path.stem)
    assert text.startswith(f"-- {path.stem}: "), "each file opens with a comment naming the query"
    assert COMMON_PARAMETERS.issubset(parameter_names(path.stem))


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("scope", SCOPES, ids=str)
def test_reads_only_the_days_it_needs(log: AttemptLog, path: Path, scope: Scope) -> None:
    """The fixture has files on three dates; a D1 query must skip D0's file.

    EXPLAIN ANALYZE names the files each scan read. A query over whole days
    prunes its views' partitions ("Scanning Files: kept/total" after the
    hive-partition filter); one over hours of a day has views over the
    dates it may need alone (`queries.catalog.range_view_sql`). Every scope,
    since a query may read different views for different scopes.
    """
    plan = log.plan(path.stem, scope, D1, D2, analyze=True, **extra_for(path.stem, scope))
    read = set(re.findall(r"date=(\d{4}-\d{2}-\d{2})", plan))
    if not read and "Empty Result" in plan:
        return  # DuckDB proved from the files' statistics that nothing matches: it reads no file
    assert read, f"no file read in the plan of {path.name}:\n{plan}"
    assert "2026-03-09" not in read, f"{path.name} reads D0's files: {sorted(read)}"


@pytest.mark.parametrize(
    ("name", "views"),
    [
        ("hourly", {"outcomes", "integration_outcomes"}),  # through scoped_outcomes
        ("day_report", {"outcomes", "integration_outcomes"}),  # cohort_and_requests -> scoped_outcomes
        ("explorer_samples", {"attempts"}),
        ("latency_histogram", {"latency_histogram", "destination_latency_histogram"}),
    ],
)
def test_a_query_names_the_views_it_reads_and_no_other(name: str, views: set[str]) -> None:
    # Over hours, a query gets only these views (queries.catalog.range_view_sql): one left out would
    # read the typed, empty view of the same name, so the set must hold every view the query reads.
    assert names_read(name, VIEWS) == views
