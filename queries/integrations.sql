-- integrations: the integrations of the scope with records started in [$start, $end) (requests,
-- or jobs settled without one), busiest first: the operators' integration picker.
--
-- From `integration_outcomes` for every scope but a workspace's or a destination's (the same sums
-- per integration, a tenth of the rows of `outcomes`).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
SELECT
    integration,
    coalesce(sum(records) FILTER (attempt >= 1), 0)::BIGINT AS requests
FROM scoped_outcomes($scope_kind, $scope_value, $start, $end)
GROUP BY integration
ORDER BY requests DESC, integration
