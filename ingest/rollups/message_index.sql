-- rollup message_index: which jobs carried an event, keyed by a hash of its message id
-- (docs/trace.md). What `deliverydash trace` and the trace search look an event up by.
--
-- One row per event of a job's first record (attempt 1, or 0 for a job settled without a
-- request) and of its last (a terminal outcome: delivered, failed, dropped, skipped); a job
-- settled by its first request has one row. A retry in between adds nothing.
--
-- message_hash is md5_number_upper(message_id): a 64-bit hash DuckDB computes the same in every
-- version (its hash() is not). Rows are sorted by it and written in small row groups, so a
-- lookup reads one row group per file (min/max statistics). The message id itself is not kept:
-- the trace reads it back from the attempt files of the jobs it finds.
--
-- first: the row is a job's first record; outcome: the record's (retry when the first request
-- was retried). Fan-out completeness (queries/fanout.sql) reads these two.
SELECT
    md5_number_upper(event.message_id) AS message_hash,
    job_id,
    workspace_id,
    source_id,
    destination_id,
    attempt <= 1 AS "first",
    outcome
FROM (SELECT *, unnest(events) AS event FROM batch WHERE attempt <= 1 OR outcome <> 'retry')
ORDER BY message_hash, job_id
