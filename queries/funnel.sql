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
--   delivered after replay, only when a replay delivered some of the cohort's events
--   (cumulative too, kind 'replayed'; docs/replay.md);
--   failed, dropped, skipped, still retrying (the events not delivered by their first job, by
--   reason; a replay does not change how that job ended).
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

recovered AS (
    SELECT coalesce(sum(events) FILTER (outcome = 'delivered'), 0)::BIGINT AS events
    FROM replay_outcomes($scope_kind, $scope_value, $start, $end)
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
    -- Only when a replay delivered some: the events delivered once replays are counted too.
    SELECT max_attempt + 1, 'delivered after replay', 'replayed', NULL, delivered_eventually + recovered.events
    FROM totals, recovered
    WHERE recovered.events > 0
    UNION ALL
    SELECT max_attempt + (recovered.events > 0)::INTEGER + s.rank, s.stage, s.kind, NULL, s.events
    FROM totals, recovered,
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
