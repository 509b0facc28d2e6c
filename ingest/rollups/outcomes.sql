-- rollup outcomes: attempt records counted by every column the outcome
-- figures group or filter by (day report, funnel, status codes, error
-- classes, destinations, integrations, hourly series).
--
-- Hours of received_at and started_at are both kept, so a range of whole
-- hours selects exactly the rows it would select from `attempts`: the event
-- cohort by received_hour, the requests by started_hour. Every measure is a
-- sum, so rollups of several files add up.
--
-- first_error_class (the class of the job's first request, on every record
-- of the job) lets a job's fate, its final record, be counted per class of
-- its first failure from these sums alone (queries/retries.sql,
-- retry_recovery.sql). It adds few rows: on attempt 1 it equals error_class.
--
-- replayed (the record's job replays another: replay_of is not NULL) keeps a
-- replay's records apart, so an event is received once and its delivery by
-- a replay is counted as recovered (docs/replay.md).
--
-- Hours are grouped as integers and turned into timestamps after grouping
-- (hour_number and hour_start, in macros.sql).
WITH grouped AS (
    SELECT
        hour_number(received_at) AS received_hour,
        hour_number(started_at) AS started_hour,
        workspace_id,
        source_id,
        destination_id,
        integration,
        attempt,
        outcome,
        status_code,
        error_class,
        error_code,
        retryable,
        first_error_class,
        replay_of IS NOT NULL AS replayed,
        count(*)::BIGINT AS records,
        sum(event_count)::BIGINT AS events,
        sum(duration_ms)::DOUBLE AS duration_ms_sum,
        sum(request_bytes)::BIGINT AS request_bytes_sum
    FROM batch
    GROUP BY ALL
)

SELECT hour_start(received_hour) AS received_hour, hour_start(started_hour) AS started_hour,
    * EXCLUDE (received_hour, started_hour)
FROM grouped
ORDER BY workspace_id, destination_id, started_hour
