-- trace_index: where one event's records are, from the message index (docs/trace.md).
--
-- The destinations and the hours (partitions) of the `message_index` rows of message id
-- $message_id in [$start, $end). The filter on message_hash is a constant, so DuckDB skips every
-- row group of the index whose min/max leave it out: one is read per file. A hash may in
-- principle be another event's too: trace_attempts checks the message id itself.
--
-- The index has no workspace column: a workspace's scope is applied to the records the rows
-- point at (trace_attempts), so a customer never sees another's; a destination's applies here.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql), $message_id.
SELECT DISTINCT destination_id, date, hour
FROM message_index
WHERE message_hash = message_hash($message_id)
  AND in_scope($scope_kind, $scope_value, $scope_value, destination_id, NULL)
  AND epoch(date) + hour * 3600 >= epoch($start)
  AND epoch(date) + hour * 3600 < epoch($end)
ORDER BY destination_id, date, hour
