-- rollup latency: a histogram of request durations per hour and integration.
--
-- Bucket b holds durations in [1.1^b, 1.1^(b+1)) milliseconds (durations
-- under 0.01 ms count as 0.01 ms), so a percentile read from it is within 5%
-- of the exact one. Per integration: the whole day's or one partner's
-- latency reads a few hundred thousand rows. One workspace's or destination's
-- reads destination_latency.sql's histogram instead.
-- Hours are grouped as integers, as in outcomes.sql.
WITH grouped AS (
    SELECT
        epoch_us(started_at) // 3600000000 AS started_hour,
        integration,
        floor(ln(greatest(duration_ms, 0.01)) / ln(1.1))::SMALLINT AS bucket,
        count(*)::BIGINT AS requests,
        sum(duration_ms)::DOUBLE AS duration_ms_sum,
        max(duration_ms)::DOUBLE AS duration_ms_max
    FROM batch
    WHERE attempt >= 1 AND duration_ms IS NOT NULL
    GROUP BY ALL
)

SELECT to_timestamp(started_hour * 3600) AS started_hour, * EXCLUDE (started_hour)
FROM grouped
ORDER BY integration, started_hour, bucket
