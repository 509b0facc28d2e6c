-- delivery_delay_histogram: delivery_delay_histogram.sql from the raw log's delivered records.
WITH delivered AS (
    SELECT
        CASE WHEN attempt = 1 THEN 'first attempt' ELSE 'after retries' END AS delivery,
        event_count,
        (epoch_us(started_at) - epoch_us(received_at)) / 1000 + coalesce(duration_ms, 0)::DOUBLE AS delay_ms
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end + INTERVAL 1 DAY)::DATE
      AND started_at >= $start
      AND started_at < $end + INTERVAL 1 DAY
      AND received_at >= $start
      AND received_at < $end
      AND replay_of IS NULL
      AND outcome = 'delivered'
),

buckets AS (
    SELECT
        delivery,
        floor(ln(greatest(delay_ms, 0.01)) / ln(1.1))::SMALLINT AS bucket,
        count(*)::BIGINT AS deliveries,
        sum(event_count)::BIGINT AS events
    FROM delivered
    GROUP BY ALL
)

SELECT
    delivery,
    bucket,
    pow(1.1, bucket) AS lower_ms,
    pow(1.1, bucket + 1) AS upper_ms,
    deliveries,
    events,
    100 * events / sum(events) OVER (PARTITION BY delivery)::DOUBLE AS pct,
    100 * sum(events) OVER (PARTITION BY delivery ORDER BY bucket) / sum(events) OVER (PARTITION BY delivery)::DOUBLE
        AS cumulative_pct
FROM buckets
ORDER BY delivery = 'after retries', bucket
