-- delivery_delay: how long delivered events took from receipt to delivery,
-- as percentiles, for all of them and split by first attempt versus retries.
--
-- The cohort is the jobs received in [$start, $end) and delivered, their
-- retries read up to a day past $end (as funnel.sql). A delivered job's
-- delay runs from received_at to the end of the request that delivered it
-- (started_at + duration_ms), so it holds the wait in the queue and, for a
-- retried job, every backoff; figures are per event (a job of 3 events
-- counts 3 times). Three rows, always, in this order: `delivery` =
-- 'all', 'first attempt' (attempt 1), 'after retries' (attempt >= 2); with
-- `deliveries` (delivered jobs), `events`, p50_ms, p95_ms, p99_ms, mean_ms,
-- max_ms (NULL when nothing was delivered).
--
-- Read from hourly delay histograms (ingest/rollups/delay.sql): events
-- counted in buckets, bucket b holding delays in [1.1^b, 1.1^(b+1)) ms, with
-- their event-weighted sum and maximum. As in latency_histogram.sql:
-- deliveries, events, mean_ms and max_ms are exact; the percentiles are
-- within 5% of quantile_cont over every delivered event's delay (the
-- histogram_quantiles macro, queries/_macros.sql). Scope 'all' and an
-- integration read `delay_histogram`, a workspace or a destination
-- `destination_delay_histogram` (the scoped_delay_histogram macro).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH groups (i, delivery) AS (
    VALUES (1, 'all'), (2, 'first attempt'), (3, 'after retries')
),

buckets AS (
    SELECT
        g.i,
        h.bucket,
        sum(h.deliveries) AS deliveries,
        sum(h.events) AS events,
        sum(h.delay_ms_sum) AS delay_ms_sum,
        max(h.delay_ms_max) AS delay_ms_max
    FROM scoped_delay_histogram($scope_kind, $scope_value, $start, $end) AS h
    JOIN groups AS g
        ON g.i = 1 OR (g.i = 2 AND h.attempt = 1) OR (g.i = 3 AND h.attempt >= 2)
    GROUP BY g.i, h.bucket
),

grouped AS (
    SELECT
        i,
        sum(deliveries) AS deliveries,
        sum(events) AS events,
        histogram_quantiles(bucket, up_to, delay_ms_max) AS q,
        sum(delay_ms_sum) / sum(events) AS mean_ms,
        max(delay_ms_max) AS max_ms
    FROM (SELECT *, sum(events) OVER (PARTITION BY i ORDER BY bucket) AS up_to FROM buckets)
    GROUP BY i
)

SELECT
    g.delivery,
    coalesce(s.deliveries, 0)::BIGINT AS deliveries,
    coalesce(s.events, 0)::BIGINT AS events,
    s.q[1] AS p50_ms,
    s.q[2] AS p95_ms,
    s.q[3] AS p99_ms,
    s.mean_ms,
    s.max_ms
FROM groups AS g
LEFT JOIN grouped AS s ON s.i = g.i
ORDER BY g.i
