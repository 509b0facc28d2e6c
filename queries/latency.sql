-- latency: request duration percentiles for requests started in [$start, $end).
--
-- One row overall, or one per integration when $per_integration is true
-- (`integration` is NULL in the overall row). Percentiles use quantile_cont:
-- exact and interpolated between neighbouring values, which a day of one
-- scope's requests affords; switch to approx_quantile (a t-digest) if this
-- ever has to cover far more rows. No rows when there were no requests.
-- duration_ms is NULL exactly for records without a request, attempt 0 and
-- also a skip recorded after a job's tries (attempt k + 1, docs/attempt-log.md):
-- neither is read here, so `requests` counts what the latency histogram counts.
--
-- The exact version, which reads every request of the scope: api.latency
-- runs it only when asked to (`exact=True`), and otherwise reads
-- latency_histogram.sql, within 5% and far fewer rows, for every scope.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql),
-- $per_integration (BOOLEAN).
WITH requests AS (
    SELECT integration, duration_ms
    FROM attempts
    WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
      AND started_in(date, started_at, $start, $end)
      AND attempt >= 1
      AND duration_ms IS NOT NULL
),

grouped AS (
    SELECT
        CASE WHEN $per_integration THEN integration END AS integration,
        count(*) AS requests,
        quantile_cont(duration_ms::DOUBLE, [0.5, 0.95, 0.99]) AS q,
        avg(duration_ms::DOUBLE) AS mean_ms,
        max(duration_ms::DOUBLE) AS max_ms
    FROM requests
    GROUP BY 1
)

SELECT integration, requests, q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms, mean_ms, max_ms
FROM grouped
ORDER BY requests DESC, integration
