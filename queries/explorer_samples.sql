-- explorer_samples: the latest records that did not deliver, for the error explorer.
--
-- Records started in [$start, $end) with an error_class other than 'none'
-- (failed requests, and jobs settled without a request, attempt 0),
-- narrowed by the filters explorer_hours.sql takes (each ignored when NULL),
-- newest first, at most $limit of them: one row per record with its ids,
-- where it went and what came back.
--
-- It reads the raw log, which keeps the bodies and ids the rollups do not.
-- The `date` and `hour` partitions outside [$start, $end) are skipped, and
-- api.explorer_samples narrows $start to the latest hours that hold $limit
-- matches (counted by explorer_hours.sql from the `outcomes` rollup), so a
-- day's worth of filters opens an hour or two of files, not the day.
--
-- Scoped to an integration (a partner's view, across customers), the ids
-- that name a customer or a job (workspace_id, destination_id, job_id,
-- attempt_id) are NULL and response_body is redacted with redact_body
-- (ingest/rollups/macros.sql), after its own workspace and destination ids
-- are replaced, as in error_samples.sql.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql),
-- $error_class, $error_code, $status_code, $destination_id, $integration
-- (filters; NULL for any), $limit (rows to return).
WITH matches AS (
    SELECT
        attempt_id, job_id, attempt, started_at, workspace_id, destination_id, integration, status_code,
        error_class, error_code, outcome, duration_ms, response_body, error_message
    FROM attempts
    WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
      AND started_in_hours(date, hour, started_at, $start, $end)
      AND explorer_match(error_class, error_code, status_code, destination_id, integration,
                         $error_class, $error_code, $status_code, $destination_id, $integration)
    ORDER BY started_at DESC, attempt_id DESC
    LIMIT $limit
)

SELECT
    id_for_scope($scope_kind, attempt_id) AS attempt_id,
    id_for_scope($scope_kind, job_id) AS job_id,
    attempt,
    started_at,
    id_for_scope($scope_kind, workspace_id) AS workspace_id,
    id_for_scope($scope_kind, destination_id) AS destination_id,
    integration,
    status_code,
    error_class,
    error_code,
    outcome,
    duration_ms,
    body_for_scope($scope_kind, response_body, workspace_id, destination_id) AS response_body,
    error_message
FROM matches
ORDER BY started_at DESC, matches.attempt_id DESC
