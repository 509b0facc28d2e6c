-- by_error: records started in [$start, $end) per error_class and error_code.
--
-- `requests` counts the requests made (attempt >= 1); `unsent` counts the
-- jobs settled without a request (attempt = 0: precheck, disabled), which
-- have an error class too. `events` sums event_count over both, so a retried
-- event counts once per request. `retryable` is what the classification said;
-- a code whose classification changed within the range shows on two rows.
-- `pct` is the share of all requests in the result. Reads the `outcomes`
-- rollup: `records` and `events` sum to count(*) and sum(event_count) over
-- `attempts` (see day_report.sql).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH scoped AS (
    SELECT error_class, error_code, retryable, attempt, records, events
    FROM scoped_outcomes($scope_kind, $scope_value, $start, $end)
),

counted AS (
    SELECT
        error_class,
        error_code,
        retryable,
        coalesce(sum(records) FILTER (attempt >= 1), 0)::BIGINT AS requests,
        coalesce(sum(records) FILTER (attempt = 0), 0)::BIGINT AS unsent,
        sum(events)::BIGINT AS events
    FROM scoped
    GROUP BY error_class, error_code, retryable
)

SELECT *, pct(requests, sum(requests) OVER ()) AS pct
FROM counted
ORDER BY requests DESC, unsent DESC, error_class, error_code, retryable
