-- by_status_code: requests started in [$start, $end) per HTTP status code.
--
-- status_code is NULL when no response came back; those requests are split by
-- error_code (ECONNRESET, ETIMEDOUT, ...), which is then the row's label.
-- `events` sums event_count over the requests, so an event retried three
-- times counts three times. `pct` is the share of all requests in the result.
-- Reads the `outcomes` rollup: `records` and `events` sum to count(*) and
-- sum(event_count) over `attempts` (see day_report.sql).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH requests AS (
    SELECT status_code, error_code, error_class, records, events
    FROM outcomes
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
      AND started_hour >= $start
      AND started_hour < $end
      AND attempt >= 1
)

SELECT
    coalesce(status_code::VARCHAR, error_code, 'no response') AS label,
    status_code,
    error_class,
    sum(records)::BIGINT AS requests,
    sum(events)::BIGINT AS events,
    100 * sum(records) / sum(sum(records)) OVER ()::DOUBLE AS pct
FROM requests
GROUP BY label, status_code, error_class
ORDER BY requests DESC, label
