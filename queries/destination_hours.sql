-- destination_hours: requests started in [$start, $end) per destination and UTC hour, with the 429s.
--
-- One row per destination and hour it was sent requests in: `requests`, the
-- events they carried (`events`, a retried event once per request) and
-- `rate_limited`, the requests answered 429. Compared with a destination's
-- rate limit x 3600, it says in which hours its traffic reached or passed the
-- limit (docs/backlog.md: `queries.headroom.hours_over_limit`); the limit is
-- the engine's configuration, not the log's, so it is not in this query.
-- Hours without requests have no rows. Reads the `outcomes` rollup.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH requests AS (
    SELECT destination_id, started_hour, status_code, records, events
    FROM scoped_outcomes($scope_kind, $scope_value, $start, $end, per_destination := true)
    WHERE attempt >= 1
)

SELECT
    destination_id,
    started_hour AS hour,
    sum(records)::BIGINT AS requests,
    sum(events)::BIGINT AS events,
    coalesce(sum(records) FILTER (status_code = 429), 0)::BIGINT AS rate_limited
FROM requests
GROUP BY destination_id, started_hour
ORDER BY destination_id, hour
