-- by_integration: requests and the event cohort per integration (destination type).
--
-- The same figures as by_destination.sql, summed over every destination of
-- the integration; `destinations` counts those with requests or received
-- events in the range. Reads the `outcomes` rollup, as by_destination.sql.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH figures AS (
    SELECT
        integration,
        count(DISTINCT destination_id) FILTER (is_request OR in_cohort) AS destinations,
        unnest(cohort_figures(in_cohort, is_request, attempt, outcome, events, records))
    FROM cohort_and_requests($scope_kind, $scope_value, $start, $end, per_destination := true)
    GROUP BY integration
    HAVING bool_or(is_request OR in_cohort)
)

SELECT
    *,
    events_received - delivered_eventually - failed - dropped - skipped AS still_retrying,
    pct(delivered_first_attempt, events_received) AS first_attempt_pct,
    pct(delivered_eventually, events_received) AS eventually_pct
FROM figures
ORDER BY events_received DESC, requests DESC, integration
