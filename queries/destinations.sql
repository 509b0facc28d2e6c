-- destinations: the destinations of the scope with records started in [$start, $end) (requests,
-- or jobs settled without one), busiest first: what the explorer's destination picker offers
-- (workspaces.sql and integrations.sql are the operators' other pickers).
--
-- One scan of the `outcomes` rollup's request rows with four of its columns, where by_destination
-- reads the cohort's retries a day past $end and sums eight figures: over 31 days the pickers
-- need only who is there. `requests` counts requests started in the range.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
SELECT
    workspace_id,
    destination_id,
    integration,
    coalesce(sum(records) FILTER (attempt >= 1), 0)::BIGINT AS requests
FROM scoped_outcomes($scope_kind, $scope_value, $start, $end, per_destination := true)
GROUP BY workspace_id, destination_id, integration
ORDER BY requests DESC, destination_id
