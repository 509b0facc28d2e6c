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
    FROM scoped_outcomes($scope_kind, $scope_value, $start, $end)
    WHERE attempt >= 1
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
