-- workspaces: the workspaces of the scope with records started in [$start, $end) (requests, or
-- jobs settled without one), busiest first: the operators' workspace picker.
--
-- destinations.sql per workspace: over 31 days, grouping the `outcomes` rows by one column
-- instead of three took a third of the time, and the picker needs no more.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
SELECT
    workspace_id,
    coalesce(sum(records) FILTER (attempt >= 1), 0)::BIGINT AS requests
FROM scoped_outcomes($scope_kind, $scope_value, $start, $end, per_destination := true)
GROUP BY workspace_id
ORDER BY requests DESC, workspace_id
