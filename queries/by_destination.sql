-- by_destination: requests and the event cohort per destination.
--
-- Figures as in day_report.sql: `requests` counts requests started in
-- [$start, $end); the event figures follow the jobs received in [$start, $end),
-- weighted by event_count, reading their retries up to a day past $end, from
-- the `outcomes` rollup (see day_report.sql for how its sums match `attempts`).
-- A destination belongs to one workspace and one integration.
-- first_attempt_pct and eventually_pct are shares of events_received (0 when
-- nothing was received). Destinations with neither requests nor received
-- events in the range are left out.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
SELECT
    *,
    pct(delivered_first_attempt, events_received) AS first_attempt_pct,
    pct(delivered_eventually, events_received) AS eventually_pct
FROM destination_figures($scope_kind, $scope_value, $start, $end)
ORDER BY events_received DESC, requests DESC, destination_id
