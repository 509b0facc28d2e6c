-- trace_destinations: the destinations one source fanned out to, from the `outcomes` rollup
-- (docs/trace.md): what the trace compares an event's jobs with.
--
-- Per destination that got a job of source $source_id whose request started in [$start, $end):
-- the first and last hour it received an event of the source (a destination first seen after
-- the event arrived was most likely added after it), and its jobs' records.
--
-- Parameters: $scope_kind, $scope_value, $start, $end, $workspace_id, $source_id.
SELECT
    destination_id,
    integration,
    min(received_hour) AS first_received_hour,
    max(received_hour) AS last_received_hour,
    sum(records)::BIGINT AS records
FROM outcomes
WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
  AND started_in(date, started_hour, $start, $end)
  AND workspace_id = $workspace_id
  AND source_id = $source_id
GROUP BY ALL
ORDER BY destination_id
