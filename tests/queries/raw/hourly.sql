-- hourly: requests started in [$start, $end) per UTC hour and error_class (long format).
--
-- One row per hour and error_class that occurred: `requests`, the events they
-- carried (`events`, a retried event once per request) and `delivered_events`
-- (events on requests that delivered, i.e. error_class 'none'). Hours without
-- requests have no rows. The connection runs in UTC, so hours are UTC hours.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH requests AS (
    SELECT started_at, error_class, outcome, event_count
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
      AND started_at >= $start
      AND started_at < $end
      AND attempt >= 1
)

SELECT
    date_trunc('hour', started_at) AS hour,
    error_class,
    count(*) AS requests,
    sum(event_count)::BIGINT AS events,
    coalesce(sum(event_count) FILTER (outcome = 'delivered'), 0)::BIGINT AS delivered_events,
    100 * count(*) / sum(count(*)) OVER (PARTITION BY hour)::DOUBLE AS pct
FROM requests
GROUP BY hour, error_class
ORDER BY hour, error_class
