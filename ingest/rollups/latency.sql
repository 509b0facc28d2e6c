-- rollup latency: a histogram of request durations per hour and integration.
--
-- Bucket b holds durations in [1.1^b, 1.1^(b+1)) milliseconds (durations
-- under 0.01 ms count as 0.01 ms), so a percentile read from it is within 5%
-- of the exact one. Per integration: the whole day's or one partner's
-- latency reads a few hundred thousand rows. One workspace's or destination's
-- reads destination_latency.sql's histogram instead.
--
-- It is destination_latency.sql's histogram summed over destinations: built
-- from those rows (a few percent of the attempts) rather than from `batch`
-- again, which halves the cost of the two latency rollups.
SELECT
    started_hour,
    integration,
    bucket,
    sum(requests)::BIGINT AS requests,
    sum(duration_ms_sum)::DOUBLE AS duration_ms_sum,
    max(duration_ms_max)::DOUBLE AS duration_ms_max
FROM destination_latency
GROUP BY ALL
ORDER BY integration, started_hour, bucket
