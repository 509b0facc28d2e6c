-- trace_attempts: every record of the jobs that carried one event (docs/trace.md).
--
-- The records of the jobs $job_ids (found by trace_index) whose request started in
-- [$start, $end) and that carry message id $message_id. The attempt files are sorted by
-- workspace_id, destination_id, started_at, and job ids are time-ordered: the scalar bounds
-- ($workspace_id, the destinations' and the jobs' least and greatest ids) let DuckDB skip the
-- row groups of every other destination and time before the lists are checked.
--
-- Parameters: $scope_kind, $scope_value, $start, $end, $message_id, $workspace_id,
-- $job_ids (VARCHAR[]), $first_destination, $last_destination, $first_job, $last_job.
SELECT
    job_id,
    attempt,
    workspace_id,
    source_id,
    destination_id,
    integration,
    received_at,
    started_at,
    duration_ms,
    status_code,
    error_class,
    error_code,
    outcome,
    next_attempt_at,
    replay_of,
    event_count,
    error_message
FROM attempts
WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
  AND started_in_hours(date, hour, started_at, $start, $end)
  AND workspace_id = $workspace_id
  AND destination_id BETWEEN $first_destination AND $last_destination
  AND job_id BETWEEN $first_job AND $last_job
  AND list_contains($job_ids, job_id)
  AND list_contains(list_transform(events, lambda e: e.message_id), $message_id)
ORDER BY received_at, destination_id, job_id, attempt, started_at
