-- failures_by_class: failures_by_class.sql from the raw log's final records.
SELECT
    outcome,
    error_class,
    count(*)::BIGINT AS jobs,
    sum(event_count)::BIGINT AS events
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
  AND outcome IN ('failed', 'dropped', 'skipped')
GROUP BY outcome, error_class
ORDER BY events DESC, jobs DESC, outcome, error_class
