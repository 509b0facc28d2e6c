-- trace_index: the jobs that carried one event, from the message index (docs/trace.md).
--
-- The `message_index` rows of message id $message_id in partitions (hours a job's first or last
-- request started) of [$start, $end), in the scope. The filter on message_hash is a constant,
-- so DuckDB skips every row group of the index whose min/max leave it out: one per file.
-- A 64-bit hash may in principle match another event: queries.trace keeps only the jobs whose
-- attempt records carry the message id itself.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql), $message_id.
SELECT DISTINCT job_id, workspace_id, source_id, destination_id
FROM message_index
WHERE message_hash = md5_number_upper($message_id)
  AND in_scope($scope_kind, $scope_value, workspace_id, destination_id, NULL)
  AND epoch(date) + hour * 3600 >= epoch($start)
  AND epoch(date) + hour * 3600 < epoch($end)
ORDER BY destination_id, job_id
