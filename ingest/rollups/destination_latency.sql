-- rollup destination_latency: the latency histogram of latency.sql, per hour
-- and destination (with its workspace and integration), for the pages of one
-- workspace or one destination.
--
-- Buckets as in latency.sql: b holds durations in [1.1^b, 1.1^(b+1)) ms.
-- About 25 times the rows of the per-integration histogram (8.8 million for
-- a 100-million-attempt day), sorted by workspace and destination and
-- written in small row groups, so one customer's rows sit in a few of them.
-- Hours are grouped as integers (hour_number, in macros.sql).
WITH grouped AS (
    SELECT
        hour_number(started_at) AS started_hour,
        workspace_id,
        destination_id,
        integration,
        log_bucket(duration_ms) AS bucket,
        count(*)::BIGINT AS requests,
        sum(duration_ms)::DOUBLE AS duration_ms_sum,
        max(duration_ms)::DOUBLE AS duration_ms_max
    FROM batch
    WHERE attempt >= 1 AND duration_ms IS NOT NULL
    GROUP BY ALL
)

SELECT hour_start(started_hour) AS started_hour, * EXCLUDE (started_hour)
FROM grouped
ORDER BY workspace_id, destination_id, started_hour, bucket
