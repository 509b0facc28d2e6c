"""How closely simulated days reproduce the seed study's table, seed by seed.

    .venv/bin/python bench/calibration.py [--attempts 2000000] [--seeds 7 1 2 3 11]

Simulates each seed's day into a temporary directory and computes the eight
figures with plain DuckDB SQL over the attempt files (the definitions of
docs/sql.md). Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import tempfile

import duckdb

from ingest.files import attempts_glob
from ingest.simulate import simulate_day

SEED_TABLE = {
    "delivered first attempt (events)": 92.6,
    "delivered eventually (events)": 93.9,
    "terminal errors (events)": 5.5,
    "401/403 (requests)": 3.8,
    "400 (requests)": 0.51,
    "429 (requests)": 7.3,
    "5xx (requests)": 1.3,
    "network (requests)": 1.1,
}

FIGURES_SQL = """
WITH a AS (SELECT * FROM read_parquet($glob, hive_partitioning = false))
SELECT
    100 * sum(event_count) FILTER (attempt = 1 AND outcome = 'delivered') / sum(event_count) FILTER (f),
    100 * sum(event_count) FILTER (outcome = 'delivered') / sum(event_count) FILTER (f),
    100 * sum(event_count) FILTER (outcome = 'failed') / sum(event_count) FILTER (f),
    100 * count(*) FILTER (r AND status_code IN (401, 403)) / count(*) FILTER (r),
    100 * count(*) FILTER (r AND status_code = 400) / count(*) FILTER (r),
    100 * count(*) FILTER (r AND status_code = 429) / count(*) FILTER (r),
    100 * count(*) FILTER (r AND status_code BETWEEN 500 AND 599) / count(*) FILTER (r),
    100 * count(*) FILTER (r AND error_class = 'network') / count(*) FILTER (r)
FROM (
    SELECT *, attempt <= 1 AS f, attempt >= 1 AND started_at < TIMESTAMPTZ '2026-11-28 00:00:00+00' AS r
    FROM a
)
"""


def figures(data_dir: str) -> list[float]:
    return list(duckdb.execute(FIGURES_SQL, {"glob": attempts_glob(data_dir)}).fetchall()[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--attempts", type=int, default=2_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 1, 2, 3, 11])
    args = parser.parse_args()
    columns = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as data_dir:
            simulate_day(args.attempts, data_dir, seed=seed)
            columns[seed] = figures(data_dir)
    print(f"| figure | seed study | {' | '.join(f'seed {s}' for s in args.seeds)} | worst gap |")
    print(f"|---|---|{'---|' * len(args.seeds)}---|")
    for i, (label, target) in enumerate(SEED_TABLE.items()):
        values = [columns[s][i] for s in args.seeds]
        gap = max(abs(v - target) for v in values)
        print(f"| {label} | {target:.2f}% | {' | '.join(f'{v:.2f}%' for v in values)} | {gap:.2f} pp |")


if __name__ == "__main__":
    main()
