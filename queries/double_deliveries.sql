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
-- Over whole days (`hour` NULL), the day files sum the jobs each day received (as received, not
-- replays) that count, per destination and cause (`redelivery_summary`, ingest.day_rollups): a day
-- received that is summed there adds up its sums, and its jobs' rows are read only where a replay
-- needs them. A day is summed once the day after it is built, unless jobs received that day have
-- rows two or more days later (a retry window over a day), which no sum holds: a 'rows_later' mark
-- of a later day file, or such a row in a day read from its hourly files.
summary AS NOT MATERIALIZED (
    SELECT *
    FROM redelivery_summary
    WHERE date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
),
marks AS MATERIALIZED (
    SELECT received_hour, date, mark FROM summary WHERE mark IS NOT NULL
),
-- The dates of the range read from hourly files (no summary: the day not built).
unbuilt AS MATERIALIZED (
    SELECT unnest(generate_series(
        timezone('UTC', $start)::DATE, timezone('UTC', $end + INTERVAL 1 DAY)::DATE, INTERVAL 1 DAY
    ))::DATE AS date
    EXCEPT
    SELECT date FROM marks WHERE mark = 'summed'
),
summed AS MATERIALIZED (
    SELECT received_hour FROM marks WHERE mark = 'summed' AND received_hour >= $start AND received_hour < $end
    EXCEPT
    SELECT received_hour FROM marks WHERE mark = 'rows_later'
    EXCEPT
    SELECT received_hour FROM scoped SEMI JOIN unbuilt USING (date)
    WHERE hour IS NULL AND received_before(received_hour, date - 1)
),
-- The dates whose rows are read for the days not summed: each such day and the day after it (its
-- jobs' last retries), and the days that may hold rows of jobs received two or more days before
-- (a day file's summary says so; a day read from hourly files may).
needed AS (
    SELECT DISTINCT timezone('UTC', received_hour)::DATE + shift AS date
    FROM (SELECT unnest(generate_series($start, $end - INTERVAL 1 DAY, INTERVAL 1 DAY)) AS received_hour)
    CROSS JOIN (VALUES (0), (1)) AS shifts (shift)
    WHERE received_hour NOT IN (FROM summed)
    UNION
    SELECT date FROM marks WHERE mark = 'rows_later'
    UNION
    FROM unbuilt
),
-- Replays are read from the days a summary says hold some, and the days read from hourly files.
replays AS MATERIALIZED (
    SELECT *
    FROM scoped SEMI JOIN (SELECT date FROM marks WHERE mark = 'replays' UNION FROM unbuilt) USING (date)
    WHERE hour IS NULL AND replay_of IS NOT NULL
),
-- A row per job and date: a day file's, or the day's hourly rows summed alike (queries.catalog).
-- Only the rows that can count are read: a day file puts them first and marks them (`may_count`),
-- so the rest of its row groups are skipped; summed hourly rows have no mark (NULL) and are all
-- read. (The dates are joined, not compared with a list: the join passes them to the scan, which
-- then skips the other days' files.)
day_rows AS MATERIALIZED (
    SELECT * FROM scoped SEMI JOIN needed USING (date)
    WHERE hour IS NULL AND (may_count OR may_count IS NULL) AND replay_of IS NULL
    UNION ALL
    FROM replays
    UNION ALL
    -- the other rows of the jobs replays replayed (their unanswered requests count for a replay)
    SELECT *
    FROM scoped ANTI JOIN needed USING (date) SEMI JOIN (SELECT replay_of AS job_id FROM replays) USING (job_id)
    WHERE hour IS NULL AND replay_of IS NULL
),
-- A job has more than one row only when it has a row dated after the day it was received (late).
late AS (
    SELECT * FROM day_rows WHERE received_before(received_hour, date)
),
-- A day file's late row of a job received the day before carries that day's figures of the job
-- (earlier_*); any other late row's job is grouped from all its rows, found by job and day received.
uncarried AS (
    SELECT job_id, received_hour FROM late WHERE earlier_deliveries IS NULL
),
jobs AS (
    SELECT
        workspace_id, destination_id, integration, job_id, received_hour, replay_of, message_id,
        event_count, deliveries, unanswered
    FROM day_rows ANTI JOIN late USING (job_id)
    -- A lone row delivered once, with no request unanswered, counts for nothing, even as a
    -- replay's replayed job (its unanswered requests are all that is read of it).
    WHERE deliveries >= 2 OR unanswered >= 1 OR replay_of IS NOT NULL
    UNION ALL
    SELECT
        workspace_id, destination_id, integration, job_id, received_hour, replay_of, message_id,
        event_count,
        deliveries + earlier_deliveries AS deliveries,
        unanswered + earlier_unanswered AS unanswered
    FROM late ANTI JOIN uncarried USING (job_id)
    UNION ALL
    -- Hourly rows (`hour` set: ranges within days) are all grouped.
    SELECT
        workspace_id, destination_id, integration, job_id, received_hour, replay_of, message_id,
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
        twice_cause(deliveries) AS cause,
        twice_certainty(deliveries) AS certainty
    FROM jobs
    WHERE replay_of IS NULL
      AND received_twice(deliveries, unanswered)
      AND received_hour NOT IN (FROM summed)
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
),
counted AS (
    SELECT
        workspace_id, destination_id, integration, cause, certainty,
        sum(events) AS events,
        count(*) AS jobs,
        min(evidence, 3) AS examples
    FROM (SELECT * FROM received UNION ALL BY NAME SELECT * FROM replayed_events)
    GROUP BY ALL
),
parts AS (
    SELECT
        * EXCLUDE (examples), examples[1] AS example_1, examples[2] AS example_2, examples[3] AS example_3
    FROM counted
    UNION ALL BY NAME
    SELECT
        workspace_id, destination_id, integration, cause, certainty, events, jobs,
        example_1, example_2, example_3
    FROM summary
    WHERE mark IS NULL
      AND received_hour IN (FROM summed)
      AND in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
)
SELECT
    id_for_scope($scope_kind, workspace_id) AS workspace_id,
    id_for_scope($scope_kind, destination_id) AS destination_id,
    integration,
    cause,
    certainty,
    sum(events)::BIGINT AS events,
    sum(jobs)::BIGINT AS jobs,
    -- The 3 least job ids of the group, from each part's 3 least (example_1 < example_2 <
    -- example_3): among the 3 least of the group, a part's second is the least second of all
    -- parts (a lesser one would come with its part's first: three lesser ids), and a part's third
    -- the least third. (Lists of ids per part, gathered and sorted, took twice as long.)
    id_for_scope(
        $scope_kind,
        list_sort(list_filter(min(example_1, 3) || [min(example_2), min(example_3)], lambda id: id IS NOT NULL))[1:3]
    ) AS example_jobs
FROM parts
GROUP BY ALL
ORDER BY events DESC, workspace_id, destination_id, integration, cause, certainty
