-- fanout: fan-out completeness per source (docs/trace.md): of the events whose jobs' first
-- requests started in [$start, $end), how many reached every destination they were sent to,
-- some, and none.
--
-- Reads the `message_index` rollup: per event (message_hash) and source, the destinations
-- that got a job of it and those where a record of it was delivered (a retry or a replay
-- delivering later counts; records are read to a day past $end, as cohort queries read).
-- An event still being retried at the end of what the log holds counts as not delivered
-- there. Destinations added to the source after the event arrived got no job of it and are
-- not counted: what the log knows is where an event was sent.
--
-- Columns: workspace_id, source_id, events, destinations_per_event (mean), delivered_all,
-- delivered_some, delivered_none, all_pct, none_pct.
--
-- Parameters: $scope_kind, $scope_value, $start, $end.
WITH per_event AS (
    SELECT
        workspace_id,
        source_id,
        message_hash,
        count(DISTINCT destination_id) AS destinations,
        count(DISTINCT destination_id) FILTER (outcome = 'delivered') AS delivered
    FROM message_index
    WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, NULL)
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE + 1
    GROUP BY workspace_id, source_id, message_hash
    HAVING bool_or("first"
        AND epoch(date) + hour * 3600 >= epoch($start) AND epoch(date) + hour * 3600 < epoch($end))
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
