-- whatif: the cohort's retried jobs replayed against another retry schedule (docs/whatif.md).
--
-- The cohort is the jobs received in [$start, $end) in the scope (replays left out, as every
-- cohort figure). A job whose first request was delivered, failed for good or was skipped does
-- not depend on the schedule: it counts as it happened. A job whose first request failed and
-- was retried (outcome 'retry' on attempt 1) is tried again, on paper, at the schedule's times:
-- attempt k >= 2 starts after the nominal delays min($max_s, $base_s x $factor^(i-1)), each
-- shortened by the mean of the engine's subtractive jitter (1 - $jitter / 2), and after the
-- requests before it failed (the destination's mean time to fail transiently), while
-- k <= $attempts and the attempt starts within $window_s of the job's receipt.
--
-- What a request to the destination at time t would have got is read from the log: the
-- destination's requests (every job's) in the last interval of $resolution_s (60 s: a minute)
-- observed at or before t, counted as delivered, failed transiently (retryable classes) or
-- failed for good. Observations older than 60 intervals (an hour) are not trusted: the destination's share over the whole range stands in, and such
-- attempts are counted as guessed (`guessed_pct`: of the paper attempts expected to happen). From those shares, each job's chance to be delivered at
-- attempt k is the chance every earlier paper attempt failed transiently times the chance the
-- k-th is delivered; figures are expected values (sums of those chances, weighted by
-- event_count), so the same log and schedule always give the same answer.
--
-- Columns: the actual figures of the cohort (events received and delivered, requests, delivery
-- delay percentiles) and the schedule's expected ones, with the jobs replayed and the share of
-- their paper attempts whose outcome was guessed.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql); $base_s, $factor,
-- $max_s, $attempts, $window_s, $jitter (the schedule); $resolution_s (how long an observed
-- answer stands for the destination's state).
-- Read by several parts, each taking the columns it needs: not materialized (a day's records
-- held in memory took 20 GB on a day of 100 million).
WITH records AS NOT MATERIALIZED (
    SELECT
        job_id,
        destination_id,
        attempt,
        outcome,
        error_class,
        retryable,
        event_count,
        epoch(received_at) AS received_s,
        epoch(started_at) + coalesce(duration_ms, 0) / 1000 AS ended_s,
        epoch(started_at) AS started_s
    FROM attempts
    WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
      AND started_in(date, started_at, $start, $end + INTERVAL 1 DAY)
      AND replay_of IS NULL
),

-- What the destination answered, interval by interval (requests only: attempt 0 sent nothing).
minutes AS (
    SELECT
        destination_id,
        floor(started_s / $resolution_s)::BIGINT AS minute,
        count(*) FILTER (outcome = 'delivered') / count(*)::DOUBLE AS p_ok,
        count(*) FILTER (outcome <> 'delivered' AND retryable) / count(*)::DOUBLE AS p_again
    FROM records
    WHERE attempt >= 1
    GROUP BY ALL
),

overall AS (
    SELECT
        destination_id,
        count(*) FILTER (outcome = 'delivered') / count(*)::DOUBLE AS p_ok,
        count(*) FILTER (outcome <> 'delivered' AND retryable) / count(*)::DOUBLE AS p_again,
        -- How long a request that failed transiently took (a timeout: the whole timeout).
        coalesce(avg(ended_s - started_s) FILTER (outcome <> 'delivered' AND retryable), 0) AS failing_s
    FROM records
    WHERE attempt >= 1
    GROUP BY ALL
),

cohort AS (
    SELECT *
    FROM records
    WHERE received_s >= epoch($start) AND received_s < epoch($end)
),

-- The retried jobs, from their first record (no grouping by job: a day has tens of millions).
retried AS (
    SELECT job_id, destination_id, event_count AS events, received_s, started_s AS first_s
    FROM cohort
    WHERE attempt = 1 AND outcome = 'retry'
),

-- When paper attempt k starts, after the first: the delays before it, added up.
offsets AS (
    SELECT
        i + 1 AS attempt,
        sum(least($max_s, $base_s * pow($factor, i - 1))) OVER (ORDER BY i) * (1 - $jitter / 2) AS offset_s
    FROM range(1, $attempts) AS r (i)
),

-- Paper attempts 2..$attempts of each retried job: each after the delays and the failed requests
-- before it (the destination's mean time to fail transiently: a timeout takes the whole timeout).
paper AS (
    SELECT
        j.job_id,
        j.destination_id,
        j.events,
        j.received_s,
        o.attempt,
        j.first_s + o.offset_s + (o.attempt - 1) * coalesce(f.failing_s, 0) AS at_s
    FROM retried AS j
    CROSS JOIN offsets AS o
    LEFT JOIN overall AS f ON f.destination_id = j.destination_id
),

judged AS (
    SELECT
        p.*,
        m.minute IS NULL OR p.at_s - m.minute * $resolution_s > 60 * $resolution_s AS guessed,
        CASE WHEN m.minute IS NULL OR p.at_s - m.minute * $resolution_s > 60 * $resolution_s THEN o.p_ok ELSE m.p_ok END AS p_ok,
        CASE WHEN m.minute IS NULL OR p.at_s - m.minute * $resolution_s > 60 * $resolution_s THEN o.p_again ELSE m.p_again END AS p_again
    FROM paper AS p
    ASOF LEFT JOIN minutes AS m
        ON m.destination_id = p.destination_id AND m.minute <= floor(p.at_s / $resolution_s)::BIGINT
    LEFT JOIN overall AS o ON o.destination_id = p.destination_id
    WHERE p.at_s <= p.received_s + $window_s
),

-- Each paper attempt's chance to happen (every earlier one failed transiently) and to deliver.
chances AS (
    SELECT
        *,
        coalesce(
            product(p_again) OVER (
                PARTITION BY job_id ORDER BY attempt ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ),
            1
        ) AS p_reached
    FROM judged
),

per_job AS (
    SELECT
        job_id,
        any_value(events) AS events,
        sum(p_reached) AS requests,
        sum(p_reached * p_ok) AS p_delivered,
        -- Paper attempts expected to happen, and those of them answered by a guess.
        coalesce(sum(p_reached) FILTER (guessed), 0) AS guessed,
        sum(p_reached) AS attempts
    FROM chances
    GROUP BY job_id
),

-- Delivered events with their delays, as weights: actual ones (a job has one delivered record),
-- and for the schedule, first attempts delivered and the paper attempts' chances.
-- Delivered events by delay, in the log-scale buckets of the delay rollups (bucket b: delays in
-- [1.1^b, 1.1^(b+1)) ms): actual ones (a job has one delivered record), and for the schedule,
-- first attempts delivered and the paper attempts' chances. Percentiles are read from them
-- (the bucket's geometric middle: within 5 %), never by sorting a day's deliveries.
actual_buckets AS (
    SELECT
        log_bucket((ended_s - received_s) * 1000) AS bucket,
        sum(event_count)::DOUBLE AS weight,
        sum(event_count) FILTER (attempt = 1)::DOUBLE AS first_weight
    FROM cohort
    WHERE outcome = 'delivered'
    GROUP BY ALL
),

paper_buckets AS (
    SELECT bucket, sum(weight) AS weight
    FROM (
        SELECT bucket, first_weight AS weight FROM actual_buckets WHERE first_weight > 0
        UNION ALL
        SELECT log_bucket((at_s - received_s) * 1000), events * p_reached * p_ok
        FROM chances
        WHERE p_reached * p_ok > 0
    )
    GROUP BY ALL
),

-- Each side's delay percentiles (`side`: 'actual' or 'paper'), from its buckets' running share.
quantiles AS (
    SELECT
        side,
        min(middle_s) FILTER (cumulative >= 0.5) AS p50,
        min(middle_s) FILTER (cumulative >= 0.9) AS p90,
        min(middle_s) FILTER (cumulative >= 0.99) AS p99
    FROM (
        SELECT
            side,
            pow(1.1, bucket + 0.5) / 1000 AS middle_s,
            sum(weight) OVER (PARTITION BY side ORDER BY bucket)
                / sum(weight) OVER (PARTITION BY side) AS cumulative
        FROM (
            SELECT 'actual' AS side, bucket, weight FROM actual_buckets
            UNION ALL
            SELECT 'paper', bucket, weight FROM paper_buckets
        )
    )
    GROUP BY side
),

-- Every job has one record with attempt <= 1 and at most one delivered record: sums, no join.
totals AS (
    SELECT
        coalesce(sum(event_count) FILTER (attempt <= 1), 0)::BIGINT AS events_received,
        coalesce(sum(event_count) FILTER (outcome = 'delivered'), 0)::BIGINT AS delivered,
        count(*) FILTER (attempt >= 1) AS requests,
        count(*) FILTER (attempt = 1 AND outcome = 'retry') AS jobs_replayed,
        coalesce(sum(event_count) FILTER (attempt = 1 AND outcome = 'delivered'), 0)::BIGINT
            AS delivered_unchanged,
        count(*) FILTER (attempt = 1 AND outcome <> 'retry') AS requests_unchanged
    FROM cohort
),

paper_totals AS (
    SELECT
        coalesce(sum(events * p_delivered), 0) AS delivered,
        coalesce(sum(requests), 0) AS requests,
        coalesce(sum(guessed), 0) AS guessed,
        coalesce(sum(attempts), 0) AS attempts
    FROM per_job
)

SELECT
    t.events_received,
    t.delivered AS actual_delivered,
    pct(t.delivered, t.events_received) AS actual_delivered_pct,
    t.requests AS actual_requests,
    aq.p50 AS actual_delay_p50_s,
    aq.p90 AS actual_delay_p90_s,
    aq.p99 AS actual_delay_p99_s,
    t.delivered_unchanged + p.delivered AS delivered,
    pct(t.delivered_unchanged + p.delivered, t.events_received) AS delivered_pct,
    -- Every replayed job's first request happened as it did.
    t.requests_unchanged + t.jobs_replayed + p.requests AS requests,
    pq.p50 AS delay_p50_s,
    pq.p90 AS delay_p90_s,
    pq.p99 AS delay_p99_s,
    t.jobs_replayed,
    pct(p.guessed, p.attempts) AS guessed_pct
FROM totals AS t
CROSS JOIN paper_totals AS p
LEFT JOIN quantiles AS aq ON aq.side = 'actual'
LEFT JOIN quantiles AS pq ON pq.side = 'paper'
