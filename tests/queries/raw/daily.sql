-- daily: per UTC day of receipt, the events received and delivered on the first attempt and
-- eventually, with their shares (queries/daily.sql), from the raw log.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH cohort AS (
    SELECT timezone('UTC', received_at)::DATE AS day, attempt, outcome, event_count
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

days AS (
    SELECT
        day,
        coalesce(sum(event_count) FILTER (attempt <= 1), 0)::BIGINT AS events_received,
        coalesce(sum(event_count) FILTER (attempt = 1 AND outcome = 'delivered'), 0)::BIGINT
            AS delivered_first_attempt,
        coalesce(sum(event_count) FILTER (outcome = 'delivered'), 0)::BIGINT AS delivered_eventually
    FROM cohort
    GROUP BY day
)

SELECT
    day,
    events_received,
    delivered_first_attempt,
    delivered_eventually,
    coalesce(100 * delivered_first_attempt / nullif(events_received, 0)::DOUBLE, 0) AS first_attempt_pct,
    coalesce(100 * delivered_eventually / nullif(events_received, 0)::DOUBLE, 0) AS eventual_pct
FROM days
WHERE events_received > 0
ORDER BY day
