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
-- Every record of a job carries the class of its first request as
-- `first_error_class` (docs/attempt-log.md), so all of it is summed from
-- `outcomes`: first failures and retries from the first requests (attempt 1,
-- by error_class), fates from the final records after retries (attempt >= 2,
-- outcome not 'retry', by first_error_class); still_retrying is what is
-- retried and has no final record yet.
--
-- Records written before `first_error_class` existed have it NULL: a
-- retried job whose final record is such a record counts as still_retrying.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH cohort AS MATERIALIZED (
    SELECT attempt, outcome, error_class, first_error_class, sum(events) AS events,
        sum(events * attempt) AS event_attempts
    FROM cohort_outcomes($scope_kind, $scope_value, $start, $end)
    GROUP BY ALL
),

-- Aggregates filter rather than WHERE clauses: DuckDB would push those down
-- into the scan of `cohort`, and list the files differently.
firsts AS (
    SELECT
        error_class,
        sum(events) FILTER (attempt = 1 AND outcome <> 'delivered') AS first_failed,
        coalesce(sum(events) FILTER (attempt = 1 AND outcome = 'retry'), 0) AS retried
    FROM cohort
    GROUP BY error_class
    HAVING first_failed IS NOT NULL
),

-- The retried jobs that ended, by the class of their first failure (NULL: not known, below).
fates AS (
    SELECT
        first_error_class,
        coalesce(sum(events) FILTER (attempt >= 2 AND outcome = 'delivered'), 0) AS recovered,
        coalesce(sum(events) FILTER (attempt >= 2 AND outcome = 'failed'), 0) AS failed,
        coalesce(sum(events) FILTER (attempt >= 2 AND outcome = 'dropped'), 0) AS dropped,
        coalesce(sum(events) FILTER (attempt >= 2 AND outcome = 'skipped'), 0) AS skipped,
        sum(event_attempts) FILTER (attempt >= 2 AND outcome = 'delivered') AS recovered_attempts
    FROM cohort
    GROUP BY first_error_class
)

SELECT
    f.error_class AS first_error_class,
    f.first_failed::BIGINT AS first_failed,
    (f.first_failed - f.retried)::BIGINT AS not_retried,
    f.retried::BIGINT AS retried,
    coalesce(r.recovered, 0)::BIGINT AS recovered,
    coalesce(r.failed, 0)::BIGINT AS failed,
    coalesce(r.dropped, 0)::BIGINT AS dropped,
    coalesce(r.skipped, 0)::BIGINT AS skipped,
    (f.retried - coalesce(r.recovered + r.failed + r.dropped + r.skipped, 0))::BIGINT AS still_retrying,
    pct(r.recovered, f.first_failed) AS recovered_pct,
    pct(r.recovered, f.retried) AS recovered_of_retried_pct,
    r.recovered_attempts / nullif(r.recovered, 0)::DOUBLE AS mean_attempts_to_recover
FROM firsts AS f
LEFT JOIN fates AS r ON r.first_error_class = f.error_class
ORDER BY first_failed DESC, first_error_class
