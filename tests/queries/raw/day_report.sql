-- day_report: the seed-style report for a scope and a time range, in one row.
--
-- Event figures follow the cohort of jobs received in [$start, $end), each job
-- weighted by its event_count. Every job has exactly one record with
-- attempt <= 1 (its first) and, once it has ended, exactly one record with a
-- final outcome, so each figure is a sum over rows: no per-job join.
-- Request figures count requests (attempt >= 1) started in [$start, $end).
--
-- One scan serves both: it reads rows started in [$start, $end + 1 day),
-- because a job received before $end can be retried up to a day later, and
-- FILTER clauses pick each figure's rows. Percentages are of events_received
-- or of requests, and 0 when there is nothing to divide by.
--
-- Parameters: $scope_kind ('all', 'workspace', 'destination', 'integration'),
-- $scope_value (NULL for 'all'), $start, $end (TIMESTAMPTZ, half-open range).
WITH scoped AS (
    SELECT
        *,
        received_at >= $start AND received_at < $end AND replay_of IS NULL AS in_cohort,
        received_at >= $start AND received_at < $end AND replay_of IS NOT NULL AS in_replay,
        attempt >= 1 AND started_at < $end AS is_request
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_at >= $start
      AND started_at < $end + INTERVAL 1 DAY
),

figures AS (
    SELECT
        coalesce(sum(event_count) FILTER (in_cohort AND attempt <= 1), 0)::BIGINT AS events_received,
        coalesce(sum(event_count) FILTER (in_cohort AND attempt = 1 AND outcome = 'delivered'), 0)::BIGINT
            AS delivered_first_attempt,
        coalesce(sum(event_count) FILTER (in_cohort AND outcome = 'delivered'), 0)::BIGINT
            AS delivered_eventually,
        coalesce(sum(event_count) FILTER (in_cohort AND outcome = 'failed'), 0)::BIGINT AS failed,
        coalesce(sum(event_count) FILTER (in_cohort AND outcome = 'dropped'), 0)::BIGINT AS dropped,
        coalesce(sum(event_count) FILTER (in_cohort AND outcome = 'skipped'), 0)::BIGINT AS skipped,
        coalesce(sum(event_count) FILTER (in_replay AND outcome = 'delivered'), 0)::BIGINT AS recovered_by_replay,
        count(*) FILTER (is_request) AS requests,
        count(*) FILTER (is_request AND status_code IN (401, 403)) AS auth_requests,
        count(*) FILTER (is_request AND status_code = 400) AS status_400_requests,
        count(*) FILTER (is_request AND status_code = 429) AS status_429_requests,
        count(*) FILTER (is_request AND status_code BETWEEN 500 AND 599) AS status_5xx_requests,
        count(*) FILTER (is_request AND error_class = 'network') AS network_requests,
        count(*) FILTER (is_request AND error_class = 'timeout') AS timeout_requests,
        count(*) FILTER (is_request AND error_class = 'tls') AS tls_requests,
        count(*) FILTER (is_request AND error_class = 'nonstandard') AS nonstandard_requests
    FROM scoped
),

derived AS (
    SELECT
        *,
        delivered_eventually - delivered_first_attempt AS delivered_after_retries,
        events_received - delivered_eventually - failed - dropped - skipped AS still_retrying,
        nullif(events_received, 0)::DOUBLE AS per_event,
        nullif(requests, 0)::DOUBLE AS per_request
    FROM figures
)

SELECT
    events_received,
    delivered_first_attempt,
    coalesce(100 * delivered_first_attempt / per_event, 0) AS delivered_first_attempt_pct,
    delivered_eventually,
    coalesce(100 * delivered_eventually / per_event, 0) AS delivered_eventually_pct,
    delivered_after_retries,
    coalesce(100 * delivered_after_retries / per_event, 0) AS delivered_after_retries_pct,
    failed,
    coalesce(100 * failed / per_event, 0) AS failed_pct,
    dropped,
    coalesce(100 * dropped / per_event, 0) AS dropped_pct,
    skipped,
    coalesce(100 * skipped / per_event, 0) AS skipped_pct,
    still_retrying,
    coalesce(100 * still_retrying / per_event, 0) AS still_retrying_pct,
    recovered_by_replay,
    coalesce(100 * recovered_by_replay / per_event, 0) AS recovered_by_replay_pct,
    requests,
    auth_requests,
    coalesce(100 * auth_requests / per_request, 0) AS auth_requests_pct,
    status_400_requests,
    coalesce(100 * status_400_requests / per_request, 0) AS status_400_requests_pct,
    status_429_requests,
    coalesce(100 * status_429_requests / per_request, 0) AS status_429_requests_pct,
    status_5xx_requests,
    coalesce(100 * status_5xx_requests / per_request, 0) AS status_5xx_requests_pct,
    network_requests,
    coalesce(100 * network_requests / per_request, 0) AS network_requests_pct,
    timeout_requests,
    coalesce(100 * timeout_requests / per_request, 0) AS timeout_requests_pct,
    tls_requests,
    coalesce(100 * tls_requests / per_request, 0) AS tls_requests_pct,
    nonstandard_requests,
    coalesce(100 * nonstandard_requests / per_request, 0) AS nonstandard_requests_pct
FROM derived
