-- destination_hours: requests started in [$start, $end) per destination and UTC hour, with the 429s.
--
-- The raw-log version of queries/destination_hours.sql.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH requests AS (
    SELECT destination_id, started_at, status_code, event_count
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
      AND started_at >= $start
      AND started_at < $end
      AND attempt >= 1
)

SELECT
    destination_id,
    date_trunc('hour', started_at) AS hour,
    count(*) AS requests,
    sum(event_count)::BIGINT AS events,
    count(*) FILTER (status_code = 429) AS rate_limited
FROM requests
GROUP BY destination_id, hour
ORDER BY destination_id, hour
