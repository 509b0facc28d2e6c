-- daily: the trend of a range of whole days, one row per UTC day of receipt: the events received
-- that day and how many were delivered on the first attempt and eventually, with their shares.
--
-- The same cohort figures as day_report.sql, one day at a time: a day's events are those of
-- the jobs received in it, followed to their end (their retries may run into the next day).
-- `first_attempt_pct` and `eventual_pct` are shares of `events_received` (0 on a day without
-- events). Days without events received have no row. Reads the `outcomes` rollup.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql).
WITH days AS (
    SELECT
        -- Days since 1970 from epoch seconds: converting every row's timestamp to a date in the
        -- session's time zone cost more than the rest of the query over a month.
        epoch(received_hour)::BIGINT // 86400 AS day_number,
        unnest(cohort_figures(true, false, attempt, outcome, events, 0))
    FROM cohort_outcomes($scope_kind, $scope_value, $start, $end)
    -- DuckDB spreads a struct into columns only under an explicit GROUP BY, not GROUP BY ALL.
    GROUP BY day_number
)

SELECT
    DATE '1970-01-01' + day_number::INTEGER AS day,
    events_received,
    delivered_first_attempt,
    delivered_eventually,
    pct(delivered_first_attempt, events_received) AS first_attempt_pct,
    pct(delivered_eventually, events_received) AS eventual_pct
FROM days
WHERE events_received > 0
ORDER BY day
