-- by_integration: requests and the event cohort per integration (destination type).
--
-- The same figures as by_destination.sql, summed over every destination of
-- the integration; `destinations` counts those with requests or received
-- events in the range. Reads the `outcomes` rollup, as by_destination.sql.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH scoped AS (
    SELECT
        *,
        received_hour >= $start AND received_hour < $end AS in_cohort,
        attempt >= 1 AND started_hour < $end AS is_request
    FROM outcomes
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_hour >= $start
      AND started_hour < $end + INTERVAL 1 DAY
),

figures AS (
    SELECT
        integration,
        count(DISTINCT destination_id) FILTER (is_request OR in_cohort) AS destinations,
        coalesce(sum(records) FILTER (is_request), 0)::BIGINT AS requests,
        coalesce(sum(events) FILTER (in_cohort AND attempt <= 1), 0)::BIGINT AS events_received,
        coalesce(sum(events) FILTER (in_cohort AND attempt = 1 AND outcome = 'delivered'), 0)::BIGINT
            AS delivered_first_attempt,
        coalesce(sum(events) FILTER (in_cohort AND outcome = 'delivered'), 0)::BIGINT
            AS delivered_eventually,
        coalesce(sum(events) FILTER (in_cohort AND outcome = 'failed'), 0)::BIGINT AS failed,
        coalesce(sum(events) FILTER (in_cohort AND outcome = 'dropped'), 0)::BIGINT AS dropped,
        coalesce(sum(events) FILTER (in_cohort AND outcome = 'skipped'), 0)::BIGINT AS skipped
    FROM scoped
    GROUP BY integration
    HAVING bool_or(is_request OR in_cohort)
)

SELECT
    *,
    events_received - delivered_eventually - failed - dropped - skipped AS still_retrying,
    coalesce(100 * delivered_first_attempt / nullif(events_received, 0)::DOUBLE, 0) AS first_attempt_pct,
    coalesce(100 * delivered_eventually / nullif(events_received, 0)::DOUBLE, 0) AS eventually_pct
FROM figures
ORDER BY events_received DESC, requests DESC, integration
