-- funnel: first-attempt versus eventual delivery, as stages a Plotly funnel draws directly
-- (px.funnel(df, x="events", y="stage")).
--
-- The cohort is the jobs received in [$start, $end), each weighted by its
-- event_count (see day_report.sql for why sums over rows are enough). Stages,
-- in `step` order:
--   events received;
--   delivered by attempt k, for k = 1 .. the highest attempt seen in the cohort
--   (cumulative: a job delivered on attempt 3 counts from stage 3 on);
--   failed, dropped, skipped, still retrying (the events never delivered, by reason).
-- `pct` is the share of events received (0 when nothing was received).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH cohort AS (
    SELECT attempt, outcome, event_count, replay_of IS NOT NULL AS replayed
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      -- Retries start less than a day after received_at, hence the extra day.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_at >= $start
      AND started_at < $end + INTERVAL 1 DAY
      AND received_at >= $start
      AND received_at < $end
),

totals AS (
    SELECT
        coalesce(sum(event_count) FILTER (NOT replayed AND attempt <= 1), 0)::BIGINT AS received,
        coalesce(sum(event_count) FILTER (NOT replayed AND outcome = 'delivered'), 0)::BIGINT AS delivered,
        coalesce(sum(event_count) FILTER (NOT replayed AND outcome = 'failed'), 0)::BIGINT AS failed,
        coalesce(sum(event_count) FILTER (NOT replayed AND outcome = 'dropped'), 0)::BIGINT AS dropped,
        coalesce(sum(event_count) FILTER (NOT replayed AND outcome = 'skipped'), 0)::BIGINT AS skipped,
        coalesce(sum(event_count) FILTER (replayed AND outcome = 'delivered'), 0)::BIGINT AS recovered,
        coalesce(max(attempt) FILTER (NOT replayed), 0) AS max_attempt
    FROM cohort
),

delivered_at AS (
    SELECT attempt, sum(event_count)::BIGINT AS events
    FROM cohort
    WHERE outcome = 'delivered' AND NOT replayed
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
           received AS events
    FROM totals
    UNION ALL
    SELECT attempt, 'delivered by attempt ' || attempt, 'delivered', attempt::SMALLINT, events
    FROM delivered_by
    UNION ALL
    SELECT max_attempt + 1, 'delivered after replay', 'replayed', NULL, delivered + recovered
    FROM totals
    WHERE recovered > 0
    UNION ALL
    SELECT max_attempt + (recovered > 0)::INTEGER + s.rank, s.stage, s.kind, NULL, s.events
    FROM totals,
         (VALUES (1, 'failed', 'failed', failed),
                 (2, 'dropped', 'dropped', dropped),
                 (3, 'skipped', 'skipped', skipped),
                 (4, 'still retrying', 'retrying', received - delivered - failed - dropped - skipped))
             AS s (rank, stage, kind, events)
)

SELECT
    step,
    stage,
    kind,
    attempt,
    events,
    coalesce(100 * events / nullif((SELECT received FROM totals), 0)::DOUBLE, 0) AS pct
FROM stages
ORDER BY step
