-- by_error: records started in [$start, $end) per error_class and error_code.
--
-- `requests` counts the requests made (attempt >= 1); `unsent` counts the
-- jobs settled without a request (attempt = 0: precheck, disabled), which
-- have an error class too. `events` sums event_count over both, so a retried
-- event counts once per request. `retryable` is what the classification said;
-- a code whose classification changed within the range shows on two rows.
-- `pct` is the share of all requests in the result.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH records AS (
    SELECT error_class, error_code, retryable, attempt, event_count
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
      AND started_at >= $start
      AND started_at < $end
)

SELECT
    error_class,
    error_code,
    retryable,
    count(*) FILTER (attempt >= 1) AS requests,
    count(*) FILTER (attempt = 0) AS unsent,
    sum(event_count)::BIGINT AS events,
    coalesce(100 * count(*) FILTER (attempt >= 1)
             / nullif(sum(count(*) FILTER (attempt >= 1)) OVER (), 0)::DOUBLE, 0) AS pct
FROM records
GROUP BY error_class, error_code, retryable
ORDER BY requests DESC, unsent DESC, error_class, error_code
