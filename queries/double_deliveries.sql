-- double_deliveries: events of the cohort delivered more than once at a destination, per
-- destination, cause and certainty (docs/double-delivery.md). Reads the `redeliveries` rollup.
--
-- An event is counted once, under the first of these that holds for it:
--   certain  / lease_expired        two 2xx records of the same job (a second engine sent it
--                                   again while the first one's request was in flight);
--   certain  / replay               two replays of the same event (--again) both delivered;
--   possible / replay               a replay delivered an event whose replayed job had sent it
--                                   and heard nothing back (maybe_accepted);
--   possible / retry_after_timeout  a job delivered after one of its own requests may have
--                                   been accepted without an answer.
-- "Possible" is what the log can know: whether the partner took the unanswered request is on
-- the partner's side. Events, not requests: a job weighs its event_count; a replayed event is
-- one event whatever the number of its replays.
--
-- The cohort is the events received in [$start, $end), their records read up to a day past
-- $end (as cohort_outcomes). A replay's replayed job is looked for among the same rows.
--
-- Returns workspace_id, destination_id, integration (ids NULL for an integration scope),
-- cause, certainty, events, jobs, example_jobs (up to 3 job ids for `job_history`; NULL for an
-- integration scope).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH scoped AS NOT MATERIALIZED (
    SELECT *
    FROM redeliveries
    WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND received_hour >= $start
      AND received_hour < $end
),
-- Over whole days (`hour` NULL), a row per job and date: a day file's, or the day's hourly rows
-- summed alike (queries.catalog). Only the rows that can count are read: a day file puts them first
-- and marks them (`may_count`), so the rest of its row groups are skipped; summed hourly rows have
-- no mark (NULL) and are all read. Grouping every row, a job each, was most of the query over a
-- month (docs/benchmarks.md).
day_rows AS MATERIALIZED (
    SELECT * FROM scoped WHERE hour IS NULL AND (may_count OR may_count IS NULL)
),
-- A job has more than one row only when it has a row dated after the day it was received (late).
-- (epoch seconds against days since 1970: comparing the timestamp with the date converted each
-- date in the session's time zone, which took most of the query)
late AS (
    SELECT * FROM day_rows WHERE epoch(received_hour) < (date - DATE '1970-01-01') * 86400
),
-- A day file's late row of a job received the day before carries that day's figures of the job
-- (earlier_*); any other late row's job is grouped from all its rows, found by job and day received.
uncarried AS (
    SELECT job_id, received_hour FROM late WHERE earlier_deliveries IS NULL
),
jobs AS (
    SELECT
        workspace_id, destination_id, integration, job_id, replay_of, message_id, event_count,
        deliveries, unanswered
    FROM day_rows ANTI JOIN late USING (job_id)
    -- A lone row delivered once, with no request unanswered, counts for nothing, even as a
    -- replay's replayed job (its unanswered requests are all that is read of it).
    WHERE deliveries >= 2 OR unanswered >= 1 OR replay_of IS NOT NULL
    UNION ALL
    SELECT
        workspace_id, destination_id, integration, job_id, replay_of, message_id, event_count,
        deliveries + earlier_deliveries AS deliveries,
        unanswered + earlier_unanswered AS unanswered
    FROM late ANTI JOIN uncarried USING (job_id)
    UNION ALL
    -- Hourly rows (`hour` set: ranges within days) are all grouped.
    SELECT
        workspace_id, destination_id, integration, job_id, replay_of, message_id,
        max(event_count) AS event_count,
        sum(deliveries) AS deliveries,
        sum(unanswered) AS unanswered
    FROM (
        SELECT * FROM scoped WHERE hour IS NOT NULL
        UNION ALL
        -- (joined on the day received too: its range is pushed into the scan, which then skips
        -- the row groups of the other days)
        SELECT * FROM scoped SEMI JOIN uncarried USING (job_id, received_hour) WHERE hour IS NULL
    )
    GROUP BY ALL
),
received AS (
    SELECT
        workspace_id, destination_id, integration, job_id AS evidence, event_count AS events,
        CASE WHEN deliveries >= 2 THEN 'lease_expired' ELSE 'retry_after_timeout' END AS cause,
        CASE WHEN deliveries >= 2 THEN 'certain' ELSE 'possible' END AS certainty
    FROM jobs
    WHERE replay_of IS NULL
      AND (deliveries >= 2 OR (deliveries = 1 AND unanswered >= 1))
),
replayed AS (
    SELECT
        replay.workspace_id, replay.destination_id, replay.integration, replay.message_id,
        min(replay.job_id) AS evidence,
        count(*) FILTER (replay.deliveries >= 1) AS delivering_jobs,
        sum(replay.deliveries) AS deliveries,
        sum(replay.unanswered) AS unanswered,
        coalesce(max(replayed_job.unanswered), 0) AS replayed_unanswered
    FROM jobs AS replay
    LEFT JOIN jobs AS replayed_job
        ON replayed_job.job_id = replay.replay_of AND replayed_job.destination_id = replay.destination_id
    WHERE replay.replay_of IS NOT NULL
    GROUP BY ALL
),
replayed_events AS (
    SELECT
        workspace_id, destination_id, integration, evidence, 1 AS events,
        CASE
            WHEN delivering_jobs >= 2 THEN 'replay'
            WHEN deliveries >= 2 THEN 'lease_expired'
            WHEN replayed_unanswered >= 1 THEN 'replay'
            ELSE 'retry_after_timeout'
        END AS cause,
        CASE WHEN deliveries >= 2 THEN 'certain' ELSE 'possible' END AS certainty
    FROM replayed
    WHERE deliveries >= 2 OR (deliveries = 1 AND unanswered + replayed_unanswered >= 1)
)
SELECT
    id_for_scope($scope_kind, workspace_id) AS workspace_id,
    id_for_scope($scope_kind, destination_id) AS destination_id,
    integration,
    cause,
    certainty,
    sum(events)::BIGINT AS events,
    count(*)::BIGINT AS jobs,
    id_for_scope($scope_kind, min(evidence, 3)) AS example_jobs
FROM (SELECT * FROM received UNION ALL BY NAME SELECT * FROM replayed_events)
GROUP BY ALL
ORDER BY events DESC, workspace_id, destination_id, integration, cause, certainty
