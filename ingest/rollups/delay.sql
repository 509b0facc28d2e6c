-- rollup delay: a histogram of delivery delays per received hour, started
-- hour, integration and attempt.
--
-- The delay of a delivered job is the time from receipt to the end of the
-- request that delivered it: started_at + duration_ms - received_at, all
-- kept on the delivering record (the first attempt's start is not, for a
-- retried job), so it includes the wait in the queue and every retry's
-- backoff. Bucket b holds delays in [1.1^b, 1.1^(b+1)) milliseconds (delays
-- under 0.01 ms count as 0.01 ms), as latency.sql's durations. Measures:
-- `deliveries` (delivered jobs), `events` (their event_count), the
-- event-weighted sum and the maximum of the delays; figures are per event.
-- received_hour selects the event cohort, started_hour bounds its retries,
-- as in outcomes.sql. Per integration, small: scope all and one partner read
-- it; one workspace or destination reads destination_delay.sql's instead.
--
-- It is destination_delay.sql's histogram summed over destinations, built
-- from those rows rather than from `batch` again (as latency.sql).
SELECT
    received_hour,
    started_hour,
    integration,
    attempt,
    bucket,
    sum(deliveries)::BIGINT AS deliveries,
    sum(events)::BIGINT AS events,
    sum(delay_ms_sum)::DOUBLE AS delay_ms_sum,
    max(delay_ms_max)::DOUBLE AS delay_ms_max
FROM destination_delay
GROUP BY ALL
ORDER BY integration, received_hour, started_hour, attempt, bucket
