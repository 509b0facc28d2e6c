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
FROM outcomes
WHERE ($scope_kind = 'all'
       OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
       OR ($scope_kind = 'destination' AND destination_id = $scope_value)
       OR ($scope_kind = 'integration' AND integration = $scope_value))
  -- Files are partitioned by started_at's UTC date: this skips whole days.
  AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
  AND started_hour >= $start
  AND started_hour < $end
  AND error_class <> 'none'
  AND ($error_class IS NULL OR error_class = $error_class)
  AND ($error_code IS NULL OR error_code = $error_code)
  AND ($status_code IS NULL OR status_code = $status_code)
  AND ($destination_id IS NULL OR destination_id = $destination_id)
  AND ($integration IS NULL OR integration = $integration)
GROUP BY started_hour, error_class
ORDER BY hour, error_class
