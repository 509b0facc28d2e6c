"""The named queries read the hourly rollups and give what the raw log gives.

On a simulated day, each rollup-based query is compared, whole data frame
against whole data frame, with the query it replaced, kept verbatim in
`tests/queries/raw/` and run on a plain DuckDB over the attempt files; the
latency histograms are compared with the exact latency.sql, and with each
other. Then: rollups that went missing or were orphaned leave a query's
directory untouched and are counted, until `repair` mends them; and the
rollup views can be queried by hand.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ingest.day_rollups import build_days
from ingest.files import attempts_root
from ingest.logstore import LocalStore
from ingest.rollup import GRACE_S, ROLLUPS, RepairResult, out_of_step, repair, rollup_root
from queries import (
    AttemptLog,
    Scope,
    ScopeKind,
    connect,
    delivery_delay,
    error_samples,
    explorer_samples,
    job_created_at,
    job_history,
    latency,
    query_names,
)
from queries.catalog import ROLLUP_VIEWS, VIEW, VIEWS
from queries.loader import names_read
from queries.log import HOURLY_QUERIES, reads_days
from queries.scope import query_parameters
from queries.whatif import Schedule, whatif

from .conftest import D1, D2, RAW_DIR, SIMULATED_DAY, at, job, publish, raw_connection, retry, run_raw

RAW_QUERIES = sorted(path.stem for path in RAW_DIR.glob("*.sql"))
DAY = SIMULATED_DAY
#: The whole simulated day, and four hours of it whose cohort retries past the end.
RANGES = {
    "day": (DAY, DAY + timedelta(days=1)),
    "09-13": (DAY + timedelta(hours=9), DAY + timedelta(hours=13)),
}
SCOPE_COLUMNS = {
    ScopeKind.WORKSPACE: "workspace_id",
    ScopeKind.DESTINATION: "destination_id",
    ScopeKind.INTEGRATION: "integration",
}
EXPLORER_FILTERS: dict[str, object] = dict.fromkeys(
    ["error_class", "error_code", "status_code", "destination_id", "integration"]
)
EXTRA: dict[str, dict[str, object]] = {
    "error_samples": {"limit": 20},
    "explorer_hours": EXPLORER_FILTERS,
    "explorer_samples": EXPLORER_FILTERS | {"limit": 20},
    "job_history": {"job_id": "J3"},
    "latency": {"per_integration": False},
    "latency_histogram": {"per_integration": False},
    "whatif_answers": {"resolution_s": 60.0},
    "trace_index": {"message_id": "J3-msg-0"},
    "trace_attempts": {
        "message_id": "J3-msg-0",
        "destinations": ["dst_acme_amp"],
        "dates": [D1.date()],
        "hours": list(range(24)),
    },
    "trace_destinations": {"workspace_id": "acme", "source_id": "src_acme"},
}


@pytest.fixture(scope="module")
def log(module_log: AttemptLog) -> AttemptLog:
    """This module's tests only read the fixture log (refused statements and a stopped query included):
    they share one."""
    return module_log


@pytest.fixture(scope="module")
def simulated_dir(simulated_day_dir: Path) -> Path:
    return simulated_day_dir


@pytest.fixture(scope="module")
def simulated(simulated_dir: Path) -> Iterator[AttemptLog]:
    with connect(simulated_dir) as log:
        yield log


@pytest.fixture(scope="module")
def simulated_by_day(simulated_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttemptLog]:
    """The simulated day with its day rollups built, and its hourly `outcomes` gone: whole days can
    only be read from the day files."""
    data_dir = tmp_path_factory.mktemp("by_day") / "data"
    shutil.copytree(simulated_dir, data_dir)
    assert build_days(LocalStore(data_dir), close_after_s=0).built == ["2026-11-27", "2026-11-28"]
    shutil.rmtree(data_dir / "rollups" / "outcomes")
    with connect(data_dir) as log:
        yield log


@pytest.fixture(scope="module")
def simulated_with_days(
    simulated_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AttemptLog]:
    """The simulated day with its day rollups built beside its hourly ones."""
    data_dir = tmp_path_factory.mktemp("with_days") / "data"
    shutil.copytree(simulated_dir, data_dir)
    assert build_days(LocalStore(data_dir), close_after_s=0).built == ["2026-11-27", "2026-11-28"]
    with connect(data_dir) as log:
        yield log


@pytest.fixture(scope="module")
def raw(simulated_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A plain DuckDB with only the `attempts` view: what the queries read before the rollups."""
    con = raw_connection(simulated_dir)
    yield con
    con.close()


@pytest.fixture(scope="module", params=list(ScopeKind), ids=str)
def scope(request: pytest.FixtureRequest, raw: duckdb.DuckDBPyConnection) -> Scope:
    """One scope of each kind; the busiest workspace and destination, the second integration."""
    kind = ScopeKind(request.param)
    if kind is ScopeKind.ALL:
        return Scope.all()
    column = SCOPE_COLUMNS[kind]
    rank = 2 if kind is ScopeKind.INTEGRATION else 1  # the busiest integration is most of the day
    ranked = raw.sql(f"SELECT {column} FROM attempts GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT {rank}")
    return Scope(kind, ranked.fetchall()[-1][0])


def test_every_rollup_query_has_its_raw_version() -> None:
    # The raw-log queries need none; the histograms' percentiles are compared within 5% below.
    assert set(RAW_QUERIES) == set(query_names()) - {
        "latency",
        "latency_histogram",
        "delivery_delay",
        "explorer_samples",
        "job_history",
        # The what-if's inputs, read from the raw log: tests/queries/test_whatif.py, and below on the
        # simulated day.
        "whatif_answers",
        "whatif_jobs",
        "whatif_actual",
        # Lookups of one event and its source's destinations, and fan-out completeness: checked
        # against the attempt files in tests/queries/test_trace.py.
        "trace_index",
        "trace_attempts",
        "trace_destinations",
        "fanout",
    }


@pytest.mark.parametrize("span", RANGES, ids=str)
@pytest.mark.parametrize("name", RAW_QUERIES)
def test_equals_the_raw_query(
    simulated: AttemptLog, raw: duckdb.DuckDBPyConnection, scope: Scope, name: str, span: str
) -> None:
    start, end = RANGES[span]
    extra = EXTRA.get(name, {})
    expected = run_raw(raw, name, scope, start, end, **extra)
    # The busiest destination's jobs received 09-13 all got delivered.
    if (scope.kind, span) != (ScopeKind.DESTINATION, "09-13") or name not in {
        "destination_failures",
        "failures_by_class",
    }:
        assert expected.height > 0, "the comparison would prove nothing"
    assert_frame_equal(simulated.run(name, scope, start, end, **extra), expected, check_exact=True)


@pytest.mark.parametrize("span", ["day", "two days"], ids=str)
@pytest.mark.parametrize("name", sorted(set(RAW_QUERIES) - HOURLY_QUERIES))
def test_day_rollups_equal_the_raw_query(
    simulated_by_day: AttemptLog, raw: duckdb.DuckDBPyConnection, scope: Scope, name: str, span: str
) -> None:
    start, end = DAY, DAY + timedelta(days=1 if span == "day" else 2)
    assert reads_days(name, start, end)
    extra = EXTRA.get(name, {})
    expected = run_raw(raw, name, scope, start, end, **extra)
    assert expected.height > 0, "the comparison would prove nothing"
    # Sums of floats added in another order: equal to the last few bits.
    assert_frame_equal(simulated_by_day.run(name, scope, start, end, **extra), expected, rel_tol=1e-9)


@pytest.mark.parametrize("span", ["day", "two days"], ids=str)
def test_double_deliveries_over_days_of_hourly_files_equal_the_raw_query(
    simulated: AttemptLog, raw: duckdb.DuckDBPyConnection, scope: Scope, span: str
) -> None:
    """No day files: the by-day view sums each day's hourly rows per job, as day files do, and the
    query groups only the jobs with a row dated after their day received (double_deliveries.sql)."""
    start, end = DAY, DAY + timedelta(days=1 if span == "day" else 2)
    assert reads_days("double_deliveries", start, end)
    expected = run_raw(raw, "double_deliveries", scope, start, end)
    assert expected.height > 0, "the comparison would prove nothing"
    assert_frame_equal(simulated.run("double_deliveries", scope, start, end), expected, check_exact=True)


def test_every_error_template_equals_the_raw_query(
    simulated: AttemptLog, raw: duckdb.DuckDBPyConnection, scope: Scope
) -> None:
    start, end = RANGES["day"]
    everything = {"limit": 1_000_000}
    expected = run_raw(raw, "error_samples", scope, start, end, **everything)
    result = simulated.run("error_samples", scope, start, end, **everything)
    # Beyond the top 20 many templates tie on requests and last_seen: order aside, the same rows.
    assert_frame_equal(result.sort(pl.all()), expected.sort(pl.all()), check_exact=True)


@pytest.mark.parametrize("per_integration", [False, True])
def test_histogram_percentiles_are_within_5_percent(
    simulated: AttemptLog, scope: Scope, per_integration: bool
) -> None:
    start, end = RANGES["day"]
    result = latency(simulated, scope, start, end, per_integration=per_integration)
    exact = latency(simulated, scope, start, end, per_integration=per_integration, exact=True)
    assert exact.height > 0, "the comparison would prove nothing"
    assert result.schema == exact.schema
    assert result.select("integration", "requests", "max_ms").equals(
        exact.select("integration", "requests", "max_ms")
    )
    assert result.get_column("mean_ms").to_list() == pytest.approx(exact.get_column("mean_ms").to_list())
    for column in ["p50_ms", "p95_ms", "p99_ms"]:
        approximate = result.get_column(column).to_list()
        assert approximate == pytest.approx(exact.get_column(column).to_list(), rel=0.05), column


#: The per-destination histogram summed over destinations, in the per-integration histogram's grain.
HISTOGRAM_TOTALS = """
    SELECT started_hour, integration, bucket, sum(requests) AS requests,
           sum(duration_ms_sum) AS duration_ms_sum, max(duration_ms_max) AS duration_ms_max
    FROM {view}
    GROUP BY ALL
    ORDER BY ALL
"""


def test_the_two_histograms_hold_the_same_requests(simulated: AttemptLog) -> None:
    # Per hour, integration and bucket, so the totals agree over any range of whole hours.
    per_integration = simulated.trusted_sql(HISTOGRAM_TOTALS.format(view="latency_histogram"))
    per_destination = simulated.trusted_sql(HISTOGRAM_TOTALS.format(view="destination_latency_histogram"))
    assert per_integration.get_column("requests").sum() > 1_000, "the comparison would prove nothing"
    # Counts and maxima are equal; sums of doubles up to the order they were added in.
    assert_frame_equal(
        per_destination.drop("duration_ms_sum"), per_integration.drop("duration_ms_sum"), check_exact=True
    )
    assert_frame_equal(per_destination, per_integration, check_exact=False, rel_tol=1e-9)


@pytest.mark.parametrize("scope", [Scope.all(), Scope.integration("webhook")], ids=str)
def test_all_and_an_integration_read_the_small_histogram(log: AttemptLog, scope: Scope) -> None:
    # The per-destination branch is folded away when DuckDB plans the query: none of its files is read.
    plan = log.plan("latency_histogram", scope, D1, D2, analyze=True, per_integration=False)
    assert "rollups/latency/date=" in plan
    assert "rollups/destination_latency/" not in plan


@pytest.mark.parametrize("scope", [Scope.workspace("acme"), Scope.destination("dst_acme_amp")], ids=str)
def test_a_workspace_or_destination_reads_the_per_destination_histogram(
    log: AttemptLog, scope: Scope
) -> None:
    plan = log.plan("latency_histogram", scope, D1, D2, analyze=True, per_integration=False)
    assert "rollups/destination_latency/date=" in plan
    assert "rollups/latency/" not in plan


@pytest.mark.parametrize("scope", [Scope.all(), Scope.integration("webhook")], ids=str)
@pytest.mark.parametrize("name", ["day_report", "funnel", "by_status_code"])
def test_all_and_an_integration_read_the_outcomes_per_integration(
    log: AttemptLog, scope: Scope, name: str
) -> None:
    # A tenth of outcomes's rows: the per-destination branch is folded away, none of its files read.
    plan = log.plan(name, scope, D1, D2, analyze=True)
    assert "rollups/integration_outcomes/date=" in plan
    assert "rollups/outcomes/" not in plan


@pytest.mark.parametrize(
    ("name", "scope"),
    [
        ("day_report", Scope.workspace("acme")),
        ("day_report", Scope.destination("dst_acme_amp")),
        ("by_destination", Scope.all()),  # figures per destination
        ("destination_failures", Scope.integration("webhook")),
    ],
    ids=str,
)
def test_figures_per_destination_or_of_a_workspace_read_outcomes(
    log: AttemptLog, name: str, scope: Scope
) -> None:
    plan = log.plan(name, scope, D1, D2, analyze=True)
    assert "rollups/outcomes/date=" in plan
    assert "rollups/integration_outcomes/" not in plan


def test_a_skip_after_tries_is_no_request_to_either_latency(tmp_path: Path) -> None:
    # A job tried once, then skipped when its destination was disabled: attempt 2, no duration.
    skipped = {
        "started_at": at(D1, "10:05"),
        "duration_ms": None,
        "error_class": "disabled",
        "error_code": "DESTINATION_DISABLED",
        "outcome": "skipped",
    }
    first = retry(
        at(D1, "10:00:01"), at(D1, "10:05"), status_code=503, error_class="server", duration_ms=80.0
    )
    publish(job("S1", "dst_acme_hook", at(D1, "10:00"), [first, skipped]), tmp_path)
    with connect(tmp_path) as log:
        for scope in [Scope.all(), Scope.workspace("acme")]:
            exact = latency(log, scope, D1, D2, exact=True)
            approximate = latency(log, scope, D1, D2)
            assert exact.select("requests", "max_ms").rows() == [(1, 80.0)], scope
            assert approximate.select("requests", "max_ms").rows() == [(1, 80.0)], scope


# Out of step: a function-scoped copy of the fixture log, since these tests change files.


def every_figure(log: AttemptLog, reading: str | None = None) -> dict[str, pl.DataFrame]:
    """Every named query's result for the fixture's day, overall and for one workspace; with
    `reading`, only the queries that read that rollup (the others never open its files:
    `names_read`, tested in test_sql_files).

    A workspace too, since some rollups (`destination_latency`) are read only for one.
    """
    return {
        f"{name} {scope}": log.run(name, scope, D1, D2, **EXTRA.get(name, {}))
        for name in query_names()
        if reading is None or reading in rollups_read(name)
        for scope in [Scope.all(), Scope.workspace("acme")]
    }


def rollups_read(name: str) -> set[str]:
    return {ROLLUP_VIEWS[view] for view in names_read(name, VIEWS) if view != VIEW}


def assert_same_figures(got: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> None:
    """`got` holds some of `expected`'s figures (at least one), each equal to it."""
    assert got.keys() <= expected.keys() and got
    for name in got:
        assert_frame_equal(got[name], expected[name], check_exact=True)


@pytest.fixture(scope="module")
def healthy_figures(fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    """The figures of a copy of the fixture log written an hour ago, while every rollup is in place:
    the same for every such copy, so computed once (each test below changes only its own copy)."""
    data_dir = shutil.copytree(fixture_dir, tmp_path_factory.mktemp("healthy") / "data")
    age(data_dir, seconds=3_600)
    with connect(data_dir) as log:
        assert log.rollups_out_of_step() == 0
        return every_figure(log)


@pytest.fixture
def healthy(
    fixture_dir: Path, healthy_figures: dict[str, pl.DataFrame], tmp_path: Path
) -> tuple[Path, dict[str, pl.DataFrame]]:
    """A copy of the fixture log written an hour ago, and its figures while every rollup is in place.

    An hour old, because an attempt file younger than `GRACE_S` lacking
    rollups is its writer's to finish, not out of step.
    """
    data_dir = shutil.copytree(fixture_dir, tmp_path / "data")
    age(data_dir, seconds=3_600)
    with connect(data_dir) as log:
        assert log.rollups_out_of_step() == 0
    return data_dir, healthy_figures


def age(data_dir: Path, seconds: float) -> None:
    then = time.time() - seconds
    for path in attempt_files(data_dir):
        os.utime(path, (then, then))


def attempt_files(data_dir: Path) -> list[Path]:
    return sorted(attempts_root(data_dir).glob("date=*/hour=*/*.parquet"))


def rollup_files(data_dir: Path, rollup: str) -> list[Path]:
    return sorted(rollup_root(data_dir, rollup).glob("date=*/hour=*/*.parquet"))


def tree(root: Path) -> dict[str, bytes | None]:
    """Every directory (None) and file (its bytes) under `root`, by relative path."""
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


def lose_a_file(data_dir: Path, rollup: str) -> None:
    rollup_files(data_dir, rollup)[0].unlink()


def orphan_a_copy(data_dir: Path, rollup: str) -> None:
    # A copy under a name no attempt file has: read, it would count its rows twice.
    original = rollup_files(data_dir, rollup)[0]
    shutil.copyfile(original, original.with_name("orphan.parquet"))


def lose_the_rollup(data_dir: Path, rollup: str) -> None:
    """As a data directory written before `rollup` existed."""
    shutil.rmtree(rollup_root(data_dir, rollup))


def lose_every_rollup(data_dir: Path, rollup: str) -> None:
    """As a data directory written before rollups existed (`rollup` aside)."""
    shutil.rmtree(data_dir / "rollups")


#: How to put rollups out of step, and what that gives on the fixture of `n` attempt
#: files: (files out of step, rollup files repair builds, rollup files it removes).
DAMAGE = {
    "a lost file": (lose_a_file, lambda n: (1, 1, 0)),
    "an orphan": (orphan_a_copy, lambda n: (1, 0, 1)),
    "a rollup new to the data dir": (lose_the_rollup, lambda n: (n, n, 0)),
    "no rollups at all": (lose_every_rollup, lambda n: (n, n * len(ROLLUPS), 0)),
}
OUT_OF_STEP = [
    *((damage, rollup) for damage in list(DAMAGE)[:3] for rollup in ROLLUPS),
    ("no rollups at all", "outcomes"),
]


def damaged(damage: str, rollup: str) -> str | None:
    """The rollup whose readers a damage can change; None when it reaches every rollup."""
    return None if damage == "no rollups at all" else rollup


def test_a_fresh_attempt_file_is_left_to_its_writer(healthy: tuple[Path, dict[str, pl.DataFrame]]) -> None:
    data_dir, _ = healthy
    lost = rollup_files(data_dir, "outcomes")[0]
    lost.unlink()
    name = lost.relative_to(rollup_root(data_dir, "outcomes"))
    os.utime(attempts_root(data_dir) / name)  # just published: its writer is about to publish the rollups
    assert out_of_step(data_dir).files == 0
    assert repair(data_dir) == RepairResult(built=0, removed=0)
    assert not lost.exists()
    age(data_dir, seconds=GRACE_S + 1)  # the writer died: out of step
    assert out_of_step(data_dir).lacking == {name.as_posix(): ("outcomes",)}


def test_a_writer_alone_may_mend_its_own_fresh_files(healthy: tuple[Path, dict[str, pl.DataFrame]]) -> None:
    data_dir, _ = healthy
    lost = rollup_files(data_dir, "outcomes")[0]
    lost.unlink()
    os.utime(attempts_root(data_dir) / lost.relative_to(rollup_root(data_dir, "outcomes")))
    assert repair(data_dir, grace_s=0) == RepairResult(built=1, removed=0)
    assert lost.exists()


@pytest.mark.parametrize(("damage", "rollup"), OUT_OF_STEP, ids=[f"{d}, {r}" for d, r in OUT_OF_STEP])
def test_a_query_on_an_out_of_step_log_writes_nothing_and_says_so(
    healthy: tuple[Path, dict[str, pl.DataFrame]], damage: str, rollup: str
) -> None:
    data_dir, _ = healthy
    put_out_of_step, counts = DAMAGE[damage]
    put_out_of_step(data_dir, rollup)
    before = tree(data_dir)
    with connect(data_dir) as log:
        assert every_figure(log, reading=damaged(damage, rollup))
        assert log.rollups_out_of_step() == counts(len(attempt_files(data_dir)))[0]
    assert tree(data_dir) == before


@pytest.mark.parametrize(("damage", "rollup"), OUT_OF_STEP, ids=[f"{d}, {r}" for d, r in OUT_OF_STEP])
def test_repair_mends_the_rollups(
    healthy: tuple[Path, dict[str, pl.DataFrame]], damage: str, rollup: str
) -> None:
    data_dir, expected = healthy
    put_out_of_step, counts = DAMAGE[damage]
    with connect(data_dir) as log:
        # Footers of the files about to change are in DuckDB's cache now.
        every_figure(log, reading=damaged(damage, rollup))
        put_out_of_step(data_dir, rollup)
        files, built, removed = counts(len(attempt_files(data_dir)))
        assert out_of_step(data_dir).files == files
        done: list[int] = []
        assert repair(data_dir, progress=done.append) == RepairResult(built=built, removed=removed)
        assert sum(done) == files
        assert log.rollups_out_of_step() == 0
        assert_same_figures(every_figure(log, reading=damaged(damage, rollup)), expected)


def test_a_rollup_new_to_a_data_dir_is_built_alone(healthy: tuple[Path, dict[str, pl.DataFrame]]) -> None:
    data_dir, _ = healthy
    lose_the_rollup(data_dir, "delay")
    others = {path: path.stat().st_mtime_ns for path in rollup_files(data_dir, "outcomes")}
    repair(data_dir)
    assert rollup_files(data_dir, "delay")
    assert {path: path.stat().st_mtime_ns for path in rollup_files(data_dir, "outcomes")} == others


def test_queries_beside_a_repair_see_whole_files(healthy: tuple[Path, dict[str, pl.DataFrame]]) -> None:
    data_dir, expected = healthy
    shutil.rmtree(data_dir / "rollups")
    with connect(data_dir) as log, ThreadPoolExecutor(max_workers=3) as pool:
        reads = [pool.submit(every_figure, log) for _ in range(4)]
        repair(data_dir)
        for read in reads:
            read.result()  # each saw some rollup files, all whole: none raised
        assert_same_figures(every_figure(log), expected)


# The rollup views by hand.


def test_the_rollup_views_hold_the_fixtures_figures(log: AttemptLog) -> None:
    requests = log.sql(
        "SELECT sum(records) AS n FROM outcomes WHERE attempt >= 1 AND date = DATE '2026-03-10'"
    )
    assert requests.item() == 20
    for view in ["latency_histogram", "destination_latency_histogram"]:
        histogram = log.sql(f"SELECT sum(requests) AS n FROM {view} WHERE date = DATE '2026-03-10'")
        assert histogram.item() == 20, view
    acme = log.sql(
        "SELECT destination_id, sum(requests) AS n FROM destination_latency_histogram "
        "WHERE date = DATE '2026-03-10' AND workspace_id = 'acme' GROUP BY ALL ORDER BY ALL"
    )
    assert acme.rows() == [("dst_acme_amp", 4), ("dst_acme_hook", 2)]
    templates = log.sql(
        "SELECT template, sum(requests) AS n FROM error_templates "
        "WHERE date = DATE '2026-03-10' AND status_code = 429 GROUP BY template"
    )
    assert templates.rows() == [
        ('{"error":{"message":"Rate limit <n>/s exceeded, retry in <n>s","request_id":"?"}}', 2)
    ]


def test_body_template_is_defined_for_user_sql(log: AttemptLog) -> None:
    templated = log.sql("SELECT body_template('retry in 12s, see req_8f3a9c21') AS t")
    assert templated.item() == "retry in <n>s, see req_<id>"


# The pages' queries over the simulated day.


def test_delivery_delay_percentiles_are_within_5_percent(
    simulated: AttemptLog, raw: duckdb.DuckDBPyConnection, scope: Scope
) -> None:
    start, end = RANGES["day"]
    result = delivery_delay(simulated, scope, start, end)
    # Exact, per event: each delivered job's delay repeated event_count times.
    exact = run_raw_text(
        raw,
        """
        WITH delivered AS (
            SELECT attempt, event_count,
                   (epoch_us(started_at) - epoch_us(received_at)) / 1000 + duration_ms::DOUBLE AS delay_ms
            FROM attempts
            WHERE ($scope_kind = 'all'
                   OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
                   OR ($scope_kind = 'destination' AND destination_id = $scope_value)
                   OR ($scope_kind = 'integration' AND integration = $scope_value))
              AND received_at >= $start AND received_at < $end
              AND started_at < $end + INTERVAL 1 DAY
              AND outcome = 'delivered'
        ),
        grouped AS (
            SELECT 'all' AS delivery, * FROM delivered
            UNION ALL
            SELECT CASE WHEN attempt = 1 THEN 'first attempt' ELSE 'after retries' END, * FROM delivered
        ),
        per_event AS (
            SELECT delivery, quantile_cont(delay_ms, [0.5, 0.95, 0.99]) AS q
            FROM grouped, range(event_count)
            GROUP BY delivery
        )
        SELECT delivery, count(*) AS deliveries, sum(event_count) AS events, any_value(q) AS q,
               sum(event_count * delay_ms) / sum(event_count) AS mean_ms, max(delay_ms) AS max_ms
        FROM grouped JOIN per_event USING (delivery)
        GROUP BY delivery
        """,
        scope,
        start,
        end,
    )
    expected = {row["delivery"]: row for row in exact.iter_rows(named=True)}
    assert result.get_column("delivery").to_list() == ["all", "first attempt", "after retries"]
    assert expected["after retries"]["deliveries"] > 0, "the comparison would prove nothing"
    for row in result.iter_rows(named=True):
        want = expected[row["delivery"]]
        assert (row["deliveries"], row["events"]) == (want["deliveries"], want["events"]), row["delivery"]
        assert row["max_ms"] == pytest.approx(want["max_ms"])
        assert row["mean_ms"] == pytest.approx(want["mean_ms"])
        got = [row["p50_ms"], row["p95_ms"], row["p99_ms"]]
        assert got == pytest.approx(want["q"], rel=0.05), row["delivery"]


def run_raw_text(
    con: duckdb.DuckDBPyConnection, text: str, scope: Scope, start: datetime, end: datetime
) -> pl.DataFrame:
    wanted = con.extract_statements(text)[0].named_parameters
    offered = query_parameters(scope, start, end)
    return con.sql(text, params={key: offered[key] for key in wanted}).pl()


def test_explorer_samples_are_the_latest_matches(
    simulated: AttemptLog, raw: duckdb.DuckDBPyConnection, scope: Scope
) -> None:
    start, end = RANGES["day"]
    for error_class, status_code in [(None, None), ("rate_limit", None), (None, 401)]:
        result = explorer_samples(
            simulated, scope, start, end, error_class=error_class, status_code=status_code, limit=30
        )
        filters = {"error_class": error_class, "status_code": status_code}
        where = (
            " AND ".join(f"{key} = ${key}" for key, value in filters.items() if value is not None) or "true"
        )
        expected = run_raw_text(
            raw,
            f"""
            SELECT attempt_id, started_at FROM attempts
            WHERE ($scope_kind = 'all'
                   OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
                   OR ($scope_kind = 'destination' AND destination_id = $scope_value)
                   OR ($scope_kind = 'integration' AND integration = $scope_value))
              AND started_at >= $start AND started_at < $end AND error_class <> 'none' AND {where}
            ORDER BY started_at DESC, attempt_id DESC
            LIMIT 30
            """.replace("$error_class", "'rate_limit'").replace("$status_code", "401"),
            scope,
            start,
            end,
        )
        assert result.get_column("started_at").to_list() == expected.get_column("started_at").to_list()
        if scope.kind is ScopeKind.INTEGRATION:
            assert result.get_column("attempt_id").null_count() == result.height
        else:
            assert result.get_column("attempt_id").to_list() == expected.get_column("attempt_id").to_list()


def test_job_history_finds_every_record_of_a_job_from_its_id(
    simulated: AttemptLog, raw: duckdb.DuckDBPyConnection
) -> None:
    # A job retried most often: its records span hours.
    job_id, records = raw.sql(
        "SELECT job_id, count(*) FROM attempts GROUP BY job_id ORDER BY count(*) DESC, job_id LIMIT 1"
    ).fetchall()[0]
    assert records >= 3
    history = job_history(simulated, Scope.all(), job_id)
    assert history.get_column("attempt").to_list() == list(range(1, records + 1))
    received = history.get_column("received_at")[0]
    assert abs(job_created_at(job_id) - received) < timedelta(seconds=1)  # the simulator's ids
    workspace = history.get_column("workspace_id")[0]
    [(other,)] = raw.sql(
        "SELECT workspace_id FROM attempts WHERE workspace_id <> ? LIMIT 1", params=[workspace]
    ).fetchall()
    assert job_history(simulated, Scope.workspace(other), job_id).is_empty()
    with pytest.raises(ValueError, match="ULID"):
        job_history(simulated, Scope.all(), "not-a-ulid!")


def test_an_integration_sees_no_customer_in_error_samples(
    simulated: AttemptLog, raw: duckdb.DuckDBPyConnection
) -> None:
    start, end = RANGES["day"]
    # Every integration's customers, read in one pass over the log rather than one per integration.
    customers = raw.sql(
        "SELECT integration, list(DISTINCT workspace_id), list(DISTINCT destination_id) "
        "FROM attempts GROUP BY integration"
    ).fetchall()
    for integration, workspace_ids, destination_ids in customers:
        samples = error_samples(simulated, Scope.integration(integration), start, end, limit=1_000)
        assert samples.get_column("destination_id").null_count() == samples.height
        text = "\n".join(samples.get_column("example").to_list() + samples.get_column("template").to_list())
        for name in [*workspace_ids, *destination_ids]:
            assert name not in text, (integration, name)
        assert "://" not in text, "URLs name a customer's endpoint"


def test_redact_body_masks_what_could_name_a_customer(log: AttemptLog) -> None:
    body = (
        '{"message":"Event name \'Order Completed\' is invalid for bob.smith@example.com, '
        'see https://hooks.acme.io/v2/123 or retry in 12s","request_id":"req_8f3a9c21"}'
    )
    redacted = log.sql(f"SELECT redact_body('{body.replace(chr(39), chr(39) * 2)}') AS r").item()
    assert redacted == (
        '{"message":"Event name \'?\' is invalid for <email>, see <url> or retry in <n>s","request_id":"?"}'
    )
    assert log.sql("SELECT redact_body('I''m a teapot, didn''t respond') AS r").item() == (
        "I'm a teapot, didn't respond"
    )


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        ('{"error": "invalid api_key abcdefghijklmnopqrstu"}', "abcdefghijklmnopqrstu"),
        ("GET hooks.example.com/in?key=abcdefghij failed", "abcdefghij"),
        ('{"detail": "key=qwertyuiopasdf rejected"}', "qwertyuiopasdf"),
        ("X-Api-Key: zxcvbnmasdfghjkl is not allowed", "zxcvbnmasdfghjkl"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA== refused", "dXNlcjpwYXNzd29yZA"),
        ("Authorization: Bearer onlylettersinthistoken refused", "onlylettersinthistoken"),
        ("password: hunter", "hunter"),
        ("client_secret=abcdef was rejected", "abcdef"),
        ("signed with ABCDEFGHIJKLMNOPQRSTUVWXYZabcd", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcd"),
    ],
)
def test_redact_body_masks_credentials_whatever_characters_they_use(
    log: AttemptLog, body: str, secret: str
) -> None:
    quoted = body.replace("'", "''")
    redacted = log.sql(f"SELECT redact_body('{quoted}') AS r").item()
    assert secret not in redacted
    assert redacted == log.sql(f"SELECT redact_body(body_template('{quoted}')) AS r").item()


@pytest.mark.parametrize("prose", ["the token expired, reconnect", "Invalid key format", "secret sauce"])
def test_redact_body_keeps_the_words_around_a_credential_s_name(log: AttemptLog, prose: str) -> None:
    assert log.sql(f"SELECT redact_body('{prose}') AS r").item() == prose


@pytest.mark.parametrize("limit", [1, 20, 5_000])
def test_explorer_samples_over_days_are_those_of_the_whole_range(
    simulated_with_days: AttemptLog, scope: Scope, limit: int
) -> None:
    # Over whole days the matches are counted per day, then per hour within the earliest day
    # needed; reading fewer hours must not change which records come back.
    start, end = DAY, DAY + timedelta(days=2)
    narrowed = explorer_samples(simulated_with_days, scope, start, end, limit=limit)
    whole = simulated_with_days.run(
        "explorer_samples", scope, start, end, limit=limit, **dict.fromkeys(EXPLORER_FILTERS)
    )
    assert narrowed.height > 0
    assert_frame_equal(narrowed, whole)


def test_the_whatif_on_the_actual_schedule_reproduces_the_day(simulated: AttemptLog) -> None:
    """The model's tolerance on a simulated day (docs/whatif.md): the actual schedule replayed on
    paper gives the actual eventual delivery rate within 0.25 percentage points, and the requests
    within 1 %. The simulator's jitter is symmetric (its mean delay is the nominal one): jitter=0."""
    row = whatif(simulated, Scope.all(), DAY, DAY + timedelta(days=1), Schedule(jitter=0))
    assert row["jobs_replayed"] > 1_000, "the comparison would prove little"
    assert abs(row["delivered_pct"] - row["actual_delivered_pct"]) <= 0.25
    assert abs(row["requests"] / row["actual_requests"] - 1) <= 0.01
    # A schedule that gives up after the first request delivers less, with fewer requests.
    once = whatif(simulated, Scope.all(), DAY, DAY + timedelta(days=1), Schedule(attempts=1))
    assert once["delivered"] < row["delivered"] and once["requests"] < row["requests"]
