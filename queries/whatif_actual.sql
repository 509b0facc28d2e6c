-- whatif_actual: the cohort's actual figures, per bucket of delivery delay, beside which the
-- retry what-if sets each schedule's (docs/whatif.md; the model is queries/whatif.py).
--
-- The cohort is the jobs received in [$start, $end) in the scope, their records read to a day past
-- $end, replays left out. One row per bucket of the delivered records' delay (from receipt to the
-- end of the delivering request), in the delay rollups' log-scale buckets (bucket b: delays in
-- [1.1^b, 1.1^(b+1)) ms), and one with `bucket` NULL for the records that delivered nothing. Summed
-- over every row, the columns are the cohort's: `events_received` (each job has one record with
-- attempt <= 1), `delivered` (and at most one delivered record), `delivered_first` (by the first
-- request: those do not depend on the schedule), `requests`, `jobs_replayed` (first request
-- retried: whatif_jobs.sql's jobs) and `requests_unchanged` (first requests of the jobs not
-- replayed).
SELECT
    CASE
        WHEN outcome = 'delivered'
            THEN log_bucket((epoch(started_at) + coalesce(duration_ms, 0) / 1000 - epoch(received_at)) * 1000)
    END AS bucket,
    coalesce(sum(event_count) FILTER (attempt <= 1), 0)::BIGINT AS events_received,
    coalesce(sum(event_count) FILTER (outcome = 'delivered'), 0)::BIGINT AS delivered,
    coalesce(sum(event_count) FILTER (attempt = 1 AND outcome = 'delivered'), 0)::BIGINT AS delivered_first,
    count(*) FILTER (attempt >= 1) AS requests,
    count(*) FILTER (attempt = 1 AND outcome = 'retry') AS jobs_replayed,
    count(*) FILTER (attempt = 1 AND outcome <> 'retry') AS requests_unchanged
FROM attempts
WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
  AND started_in(date, started_at, $start, $end + INTERVAL 1 DAY)
  AND replay_of IS NULL
  AND received_at >= $start
  AND received_at < $end
GROUP BY ALL
ORDER BY bucket
