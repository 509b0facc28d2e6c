-- by_destination: requests and the event cohort per destination.
--
-- Figures as in day_report.sql: `requests` counts requests started in
-- [$start, $end); the event figures follow the jobs received in [$start, $end),
-- weighted by event_count, reading their retries up to a day past $end.
-- A destination belongs to one workspace and one integration.
-- first_attempt_pct and eventually_pct are shares of events_received (0 when
-- nothing was received). Destinations with neither requests nor received
-- events in the range are left out.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH scoped AS (
    SELECT
        *,
        received_at >= $start AND received_at < $end AND replay_of IS NULL AS in_cohort,
        received_at >= $start AND received_at < $end AND replay_of IS NOT NULL AS in_replay,
        attempt >= 1 AND started_at < $end AS is_request
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_at >= $start
      AND started_at < $end + INTERVAL 1 DAY
),

figures AS (
    SELECT
        workspace_id,
        destination_id,
        integration,
        count(*) FILTER (is_request) AS requests,
        coalesce(sum(event_count) FILTER (in_cohort AND attempt <= 1), 0)::BIGINT AS events_received,
        coalesce(sum(event_count) FILTER (in_cohort AND attempt = 1 AND outcome = 'delivered'), 0)::BIGINT
            AS delivered_first_attempt,
        coalesce(sum(event_count) FILTER (in_cohort AND outcome = 'delivered'), 0)::BIGINT
            AS delivered_eventually,
        coalesce(sum(event_count) FILTER (in_cohort AND outcome = 'failed'), 0)::BIGINT AS failed,
        coalesce(sum(event_count) FILTER (in_cohort AND outcome = 'dropped'), 0)::BIGINT AS dropped,
        coalesce(sum(event_count) FILTER (in_cohort AND outcome = 'skipped'), 0)::BIGINT AS skipped,
        coalesce(sum(event_count) FILTER (in_replay AND outcome = 'delivered'), 0)::BIGINT AS recovered_by_replay
    FROM scoped
    GROUP BY workspace_id, destination_id, integration
    HAVING count(*) FILTER (is_request OR in_cohort OR in_replay) > 0
)

SELECT
    *,
    events_received - delivered_eventually - failed - dropped - skipped AS still_retrying,
    coalesce(100 * delivered_first_attempt / nullif(events_received, 0)::DOUBLE, 0) AS first_attempt_pct,
    coalesce(100 * delivered_eventually / nullif(events_received, 0)::DOUBLE, 0) AS eventually_pct
FROM figures
ORDER BY events_received DESC, requests DESC, destination_id
