-- destination_failures: per destination, the cohort's undelivered events by
-- how their jobs ended and the error class of their final record.
--
-- The cohort is the jobs received in [$start, $end), each weighted by its
-- event_count, read up to a day past $end (as by_destination.sql). A job's
-- final record says how it ended: `failed` (a terminal error: auth,
-- validation, client, tls, nonstandard, redirect, server 501/505),
-- `dropped` (retryable, but the window or the attempts ran out: rate_limit,
-- server, network, timeout), `skipped` (never sent, or not sent again:
-- precheck, disabled). One row per destination (with its workspace and
-- integration), outcome and error_class that occurred: `jobs` and `events`.
-- Summed over error classes, `events` gives by_destination.sql's failed,
-- dropped and skipped. Reads the `outcomes` rollup (see day_report.sql).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
SELECT
    workspace_id,
    destination_id,
    integration,
    outcome,
    error_class,
    sum(records)::BIGINT AS jobs,
    sum(events)::BIGINT AS events
FROM cohort_outcomes($scope_kind, $scope_value, $start, $end, per_destination := true)
WHERE outcome IN ('failed', 'dropped', 'skipped')
GROUP BY workspace_id, destination_id, integration, outcome, error_class
ORDER BY events DESC, jobs DESC, workspace_id, destination_id, outcome, error_class
