-- rollup redeliveries: the records that can make an event arrive twice at a destination, per
-- job (docs/double-delivery.md).
--
-- Kept: requests that may have been accepted without an answer (maybe_accepted, macros.sql),
-- delivered records after a first attempt (attempt >= 2: a retry delivered, or a second engine
-- sent the job again), and every delivered record of a replayed job. A delivered first attempt
-- of an event as received is the common case and cannot be a second delivery: it is left out,
-- which keeps this rollup small (a few rows per thousand records on a calibrated day).
--
-- One row per job and received hour (its records' hours of start are not needed: the query
-- groups the job's rows from every file of its cohort's range). A replayed job carries one
-- event: its message_id is kept, so replays of the same event are counted as one event.
-- Measures: deliveries (2xx records) and unanswered (maybe_accepted records); both add up.
-- may_count, earlier_deliveries and earlier_unanswered are NULL here: only a day file fills them
-- (ingest.day_rollups: whether the row can count, and the day before's figures of a job received
-- then), for double_deliveries.sql over whole days.
SELECT
    hour_start(hour_number(received_at)) AS received_hour,
    workspace_id,
    destination_id,
    integration,
    job_id,
    replay_of,
    CASE WHEN replay_of IS NOT NULL THEN events[1].message_id END AS message_id,
    event_count,
    count(*) FILTER (outcome = 'delivered')::BIGINT AS deliveries,
    count(*) FILTER (maybe_accepted(status_code, error_code))::BIGINT AS unanswered,
    NULL::BOOLEAN AS may_count,
    NULL::BIGINT AS earlier_deliveries,
    NULL::BIGINT AS earlier_unanswered
FROM batch
WHERE maybe_accepted(status_code, error_code)
   OR (outcome = 'delivered' AND (attempt >= 2 OR replay_of IS NOT NULL))
GROUP BY ALL
ORDER BY workspace_id, destination_id, job_id
