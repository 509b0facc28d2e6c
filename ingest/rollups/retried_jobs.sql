-- rollup retried_jobs: the two records of every retried job that say how its
-- retries went: its first request, when it failed and was retried (attempt 1,
-- outcome 'retry'), and its final record after retries (attempt >= 2, any
-- outcome but 'retry').
--
-- Unlike the other rollups this one keeps a job key, one row per record kept:
-- a job's first and final records usually sit in different files (different
-- hours), and only the job links them, so the class of a job's first failure
-- cannot be summed per file next to its fate. Grouped by job, the two rows
-- say, per class of first failure, how many events the retries recovered and
-- after how many attempts (queries/retries.sql, retry_recovery.sql).
-- job_key is the upper 64 bits of md5(job_id): a 26-character string key
-- makes that grouping 4-5 times slower (850 ms against 180 ms for a
-- 100-million-attempt day). Two retried jobs of one day share a key with odds
-- of about 1 in 10 million (1.8 million keys among 2^64).
-- A few percent of the records: 3.6 million rows for a 100-million-attempt day.
-- Sorted by workspace and destination and written in small row groups, as
-- destination_latency.sql, so one customer's rows sit in a few of them.
-- Hours are computed as integers, as in outcomes.sql.
SELECT
    to_timestamp((epoch_us(received_at) // 3600000000) * 3600) AS received_hour,
    to_timestamp((epoch_us(started_at) // 3600000000) * 3600) AS started_hour,
    workspace_id,
    destination_id,
    integration,
    md5_number_upper(job_id) AS job_key,
    attempt,
    outcome,
    error_class,
    event_count AS events
FROM batch
WHERE (attempt = 1 AND outcome = 'retry')
   OR (attempt >= 2 AND outcome <> 'retry')
ORDER BY workspace_id, destination_id, job_key, attempt
