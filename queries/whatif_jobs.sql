-- whatif_jobs: the retried jobs of the cohort, each from its first record: what the retry
-- what-if replays on paper (docs/whatif.md; the model is queries/whatif.py).
--
-- The cohort is the jobs received in [$start, $end) in the scope, replays left out. A job is
-- replayed when its first request failed and was retried (outcome 'retry' on attempt 1). Its first
-- record gives its destination (hashed, as in whatif_answers.sql), its events, its receipt and its
-- first request's start. Job ids are not read: each job has one first record, and reading a day's
-- ids took most of the scan's time. Rows come ordered by destination and first request, so that the
-- model's look-ups into whatif_answers.sql's rows go forward.
SELECT
    hash(destination_id) AS destination,
    event_count AS events,
    epoch(received_at) AS received_s,
    epoch(started_at) AS first_s
FROM attempts
WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
  AND started_in(date, started_at, $start, $end + INTERVAL 1 DAY)
  AND replay_of IS NULL
  AND attempt = 1
  AND outcome = 'retry'
  AND received_at >= $start
  AND received_at < $end
ORDER BY destination, first_s
