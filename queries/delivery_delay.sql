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
-- within 5% of quantile_cont over every delivered event's delay, found by
-- interpolating between the geometric middles of the buckets holding ranks
-- floor(r) and ceil(r), r = q * (events - 1), capped at max_ms.
--
-- Two histograms, one per branch of `histogram`, as in latency_histogram.sql:
-- scope 'all' and an integration read `delay_histogram` (per integration,
-- small); a workspace or a destination reads `destination_delay_histogram`
-- (per destination, sorted by workspace and destination). DuckDB folds the
-- other scopes' branch away when it plans the statement.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH histogram AS (
    SELECT attempt, bucket, deliveries, events, delay_ms_sum, delay_ms_max
    FROM delay_histogram
    WHERE ($scope_kind = 'all' OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      -- Retries start less than a day after received_at, hence the extra day.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_hour >= $start
      AND started_hour < $end + INTERVAL 1 DAY
      AND received_hour >= $start
      AND received_hour < $end
    UNION ALL
    SELECT attempt, bucket, deliveries, events, delay_ms_sum, delay_ms_max
    FROM destination_delay_histogram
    WHERE (($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value))
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_hour >= $start
      AND started_hour < $end + INTERVAL 1 DAY
      AND received_hour >= $start
      AND received_hour < $end
),

groups (i, delivery) AS (
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
    FROM histogram AS h
    JOIN groups AS g
        ON g.i = 1 OR (g.i = 2 AND h.attempt = 1) OR (g.i = 3 AND h.attempt >= 2)
    GROUP BY g.i, h.bucket
),

cumulative AS (
    SELECT i, sum(events) OVER (PARTITION BY i ORDER BY bucket) AS up_to, pow(1.1, bucket + 0.5) AS middle_ms
    FROM buckets
),

grouped AS (
    SELECT
        i,
        sum(deliveries) AS deliveries,
        sum(events) AS events,
        sum(delay_ms_sum) / sum(events) AS mean_ms,
        max(delay_ms_max) AS max_ms
    FROM buckets
    GROUP BY i
),

ranks AS (
    SELECT grouped.*, p.q_i, (events - 1) * p.q AS r
    FROM grouped, (VALUES (1, 0.5), (2, 0.95), (3, 0.99)) AS p (q_i, q)
),

percentiles AS (
    SELECT
        ranks.i,
        ranks.q_i,
        any_value(ranks.r) AS r,
        any_value(ranks.max_ms) AS max_ms,
        arg_min(c.middle_ms, c.up_to) FILTER (c.up_to > floor(ranks.r)) AS below_ms,
        arg_min(c.middle_ms, c.up_to) FILTER (c.up_to > ceil(ranks.r)) AS above_ms
    FROM ranks
    JOIN cumulative AS c ON c.i = ranks.i
    GROUP BY ranks.i, ranks.q_i
),

interpolated AS (
    SELECT i, list(least(below_ms + (r - floor(r)) * (above_ms - below_ms), max_ms) ORDER BY q_i) AS q
    FROM percentiles
    GROUP BY i
)

SELECT
    g.delivery,
    coalesce(s.deliveries, 0)::BIGINT AS deliveries,
    coalesce(s.events, 0)::BIGINT AS events,
    p.q[1] AS p50_ms,
    p.q[2] AS p95_ms,
    p.q[3] AS p99_ms,
    s.mean_ms,
    s.max_ms
FROM groups AS g
LEFT JOIN grouped AS s ON s.i = g.i
LEFT JOIN interpolated AS p ON p.i = g.i
ORDER BY g.i
