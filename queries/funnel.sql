-- funnel: first-attempt versus eventual delivery, as stages a Plotly funnel draws directly
-- (px.funnel(df, x="events", y="stage")).
--
-- The cohort is the jobs received in [$start, $end), each weighted by its
-- event_count (see day_report.sql for why sums over records are enough, and
-- how the `outcomes` rollup read here gives the same sums). Stages,
-- in `step` order:
--   events received;
--   delivered by attempt k, for k = 1 .. the highest attempt seen in the cohort
--   (cumulative: a job delivered on attempt 3 counts from stage 3 on);
--   failed, dropped, skipped, still retrying (the events never delivered, by reason).
-- `pct` is the share of events received (0 when nothing was received).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH cohort AS (
    SELECT attempt, outcome, events
    FROM cohort_outcomes($scope_kind, $scope_value, $start, $end)
),

-- The cohort's figures as day_report.sql has them (every row is in the cohort, none a request
-- counted), and the highest attempt, the number of `delivered by attempt k` stages.
totals AS (
    SELECT
        unnest(cohort_figures(true, false, attempt, outcome, events, 0)),
        coalesce(max(attempt), 0) AS max_attempt
    FROM cohort
),

delivered_at AS (
    SELECT attempt, sum(events)::BIGINT AS events
    FROM cohort
    WHERE outcome = 'delivered'
    GROUP BY attempt
),

delivered_by AS (
    SELECT
        k.attempt,
        sum(coalesce(d.events, 0)) OVER (ORDER BY k.attempt)::BIGINT AS events
    FROM totals, range(1, totals.max_attempt + 1) AS k (attempt)
    LEFT JOIN delivered_at AS d ON d.attempt = k.attempt
),

stages AS (
    SELECT 0 AS step, 'events received' AS stage, 'received' AS kind, NULL::SMALLINT AS attempt,
           events_received AS events
    FROM totals
    UNION ALL
    SELECT attempt, 'delivered by attempt ' || attempt, 'delivered', attempt::SMALLINT, events
    FROM delivered_by
    UNION ALL
    SELECT max_attempt + s.rank, s.stage, s.kind, NULL, s.events
    FROM totals,
         (VALUES (1, 'failed', 'failed', failed),
                 (2, 'dropped', 'dropped', dropped),
                 (3, 'skipped', 'skipped', skipped),
                 (4, 'still retrying', 'retrying',
                  events_received - delivered_eventually - failed - dropped - skipped))
             AS s (rank, stage, kind, events)
)

SELECT
    step,
    stage,
    kind,
    attempt,
    events,
    pct(events, (SELECT events_received FROM totals)) AS pct
FROM stages
ORDER BY step
