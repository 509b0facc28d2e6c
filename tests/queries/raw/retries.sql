-- retries: the recovery curves of retries.sql, from the raw log: each job's
-- first request and final record linked by job_id over every record.
WITH cohort AS (
    SELECT *
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_at >= $start
      AND started_at < $end + INTERVAL 1 DAY
      AND received_at >= $start
      AND received_at < $end
      AND replay_of IS NULL
),

jobs AS (
    SELECT
        job_id,
        any_value(event_count) AS events,
        any_value(error_class) FILTER (attempt = 1 AND outcome <> 'delivered') AS first_error_class,
        bool_or(attempt = 1 AND outcome = 'retry') AS retried,
        any_value(attempt) FILTER (outcome = 'delivered') AS delivered_at
    FROM cohort
    GROUP BY job_id
    -- The first record decides the cohort, as in the rollup queries.
    HAVING bool_or(attempt <= 1)
),

curves AS (
    SELECT NULL::VARCHAR AS first_error_class, sum(events) AS events FROM jobs
    UNION ALL
    SELECT first_error_class, sum(events)
    FROM jobs
    WHERE first_error_class IN (SELECT first_error_class FROM jobs WHERE retried)
    GROUP BY first_error_class
),

delivered_at AS (
    SELECT NULL::VARCHAR AS first_error_class, delivered_at AS attempt, sum(events) AS events
    FROM jobs WHERE delivered_at IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT first_error_class, delivered_at, sum(events)
    FROM jobs WHERE delivered_at >= 2 AND first_error_class IS NOT NULL GROUP BY ALL
),

attempts AS (
    SELECT range AS attempt FROM range(1, (SELECT coalesce(max(attempt), 0) + 1 FROM cohort))
)

SELECT
    c.first_error_class,
    a.attempt::SMALLINT AS attempt,
    c.events::BIGINT AS events,
    coalesce(d.events, 0)::BIGINT AS delivered,
    sum(coalesce(d.events, 0)) OVER (PARTITION BY c.first_error_class ORDER BY a.attempt)::BIGINT
        AS delivered_by,
    coalesce(100 * delivered_by / nullif(c.events, 0)::DOUBLE, 0) AS delivered_by_pct
FROM curves AS c
CROSS JOIN attempts AS a
LEFT JOIN delivered_at AS d
    ON d.first_error_class IS NOT DISTINCT FROM c.first_error_class AND d.attempt = a.attempt
ORDER BY c.first_error_class NULLS FIRST, a.attempt
