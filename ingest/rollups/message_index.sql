-- rollup message_index: where an event's records are, keyed by a hash of its message id
-- (docs/trace.md). What `deliverydash trace` and the trace search look an event up by.
--
-- One row per event of every record: the file the row is in (its partition, and the attempt
-- file it was built from) and destination_id say where the record is, so a lookup reads the
-- destination's row groups of those hours' attempt files alone. Job ids, workspaces and sources
-- are not kept (they are most of a row's bytes): the trace reads them back from the records,
-- and fan-out completeness takes a destination's workspace and source from `outcomes`.
--
-- Rows are sorted by message_hash (the macro) and written with the hash delta-encoded
-- (`ingest.rollup.write_options`), so a lookup reads one row group per file (min/max
-- statistics); about 4.5 bytes a row.
--
-- first: the record is a job's first (attempt 1, or 0 for a job settled without a request);
-- outcome: the record's. Fan-out completeness (queries/fanout.sql) reads these two.
SELECT
    message_hash(event.message_id) AS message_hash,
    destination_id,
    attempt <= 1 AS "first",
    outcome
FROM (SELECT destination_id, attempt, outcome, unnest(events) AS event FROM batch)
ORDER BY message_hash, destination_id
