"""Every `.sql` file in `queries/`: it runs, it is documented, it binds the common parameters, it prunes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import queries
from queries import AttemptLog, Scope, load_query, parameter_names, query_names

from .conftest import D1, D2

SQL_FILES = sorted(Path(queries.__file__).parent.glob("*.sql"))
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
}
#: A job of the fixture in each scope of SCOPES, for job_history.sql.
JOB_IN_SCOPE = {
    "all": "J3",
    "workspace=acme": "J3",
    "destination=dst_globex_mix": "J5",
    "integration=webhook": "J9",
}
#: Scopes with nothing for a query to show in the fixture, and why.
EMPTY_IN_FIXTURE = {
    # J5, the destination's only job, was never delivered.
    ("delivery_delay_histogram", "destination=dst_globex_mix"),
    # Every acme job received on D1 was delivered.
    ("destination_failures", "workspace=acme"),
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
    offered = EXTRA_PARAMETERS | {"job_id": JOB_IN_SCOPE[str(scope)]}
    unknown = wanted - offered.keys()
    assert not unknown, f"{name}.sql takes {unknown}: give the test a value in EXTRA_PARAMETERS"
    return {key: offered[key] for key in wanted}


def test_the_package_lists_every_file() -> None:
    assert query_names() == [path.stem for path in SQL_FILES]
    assert len(SQL_FILES) >= 10


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

    EXPLAIN shows how many of the glob's files the scan keeps after the
    hive-partition filter ("Scanning Files: kept/total"). Every scope, since
    a query may read different views for different scopes.
    """
    plan = log.plan(path.stem, scope, D1, D2, **extra_for(path.stem, scope))
    counts = re.findall(r"Scanning Files: (\d+)/(\d+)", plan)
    if not counts and "Empty Result" in plan:
        return  # DuckDB proved from the files' statistics that nothing matches: it reads no file
    assert counts, f"no file count in the plan of {path.name}:\n{plan}"
    for kept, total in counts:
        assert int(kept) < int(total), f"{path.name} reads every file: {kept}/{total}"
