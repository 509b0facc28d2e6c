-- day_report: the seed-style report for a scope and a time range, in one row.
--
-- Event figures follow the cohort of jobs received in [$start, $end), each job
-- weighted by its event_count. Every job has exactly one record with
-- attempt <= 1 (its first) and, once it has ended, exactly one record with a
-- final outcome, so each figure is a sum over records: no per-job join.
-- Request figures count requests (attempt >= 1) started in [$start, $end).
--
-- It reads the `outcomes` rollup: records counted per received hour, started
-- hour and every column filtered on here, so `records` sums to what count(*)
-- over `attempts` gives and `events` to sum(event_count). $start and $end are
-- whole UTC hours, so hour bounds select exactly the records that time bounds
-- would.
--
-- One scan serves both kinds of figure: it reads rows started in
-- [$start, $end + 1 day), because a job received before $end can be retried up
-- to a day later, and FILTER clauses pick each figure's rows. Percentages are
-- of events_received or of requests, and 0 when there is nothing to divide by.
--
-- Replayed jobs (docs/replay.md) are not received again: their events count once, in
-- events_received and in failed, dropped or skipped as their first jobs ended; those a replay
-- then delivered are recovered_by_replay (their requests count among the requests).
--
-- Parameters: $scope_kind ('all', 'workspace', 'destination', 'integration'),
-- $scope_value (NULL for 'all'), $start, $end (TIMESTAMPTZ on whole UTC hours,
-- half-open range).
WITH figures AS (
    SELECT
        unnest(cohort_figures(in_cohort, is_request, attempt, outcome, events, records)),
        recovered_by_replay(in_replay, outcome, events) AS recovered_by_replay,
        coalesce(sum(records) FILTER (is_request AND status_code IN (401, 403)), 0)::BIGINT
            AS auth_requests,
        coalesce(sum(records) FILTER (is_request AND status_code = 400), 0)::BIGINT
            AS status_400_requests,
        coalesce(sum(records) FILTER (is_request AND status_code = 429), 0)::BIGINT
            AS status_429_requests,
        coalesce(sum(records) FILTER (is_request AND status_code BETWEEN 500 AND 599), 0)::BIGINT
            AS status_5xx_requests,
        coalesce(sum(records) FILTER (is_request AND error_class = 'network'), 0)::BIGINT
            AS network_requests,
        coalesce(sum(records) FILTER (is_request AND error_class = 'timeout'), 0)::BIGINT
            AS timeout_requests,
        coalesce(sum(records) FILTER (is_request AND error_class = 'tls'), 0)::BIGINT AS tls_requests,
        coalesce(sum(records) FILTER (is_request AND error_class = 'nonstandard'), 0)::BIGINT
            AS nonstandard_requests
    FROM cohort_and_requests($scope_kind, $scope_value, $start, $end)
),

derived AS (
    SELECT
        *,
        delivered_eventually - delivered_first_attempt AS delivered_after_retries,
        events_received - delivered_eventually - failed - dropped - skipped AS still_retrying
    FROM figures
)

SELECT
    events_received,
    delivered_first_attempt,
    pct(delivered_first_attempt, events_received) AS delivered_first_attempt_pct,
    delivered_eventually,
    pct(delivered_eventually, events_received) AS delivered_eventually_pct,
    delivered_after_retries,
    pct(delivered_after_retries, events_received) AS delivered_after_retries_pct,
    failed,
    pct(failed, events_received) AS failed_pct,
    dropped,
    pct(dropped, events_received) AS dropped_pct,
    skipped,
    pct(skipped, events_received) AS skipped_pct,
    still_retrying,
    pct(still_retrying, events_received) AS still_retrying_pct,
    recovered_by_replay,
    pct(recovered_by_replay, events_received) AS recovered_by_replay_pct,
    requests,
    auth_requests,
    pct(auth_requests, requests) AS auth_requests_pct,
    status_400_requests,
    pct(status_400_requests, requests) AS status_400_requests_pct,
    status_429_requests,
    pct(status_429_requests, requests) AS status_429_requests_pct,
    status_5xx_requests,
    pct(status_5xx_requests, requests) AS status_5xx_requests_pct,
    network_requests,
    pct(network_requests, requests) AS network_requests_pct,
    timeout_requests,
    pct(timeout_requests, requests) AS timeout_requests_pct,
    tls_requests,
    pct(tls_requests, requests) AS tls_requests_pct,
    nonstandard_requests,
    pct(nonstandard_requests, requests) AS nonstandard_requests_pct
FROM derived
