-- integrations: the integrations of the scope with records started in [$start, $end) (requests, or
-- jobs settled without one), busiest first, counted from the raw log.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
SELECT
    integration,
    count(*) FILTER (attempt >= 1)::BIGINT AS requests
FROM attempts
WHERE ($scope_kind = 'all'
       OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
       OR ($scope_kind = 'destination' AND destination_id = $scope_value)
       OR ($scope_kind = 'integration' AND integration = $scope_value))
  AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
  AND started_at >= $start
  AND started_at < $end
GROUP BY integration
ORDER BY requests DESC, integration
