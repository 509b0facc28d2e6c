-- whatif_answers: what each destination answered, interval by interval: the retry what-if's
-- record of its state over time (docs/whatif.md; the model is queries/whatif.py).
--
-- Every request (attempt >= 1) of every job of the scope started from $start to a day past $end,
-- replays left out, counted per destination and interval of $resolution_s (60 s: a minute):
-- `requests`, `delivered`, failed transiently (`again`: the retryable classes), and the seconds
-- those transient failures took (`failing_s`, a sum: the destination's mean time to fail is the sum
-- of its rows over the sum of `again`).
--
-- `destination` is hash(destination_id): on a day of 100 million records (13 million groups),
-- grouping by a 64-bit key took half the time of grouping by the string. Two destinations of
-- the same hash would be counted as one: with 20,000 destinations, a chance of about 1 in
-- 10^11. Rows come ordered by destination and interval, as the model looks them up.
SELECT
    hash(destination_id) AS destination,
    floor(epoch(started_at) / $resolution_s)::BIGINT AS slot,
    count(*) AS requests,
    count(*) FILTER (outcome = 'delivered') AS delivered,
    count(*) FILTER (outcome <> 'delivered' AND retryable) AS again,
    coalesce(sum(coalesce(duration_ms, 0) / 1000) FILTER (outcome <> 'delivered' AND retryable), 0)
        AS failing_s
FROM attempts
WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
  AND started_in(date, started_at, $start, $end + INTERVAL 1 DAY)
  AND replay_of IS NULL
  AND attempt >= 1
GROUP BY ALL
ORDER BY destination, slot
