-- job_history: every record of one delivery job, in attempt order.
--
-- The records of job $job_id whose request started in [$start, $end), in
-- the scope: one row per attempt (attempt 0 for a job settled without a
-- request), with what was sent, what came back and what was decided next.
-- api.job_history derives the range from the job id, a ULID whose first 10
-- characters are its creation time (ingest/ids.py): from the hour before
-- the job was created (clocks of two processes may differ a little) to a
-- day and a retry window (4 h) after, since retries start less than a day
-- after received_at. Only those hours' partitions are opened.
--
-- It reads the raw log. Scoped to an integration (a partner's view), the ids
-- that name a customer (workspace_id, source_id, destination_id) are NULL
-- and response_body is redacted as in explorer_samples.sql.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql),
-- $job_id.
SELECT
    attempt_id,
    job_id,
    attempt,
    id_for_scope($scope_kind, workspace_id) AS workspace_id,
    id_for_scope($scope_kind, source_id) AS source_id,
    id_for_scope($scope_kind, destination_id) AS destination_id,
    integration,
    event_count,
    received_at,
    started_at,
    duration_ms,
    status_code,
    error_class,
    error_code,
    retryable,
    outcome,
    retry_after_s,
    next_attempt_at,
    request_bytes,
    body_for_scope($scope_kind, response_body, workspace_id, destination_id) AS response_body,
    error_message
FROM attempts
WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
  AND started_in_hours(date, hour, started_at, $start, $end)
  AND job_id = $job_id
ORDER BY attempt, started_at, attempt_id
