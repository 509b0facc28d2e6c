-- latency_histogram: approximate request duration percentiles for requests
-- started in [$start, $end), for any scope.
--
-- The same output as latency.sql (one row overall, or one per integration
-- when $per_integration is true; no rows when there were no requests), read
-- from a latency histogram instead of every request: per started hour,
-- requests counted in buckets, bucket b holding durations in
-- [1.1^b, 1.1^(b+1)) ms, with their sum and maximum.
--   * requests, mean_ms (sum / requests) and max_ms are exact (the mean up to
--     the order floating-point sums are added in);
--   * p50_ms, p95_ms and p99_ms are within 5% of latency.sql's: each
--     duration is taken as its bucket's geometric middle, the way the
--     histogram_quantiles macro (queries/_macros.sql) explains.
--
-- Two histograms (the scoped_histogram macro, queries/_macros.sql): scope 'all' and an
-- integration read `latency_histogram` (per integration, small); a workspace or a destination
-- reads `destination_latency_histogram` (per destination, many times bigger, sorted by workspace
-- and destination).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql),
-- $per_integration (BOOLEAN).
WITH buckets AS (
    SELECT
        CASE WHEN $per_integration THEN integration END AS integration,
        bucket,
        sum(requests) AS requests,
        sum(duration_ms_sum) AS duration_ms_sum,
        max(duration_ms_max) AS duration_ms_max
    FROM scoped_histogram(
        'latency_histogram', 'destination_latency_histogram', $scope_kind, $scope_value, $start, $end
    )
    GROUP BY 1, bucket
),

grouped AS (
    SELECT
        integration,
        sum(requests)::BIGINT AS requests,
        histogram_quantiles(bucket, up_to, duration_ms_max) AS q,
        sum(duration_ms_sum) / sum(requests) AS mean_ms,
        max(duration_ms_max) AS max_ms
    FROM (SELECT *, sum(requests) OVER (PARTITION BY integration ORDER BY bucket) AS up_to FROM buckets)
    GROUP BY integration
)

SELECT integration, requests, q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms, mean_ms, max_ms
FROM grouped
ORDER BY requests DESC, integration
