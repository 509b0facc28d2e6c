-- rollup destination_delay: the delivery delay histogram of delay.sql, per
-- received hour, started hour, destination (with its workspace and
-- integration) and attempt, for the pages of one workspace or one destination.
--
-- Delay, buckets and measures as in delay.sql. About 7 million rows for a
-- 100-million-attempt day, sorted by workspace and destination and written in
-- small row groups, as destination_latency.sql.
-- Hours are grouped as integers (hour_number, in macros.sql).
WITH delivered AS (
    SELECT
        hour_number(received_at) AS received_hour,
        hour_number(started_at) AS started_hour,
        workspace_id,
        destination_id,
        integration,
        attempt,
        event_count,
        (epoch_us(started_at) - epoch_us(received_at)) / 1000 + coalesce(duration_ms, 0)::DOUBLE AS delay_ms
    FROM batch
    WHERE outcome = 'delivered'
      -- A replay delivers days later by an operator's hand, not by the schedule: left out.
      AND replay_of IS NULL
),

grouped AS (
    SELECT
        received_hour,
        started_hour,
        workspace_id,
        destination_id,
        integration,
        attempt,
        log_bucket(delay_ms) AS bucket,
        count(*)::BIGINT AS deliveries,
        sum(event_count)::BIGINT AS events,
        sum(event_count * delay_ms)::DOUBLE AS delay_ms_sum,
        max(delay_ms)::DOUBLE AS delay_ms_max
    FROM delivered
    GROUP BY ALL
)

SELECT hour_start(received_hour) AS received_hour, hour_start(started_hour) AS started_hour,
    * EXCLUDE (received_hour, started_hour)
FROM grouped
ORDER BY workspace_id, destination_id, received_hour, started_hour, attempt, bucket
