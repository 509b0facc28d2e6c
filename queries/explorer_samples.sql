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
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Partitions: whole days, then whole hours, outside the range are never opened
      -- (in seconds: the same test written with INTERVAL arithmetic ran 3 times slower).
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
      AND epoch(date) + hour * 3600 >= epoch($start)
      AND epoch(date) + hour * 3600 < epoch($end)
      AND started_at >= $start
      AND started_at < $end
      AND error_class <> 'none'
      AND ($error_class IS NULL OR error_class = $error_class)
      AND ($error_code IS NULL OR error_code = $error_code)
      AND ($status_code IS NULL OR status_code = $status_code)
      AND ($destination_id IS NULL OR destination_id = $destination_id)
      AND ($integration IS NULL OR integration = $integration)
    ORDER BY started_at DESC, attempt_id DESC
    LIMIT $limit
)

SELECT
    CASE WHEN $scope_kind <> 'integration' THEN attempt_id END AS attempt_id,
    CASE WHEN $scope_kind <> 'integration' THEN job_id END AS job_id,
    attempt,
    started_at,
    CASE WHEN $scope_kind <> 'integration' THEN workspace_id END AS workspace_id,
    CASE WHEN $scope_kind <> 'integration' THEN destination_id END AS destination_id,
    integration,
    status_code,
    error_class,
    error_code,
    outcome,
    duration_ms,
    CASE
        WHEN $scope_kind = 'integration'
            THEN redact_body(
                replace(replace(response_body, workspace_id, '<workspace>'), destination_id, '<destination>')
            )
        ELSE response_body
    END AS response_body,
    error_message
FROM matches
ORDER BY started_at DESC, matches.attempt_id DESC
