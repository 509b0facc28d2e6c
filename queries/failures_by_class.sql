-- failures_by_class: the cohort's undelivered events by how their jobs ended and the error class
-- of their final record: destination_failures.sql summed over destinations, for a report that
-- shows only these totals. For 'all' and an integration it reads `integration_outcomes` (a tenth
-- of the rows of `outcomes`; cohort_outcomes without per_destination).
--
-- Returns outcome ('failed', 'dropped', 'skipped'), error_class, jobs, events.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
SELECT
    outcome,
    error_class,
    sum(records)::BIGINT AS jobs,
    sum(events)::BIGINT AS events
FROM cohort_outcomes($scope_kind, $scope_value, $start, $end)
WHERE outcome IN ('failed', 'dropped', 'skipped')
GROUP BY outcome, error_class
ORDER BY events DESC, jobs DESC, outcome, error_class
