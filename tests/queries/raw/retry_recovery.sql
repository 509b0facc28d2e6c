-- retry_recovery: retry_recovery.sql from the raw log, each job's records grouped by job_id.
WITH cohort AS (
    SELECT *
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_at >= $start
      AND started_at < $end + INTERVAL 1 DAY
      AND received_at >= $start
      AND received_at < $end
      AND replay_of IS NULL
),

jobs AS (
    SELECT
        any_value(event_count) AS events,
        any_value(error_class) FILTER (attempt = 1) AS first_error_class,
        bool_or(attempt = 1 AND outcome = 'retry') AS retried,
        any_value(outcome) FILTER (attempt >= 2 AND outcome <> 'retry') AS outcome,
        any_value(attempt) FILTER (attempt >= 2 AND outcome <> 'retry') AS final_attempt
    FROM cohort
    GROUP BY job_id
    HAVING bool_or(attempt = 1 AND outcome <> 'delivered')
)

SELECT
    first_error_class,
    sum(events)::BIGINT AS first_failed,
    coalesce(sum(events) FILTER (NOT retried), 0)::BIGINT AS not_retried,
    coalesce(sum(events) FILTER (retried), 0)::BIGINT AS retried,
    coalesce(sum(events) FILTER (retried AND outcome = 'delivered'), 0)::BIGINT AS recovered,
    coalesce(sum(events) FILTER (retried AND outcome = 'failed'), 0)::BIGINT AS failed,
    coalesce(sum(events) FILTER (retried AND outcome = 'dropped'), 0)::BIGINT AS dropped,
    coalesce(sum(events) FILTER (retried AND outcome = 'skipped'), 0)::BIGINT AS skipped,
    coalesce(sum(events) FILTER (retried AND outcome IS NULL), 0)::BIGINT AS still_retrying,
    coalesce(100 * recovered / nullif(first_failed, 0)::DOUBLE, 0) AS recovered_pct,
    coalesce(100 * recovered / nullif(sum(events) FILTER (retried), 0)::DOUBLE, 0) AS recovered_of_retried_pct,
    sum(events * final_attempt) FILTER (retried AND outcome = 'delivered')
        / nullif(sum(events) FILTER (retried AND outcome = 'delivered'), 0)::DOUBLE AS mean_attempts_to_recover
FROM jobs
GROUP BY first_error_class
ORDER BY first_failed DESC, first_error_class
