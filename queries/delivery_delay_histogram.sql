-- delivery_delay_histogram: delivered events by delay from receipt to delivery,
-- in log-spaced buckets, for the first attempt and after retries.
--
-- Cohort, delay and histograms as in delivery_delay.sql: jobs received in
-- [$start, $end) and delivered, their retries read up to a day past $end;
-- the delay runs from received_at to the end of the delivering request.
-- One row per `delivery` ('first attempt': attempt 1, 'after retries':
-- attempt >= 2) and bucket that holds deliveries: bucket b counts delays in
-- [lower_ms, upper_ms) = [1.1^b, 1.1^(b+1)) ms (delays under 0.01 ms in the
-- lowest bucket), with `deliveries` (jobs), `events`, `pct` (the share of the
-- delivery group's events) and `cumulative_pct` (the share at or below the
-- bucket). Exact: the histogram's counts are counts, not samples. Plot
-- lower_ms on a log axis.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH buckets AS (
    SELECT
        CASE WHEN attempt = 1 THEN 'first attempt' ELSE 'after retries' END AS delivery,
        bucket,
        sum(deliveries)::BIGINT AS deliveries,
        sum(events)::BIGINT AS events
    FROM scoped_delay_histogram($scope_kind, $scope_value, $start, $end)
    GROUP BY ALL
)

SELECT
    delivery,
    bucket,
    pow(1.1, bucket) AS lower_ms,
    pow(1.1, bucket + 1) AS upper_ms,
    deliveries,
    events,
    100 * events / sum(events) OVER (PARTITION BY delivery)::DOUBLE AS pct,
    100 * sum(events) OVER (PARTITION BY delivery ORDER BY bucket) / sum(events) OVER (PARTITION BY delivery)::DOUBLE
        AS cumulative_pct
FROM buckets
ORDER BY delivery = 'after retries', bucket
