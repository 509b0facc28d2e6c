-- explorer_hours: the error explorer's matches per UTC hour and error class.
--
-- Records started in [$start, $end) that did not deliver (error_class other
-- than 'none': failed requests, and jobs settled without a request, attempt
-- 0), narrowed by the explorer's filters, each ignored when NULL:
-- $error_class, $error_code, $status_code, $destination_id, $integration.
-- One row per hour and error class with matches: `records`. Reads the
-- `outcomes` rollup, whose started_hour is the UTC hour of started_at (see
-- day_report.sql for how its sums match `attempts`). api.explorer_samples
-- reads it first, to find the latest hours holding the samples it wants, so
-- that explorer_samples.sql opens only those hours of the raw log.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql),
-- $error_class, $error_code, $status_code, $destination_id, $integration
-- (filters; NULL for any).
SELECT
    started_hour AS hour,
    error_class,
    sum(records)::BIGINT AS records
FROM scoped_outcomes($scope_kind, $scope_value, $start, $end, per_destination := true)
WHERE explorer_match(error_class, error_code, status_code, destination_id, integration,
                     $error_class, $error_code, $status_code, $destination_id, $integration)
GROUP BY started_hour, error_class
ORDER BY hour, error_class
