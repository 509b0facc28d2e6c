-- double_deliveries: the cohort's events delivered more than once, from the raw log (the
-- `redeliveries` rollup's records, kept and counted here per job as its SQL does).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH scoped AS (
    SELECT
        workspace_id,
        destination_id,
        integration,
        job_id,
        replay_of,
        CASE WHEN replay_of IS NOT NULL THEN events[1].message_id END AS message_id,
        event_count,
        count(*) FILTER (outcome = 'delivered')::BIGINT AS deliveries,
        count(*) FILTER (maybe_accepted(status_code, error_code))::BIGINT AS unanswered
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND received_at >= $start
      AND received_at < $end
      AND (maybe_accepted(status_code, error_code)
           OR (outcome = 'delivered' AND (attempt >= 2 OR replay_of IS NOT NULL)))
    GROUP BY ALL
),
jobs AS (
    SELECT
        workspace_id, destination_id, integration, job_id, replay_of, message_id,
        max(event_count) AS event_count,
        sum(deliveries) AS deliveries,
        sum(unanswered) AS unanswered
    FROM scoped
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
    CASE WHEN $scope_kind <> 'integration' THEN workspace_id END AS workspace_id,
    CASE WHEN $scope_kind <> 'integration' THEN destination_id END AS destination_id,
    integration,
    cause,
    certainty,
    sum(events)::BIGINT AS events,
    count(*)::BIGINT AS jobs,
    CASE WHEN $scope_kind <> 'integration' THEN list_sort(list(evidence))[1:3] END AS example_jobs
FROM (SELECT * FROM received UNION ALL BY NAME SELECT * FROM replayed_events)
GROUP BY ALL
ORDER BY events DESC, workspace_id, destination_id, integration, cause, certainty
