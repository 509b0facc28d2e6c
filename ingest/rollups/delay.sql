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
-- Hours are grouped as integers, as in outcomes.sql.
WITH delivered AS (
    SELECT
        epoch_us(received_at) // 3600000000 AS received_hour,
        epoch_us(started_at) // 3600000000 AS started_hour,
        integration,
        attempt,
        event_count,
        (epoch_us(started_at) - epoch_us(received_at)) / 1000 + coalesce(duration_ms, 0)::DOUBLE AS delay_ms
    FROM batch
    WHERE outcome = 'delivered'
),

grouped AS (
    SELECT
        received_hour,
        started_hour,
        integration,
        attempt,
        floor(ln(greatest(delay_ms, 0.01)) / ln(1.1))::SMALLINT AS bucket,
        count(*)::BIGINT AS deliveries,
        sum(event_count)::BIGINT AS events,
        sum(event_count * delay_ms)::DOUBLE AS delay_ms_sum,
        max(delay_ms)::DOUBLE AS delay_ms_max
    FROM delivered
    GROUP BY ALL
)

SELECT
    to_timestamp(received_hour * 3600) AS received_hour,
    to_timestamp(started_hour * 3600) AS started_hour,
    * EXCLUDE (received_hour, started_hour)
FROM grouped
ORDER BY integration, received_hour, started_hour, attempt, bucket
