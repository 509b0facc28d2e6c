-- retries: the recovery curve, by attempt and by the class of each job's first failure.
--
-- The cohort is the jobs received in [$start, $end), each weighted by its
-- event_count, their retries read up to a day past $end (as funnel.sql).
-- One curve of all events received (first_error_class NULL), and one per
-- class of first failure that was retried: for each attempt k = 1 .. the
-- highest attempt in the cohort, `delivered` events delivered by attempt k
-- (not before), `delivered_by` those delivered by attempt k or before, and
-- `delivered_by_pct` their share of `events`, the curve's events: every
-- event received, or the events whose first attempt failed with that class.
-- A class's curve is 0 at attempt 1, where all its events failed.
--
-- The class of a job's first failure is the class of its first request: a
-- job whose first request delivered has no failure. Every record of a job
-- carries that class as `first_error_class` (docs/attempt-log.md), so a
-- retried job's delivery is summed from `outcomes` per class of its first
-- failure, without linking the job's records. Classes whose first failures
-- were never retried (auth, validation, ...) have no curve:
-- retry_recovery.sql counts them. The first curve equals funnel.sql's
-- `delivered by attempt k` stages.
--
-- Records written before `first_error_class` existed have it NULL: a job
-- whose delivery is such a record is missing from its class's curve (its
-- events still count in the class's `events` and in the curve of all events).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH cohort AS MATERIALIZED (
    SELECT attempt, outcome, error_class, first_error_class, sum(events) AS events
    FROM cohort_outcomes($scope_kind, $scope_value, $start, $end)
    GROUP BY ALL
),

curves AS (
    SELECT NULL::VARCHAR AS first_error_class, coalesce(sum(events) FILTER (attempt <= 1), 0) AS events
    FROM cohort
    UNION ALL
    SELECT error_class, sum(events)
    FROM cohort
    WHERE attempt = 1 AND outcome <> 'delivered'
    GROUP BY error_class
    -- Only classes of which some first failure was retried.
    HAVING bool_or(outcome = 'retry')
),

delivered_at AS (
    SELECT NULL::VARCHAR AS first_error_class, attempt, sum(events) AS events
    FROM cohort
    WHERE outcome = 'delivered'
    GROUP BY attempt
    UNION ALL
    SELECT first_error_class, attempt, sum(events)
    FROM cohort
    WHERE outcome = 'delivered' AND attempt >= 2 AND first_error_class IS NOT NULL
    GROUP BY ALL
),

attempts AS (
    SELECT range AS attempt
    FROM range(1, (SELECT coalesce(max(attempt), 0) + 1 FROM cohort))
)

SELECT
    c.first_error_class,
    a.attempt::SMALLINT AS attempt,
    c.events::BIGINT AS events,
    coalesce(d.events, 0)::BIGINT AS delivered,
    sum(coalesce(d.events, 0)) OVER (PARTITION BY c.first_error_class ORDER BY a.attempt)::BIGINT
        AS delivered_by,
    pct(delivered_by, c.events) AS delivered_by_pct
FROM curves AS c
CROSS JOIN attempts AS a
LEFT JOIN delivered_at AS d
    ON d.first_error_class IS NOT DISTINCT FROM c.first_error_class AND d.attempt = a.attempt
ORDER BY c.first_error_class NULLS FIRST, a.attempt
