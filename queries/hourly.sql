-- hourly: requests started in [$start, $end) per UTC hour and error_class (long format).
--
-- One row per hour and error_class that occurred: `requests`, the events they
-- carried (`events`, a retried event once per request), `delivered_events`
-- (events on requests that delivered, i.e. error_class 'none') and `pct`,
-- the class's share of the hour's requests. The share of 429s is the
-- rate_limit row's (429 is that class's only status) and the share of 5xx the
-- server row's (every 5xx is server): a partner page's rates over time.
-- Hours without requests have no rows. Reads the `outcomes` rollup, whose
-- `started_hour` is the UTC hour of started_at (see day_report.sql for how
-- its sums match `attempts`).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH requests AS (
    SELECT started_hour, error_class, outcome, records, events
    FROM scoped_outcomes($scope_kind, $scope_value, $start, $end)
    WHERE attempt >= 1
)

SELECT
    started_hour AS hour,
    error_class,
    sum(records)::BIGINT AS requests,
    sum(events)::BIGINT AS events,
    coalesce(sum(events) FILTER (outcome = 'delivered'), 0)::BIGINT AS delivered_events,
    100 * sum(records) / sum(sum(records)) OVER (PARTITION BY started_hour)::DOUBLE AS pct
FROM requests
GROUP BY started_hour, error_class
ORDER BY hour, error_class
