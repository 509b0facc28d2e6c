"""The SQL escape suite against `AttemptLog.sql`: nothing written, defined or read outside the log."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from queries import AttemptLog, QueryError, Scope, by_destination, connect, day_report

from .conftest import D1, D2, copy_log
from .escapes import (
    BOMBS,
    CATALOG,
    ESCAPES,
    PROCESS_LIMIT,
    SECRET,
    Case,
    Places,
    ids,
    make_places,
    measured,
    tree,
)


@pytest.fixture(scope="module")
def places(fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Places:
    data_dir = copy_log(fixture_dir, tmp_path_factory.mktemp("escapes-data"))
    return make_places(tmp_path_factory.mktemp("escapes"), data_dir)


@pytest.fixture(scope="module")
def log(places: Places) -> Iterator[AttemptLog]:
    # The sandbox's worker starts in the working directory, where `.tmp` would be DuckDB's temp directory.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(places.workdir)
        with connect(places.data_dir) as opened:
            opened.sql("SELECT 1")  # the worker starts here
            yield opened


def pages(log: AttemptLog) -> tuple[object, ...]:
    """What pages read, and what both catalogs hold."""
    return (
        day_report(log, Scope.all(), D1, D2).rows(),
        by_destination(log, Scope.workspace("acme"), D1, D2).rows(),
        log.trusted_sql(CATALOG).rows(),
        log.sql(CATALOG).rows(),
    )


@pytest.mark.parametrize("case", ESCAPES, ids=ids(ESCAPES))
def test_an_escape_is_refused_and_changes_nothing(log: AttemptLog, places: Places, case: Case) -> None:
    before, seen = tree(places.data_dir, places.outside, places.workdir), pages(log)
    with pytest.raises(QueryError, match=case.refusal) as refused:
        log.sql(places.fill(case.sql))
    assert SECRET not in str(refused.value)
    assert tree(places.data_dir, places.outside, places.workdir) == before
    assert pages(log) == seen


def test_the_pages_views_are_not_the_sandboxs(log: AttemptLog) -> None:
    # The catalogs are equal (the same views and macros) but not shared: a worker
    # process holds the sandbox's, read-only (tests/queries/test_sandbox.py).
    assert log.sql(CATALOG).rows() == log.trusted_sql(CATALOG).rows()
    assert (
        log.sql("SELECT count(*) FROM outcomes").item()
        == log.trusted_sql("SELECT count(*) FROM outcomes").item()
    )


_BOMB = """
import sys
from queries import QueryError, connect

with connect(sys.argv[1]) as log:
    try:
        frame = log.sql(sys.argv[2], timeout_s=float(sys.argv[3]))
    except QueryError as exc:
        print("refused:", exc)
    else:
        print("ran:", frame.height, "rows")
    print("then:", log.sql("SELECT 42 AS answer").item())
"""


@pytest.mark.parametrize("bomb", BOMBS, ids=ids(BOMBS))
def test_a_bomb_is_stopped_within_its_limit(places: Places, bomb: Case) -> None:
    done = measured([sys.executable, "-c", _BOMB, str(places.data_dir), bomb.sql, str(bomb.timeout_s)])
    assert done.returncode == 0, done.stderr
    refusal = done.stdout.splitlines()[0]
    assert refusal.startswith("refused:"), done.stdout
    assert bomb.refusal in refusal
    assert "then: 42" in done.stdout  # the sandbox runs the next query
    assert done.peak_bytes < PROCESS_LIMIT, f"{done.peak_bytes / 2**30:.2f} GiB"


def test_rows_past_max_rows_are_never_fetched(log: AttemptLog) -> None:
    assert log.sql("SELECT * FROM range(1000000000000)", max_rows=5).height == 5
    with pytest.raises(QueryError, match="more than 10,000 rows"):
        log.sql("SELECT * FROM range(1000000000000)")


def test_the_pages_temporary_directory_is_private_and_removed(places: Places, tmp_path: Path) -> None:
    other = connect(places.data_dir)
    temp_dir = Path(other.trusted_sql("SELECT current_setting('temp_directory') AS t").item())
    try:
        assert temp_dir.is_dir()
        assert places.data_dir not in temp_dir.parents and Path.cwd() not in temp_dir.parents
        (temp_dir / "spilled").write_text(SECRET)
        for sql in (f"SELECT * FROM glob('{temp_dir}/*')", f"SELECT * FROM read_text('{temp_dir}/spilled')"):
            with pytest.raises(QueryError, match="disabled by configuration"):
                other.sql(sql)
        # The sandbox spills nowhere: a query past its memory fails instead.
        assert other.sql("SELECT current_setting('temp_directory') AS t").item() == ""
    finally:
        other.close()
    assert not temp_dir.exists()
