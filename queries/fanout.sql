-- fanout: fan-out completeness per source (docs/trace.md): of the events whose jobs' first
-- requests started in [$start, $end), how many reached every destination they were sent to,
-- some, and none.
--
-- Reads the `message_index` rollup: per event (message_hash) and source, the destinations that
-- got a job of it and those where a record of it was delivered (a retry or a replay delivering
-- later counts; records are read to a day past $end, as cohort queries read). The index keeps
-- no workspace or source: a destination's are those `outcomes` has for it. An event still being
-- retried at the end of what the log holds counts as not delivered there. Destinations added to
-- the source after the event arrived got no job of it and are not counted: what the log knows
-- is where an event was sent.
--
-- Columns: workspace_id, source_id, events, destinations_per_event (mean), delivered_all,
-- delivered_some, delivered_none, all_pct, none_pct.
--
-- Parameters: $scope_kind, $scope_value, $start, $end.
WITH owners AS (
    SELECT DISTINCT workspace_id, source_id, destination_id
    FROM outcomes
    WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE + 1
),
per_destination AS (
    -- One row per event and destination: no count(DISTINCT ...) over a day's events.
    SELECT
        message_hash,
        destination_id,
        bool_or(outcome = 'delivered') AS delivered,
        bool_or("first" AND epoch(date) + hour * 3600 >= epoch($start) AND epoch(date) + hour * 3600 < epoch($end))
            AS sent_in_range
    FROM message_index
    WHERE date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE + 1
      AND destination_id IN (SELECT destination_id FROM owners)
    GROUP BY message_hash, destination_id
),
per_event AS (
    SELECT
        owners.workspace_id,
        owners.source_id,
        count(*) AS destinations,
        count(*) FILTER (delivered) AS delivered
    FROM per_destination
    JOIN owners USING (destination_id)
    GROUP BY owners.workspace_id, owners.source_id, per_destination.message_hash
    HAVING bool_or(sent_in_range)
)
SELECT
    workspace_id,
    source_id,
    count(*)::BIGINT AS events,
    round(avg(destinations), 2) AS destinations_per_event,
    count(*) FILTER (delivered = destinations)::BIGINT AS delivered_all,
    count(*) FILTER (delivered > 0 AND delivered < destinations)::BIGINT AS delivered_some,
    count(*) FILTER (delivered = 0)::BIGINT AS delivered_none,
    round(100.0 * count(*) FILTER (delivered = destinations) / count(*), 2) AS all_pct,
    round(100.0 * count(*) FILTER (delivered = 0) / count(*), 2) AS none_pct
FROM per_event
GROUP BY ALL
ORDER BY workspace_id, source_id
