-- explorer_hours: explorer_hours.sql from the raw log.
WITH matches AS (
SELECT
    date_trunc('hour', started_at) AS started_hour,
    error_class,
    count(*)::BIGINT AS records
FROM attempts
WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
  AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
  AND started_at >= $start
  AND started_at < $end
  AND error_class <> 'none'
  AND ($error_class IS NULL OR error_class = $error_class)
  AND ($error_code IS NULL OR error_code = $error_code)
  AND ($status_code IS NULL OR status_code = $status_code)
  AND ($destination_id IS NULL OR destination_id = $destination_id)
  AND ($integration IS NULL OR integration = $integration)
GROUP BY started_hour, error_class
)

SELECT started_hour AS hour, error_class, records
FROM matches
ORDER BY hour, error_class
