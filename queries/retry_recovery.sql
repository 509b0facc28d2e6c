-- retry_recovery: what retries recovered, per class of each job's first failure.
--
-- The cohort is the jobs received in [$start, $end), each weighted by its
-- event_count, their retries read up to a day past $end (as funnel.sql). A
-- job's first failure is its first request when that did not deliver, so
-- `first_failed` counts the events whose first attempt failed with the row's
-- class; of them:
--   * not_retried: settled at the first attempt (failed, or dropped when no
--     retry was allowed): every first failure of a class retries cannot help;
--   * retried: given a second attempt, which ended as
--     recovered (delivered), failed (a terminal error on a later attempt),
--     dropped (the retry window or the attempts ran out), skipped (the
--     destination was disabled meanwhile), or is still_retrying (no final
--     record by a day past $end);
--   * recovered_pct: recovered as a share of first_failed;
--     recovered_of_retried_pct: as a share of retried (0 when nothing to divide by);
--   * mean_attempts_to_recover: the attempt that delivered, on average over the
--     recovered events (NULL when none was).
-- first_failed = not_retried + retried; retried = recovered + failed + dropped
-- + skipped + still_retrying.
--
-- A retried job's first request and its final record sit in different hours,
-- so they are linked by job (a 64-bit key of job_id) in the `retried_jobs` rollup (see
-- ingest/rollups/retried_jobs.sql and retries.sql); the first failures that
-- were not retried are summed from `outcomes`.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH first_failures AS (
    SELECT error_class, outcome, events
    FROM outcomes
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      -- Retries start less than a day after received_at, hence the extra day.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_hour >= $start
      AND started_hour < $end + INTERVAL 1 DAY
      AND received_hour >= $start
      AND received_hour < $end
      AND attempt = 1
      AND outcome <> 'delivered'
),

retried AS (
    SELECT job_key, attempt, outcome, error_class, events
    FROM retried_jobs
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_hour >= $start
      AND started_hour < $end + INTERVAL 1 DAY
      AND received_hour >= $start
      AND received_hour < $end
),

-- One row per retried job: the class of its first failure and, once it has ended, its fate.
jobs AS (
    SELECT
        any_value(error_class) FILTER (attempt = 1) AS first_error_class,
        any_value(events) AS events,
        any_value(outcome) FILTER (attempt >= 2) AS outcome,
        any_value(attempt) FILTER (attempt >= 2) AS final_attempt
    FROM retried
    GROUP BY job_key
),

fates AS (
    SELECT
        first_error_class,
        sum(events) AS retried,
        coalesce(sum(events) FILTER (outcome = 'delivered'), 0) AS recovered,
        coalesce(sum(events) FILTER (outcome = 'failed'), 0) AS failed,
        coalesce(sum(events) FILTER (outcome = 'dropped'), 0) AS dropped,
        coalesce(sum(events) FILTER (outcome = 'skipped'), 0) AS skipped,
        coalesce(sum(events) FILTER (outcome IS NULL), 0) AS still_retrying,
        sum(events * final_attempt) FILTER (outcome = 'delivered') AS recovered_attempts
    FROM jobs
    GROUP BY first_error_class
),

firsts AS (
    SELECT error_class, sum(events) AS first_failed
    FROM first_failures
    GROUP BY error_class
)

SELECT
    f.error_class AS first_error_class,
    f.first_failed::BIGINT AS first_failed,
    (f.first_failed - coalesce(r.retried, 0))::BIGINT AS not_retried,
    coalesce(r.retried, 0)::BIGINT AS retried,
    coalesce(r.recovered, 0)::BIGINT AS recovered,
    coalesce(r.failed, 0)::BIGINT AS failed,
    coalesce(r.dropped, 0)::BIGINT AS dropped,
    coalesce(r.skipped, 0)::BIGINT AS skipped,
    coalesce(r.still_retrying, 0)::BIGINT AS still_retrying,
    coalesce(100 * r.recovered / nullif(f.first_failed, 0)::DOUBLE, 0) AS recovered_pct,
    coalesce(100 * r.recovered / nullif(r.retried, 0)::DOUBLE, 0) AS recovered_of_retried_pct,
    r.recovered_attempts / nullif(r.recovered, 0)::DOUBLE AS mean_attempts_to_recover
FROM firsts AS f
LEFT JOIN fates AS r ON r.first_error_class = f.error_class
ORDER BY first_failed DESC, first_error_class
