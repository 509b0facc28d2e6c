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
--   * p50_ms, p95_ms and p99_ms are within 5% of latency.sql's. quantile_cont
--     takes the durations at ranks floor(r) and ceil(r), r = q * (requests - 1)
--     in sorted order, and interpolates between them. Here each of the two is
--     replaced by its bucket's geometric middle, 1.1^(b + 0.5), which is
--     within a factor 1.1^0.5 (4.9%) of any duration in the bucket, and the
--     same interpolation applied; a bucket's middle can lie above the largest
--     duration, so the result is capped at max_ms, which only brings it closer.
--     The bucket of a rank is the lowest whose cumulative count exceeds it.
-- Durations under 0.01 ms share one bucket, so these bounds hold from 0.01 ms
-- up.
--
-- Two histograms, one per branch of `histogram` below: scope 'all' and an
-- integration read `latency_histogram` (per integration, small); a workspace
-- or a destination reads `destination_latency_histogram` (per destination,
-- many times bigger, sorted by workspace and destination). Each branch is
-- guarded by $scope_kind, a bound value DuckDB folds when it plans the
-- statement: the other scopes' branch becomes an empty result, and EXPLAIN
-- ANALYZE shows no file of its view read. Binding that view still lists its
-- files and opens their footers (union_by_name), a few milliseconds.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql),
-- $per_integration (BOOLEAN).
WITH histogram AS (
    SELECT integration, bucket, requests, duration_ms_sum, duration_ms_max
    FROM latency_histogram
    WHERE ($scope_kind = 'all' OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
      AND started_hour >= $start
      AND started_hour < $end
    UNION ALL
    SELECT integration, bucket, requests, duration_ms_sum, duration_ms_max
    FROM destination_latency_histogram
    WHERE (($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value))
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
      AND started_hour >= $start
      AND started_hour < $end
),

buckets AS (
    SELECT
        CASE WHEN $per_integration THEN integration END AS integration,
        bucket,
        sum(requests) AS requests,
        sum(duration_ms_sum) AS duration_ms_sum,
        max(duration_ms_max) AS duration_ms_max
    FROM histogram
    GROUP BY 1, bucket
),

cumulative AS (
    SELECT
        integration,
        sum(requests) OVER (PARTITION BY integration ORDER BY bucket) AS up_to,
        pow(1.1, bucket + 0.5) AS middle_ms
    FROM buckets
),

grouped AS (
    SELECT
        integration,
        sum(requests)::BIGINT AS requests,
        sum(duration_ms_sum) / sum(requests) AS mean_ms,
        max(duration_ms_max) AS max_ms
    FROM buckets
    GROUP BY integration
),

ranks AS (
    SELECT grouped.*, p.i, (requests - 1) * p.q AS r
    FROM grouped, (VALUES (1, 0.5), (2, 0.95), (3, 0.99)) AS p (i, q)
),

percentiles AS (
    SELECT
        ranks.integration,
        ranks.i,
        any_value(ranks.requests) AS requests,
        any_value(ranks.mean_ms) AS mean_ms,
        any_value(ranks.max_ms) AS max_ms,
        any_value(ranks.r) AS r,
        arg_min(c.middle_ms, c.up_to) FILTER (c.up_to > floor(ranks.r)) AS below_ms,
        arg_min(c.middle_ms, c.up_to) FILTER (c.up_to > ceil(ranks.r)) AS above_ms
    FROM ranks
    -- integration is NULL in the overall row, where = would match nothing.
    JOIN cumulative AS c ON c.integration IS NOT DISTINCT FROM ranks.integration
    GROUP BY ranks.integration, ranks.i
),

interpolated AS (
    SELECT
        integration,
        any_value(requests) AS requests,
        list(least(below_ms + (r - floor(r)) * (above_ms - below_ms), max_ms) ORDER BY i) AS q,
        any_value(mean_ms) AS mean_ms,
        any_value(max_ms) AS max_ms
    FROM percentiles
    GROUP BY integration
)

SELECT integration, requests, q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms, mean_ms, max_ms
FROM interpolated
ORDER BY requests DESC, integration
