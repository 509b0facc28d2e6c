-- trace_attempts: every record of one event, where the message index says they are
-- (docs/trace.md).
--
-- The records carrying message id $message_id at the destinations $destinations, in the
-- partitions of dates $dates and hours $hours (trace_index found them there), whose request
-- started in [$start, $end). Constant lists on the partition columns leave DuckDB the other
-- hours' files unopened, and the one on destination_id the other destinations' row groups
-- unread (the attempt files are sorted by workspace_id, destination_id, started_at); the message
-- id is then checked on the few rows left.
--
-- Parameters: $scope_kind, $scope_value, $start, $end, $message_id, $destinations (VARCHAR[]),
-- $dates (DATE[]), $hours (INTEGER[]).
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
WHERE list_contains($dates, date)
  AND list_contains($hours, hour)
  AND list_contains($destinations, destination_id)
  AND in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
  AND started_at >= $start
  AND started_at < $end
  AND list_contains(list_transform(events, lambda e: e.message_id), $message_id)
ORDER BY received_at, destination_id, job_id, attempt, started_at
