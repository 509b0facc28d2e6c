-- rollup errors: non-2xx response bodies grouped by template (body_template
-- in macros.sql) per hour and destination, with a count, the last time seen
-- and the most recent body as an example.
--
-- Templates are computed once per distinct body, not once per request.
-- Hours are grouped as integers, as in outcomes.sql.
WITH bodies AS (
    SELECT
        epoch_us(started_at) // 3600000000 AS started_hour,
        workspace_id,
        destination_id,
        integration,
        error_class,
        status_code,
        error_code,
        response_body,
        count(*) AS requests,
        max(started_at) AS last_seen
    FROM batch
    WHERE attempt >= 1
      AND response_body IS NOT NULL
      AND status_code NOT BETWEEN 200 AND 299
    GROUP BY ALL
)

SELECT
    to_timestamp(started_hour * 3600) AS started_hour,
    workspace_id,
    destination_id,
    integration,
    error_class,
    status_code,
    error_code,
    body_template(response_body) AS template,
    sum(requests)::BIGINT AS requests,
    max(last_seen) AS last_seen,
    arg_max(response_body, last_seen) AS example
FROM bodies
GROUP BY ALL
ORDER BY workspace_id, destination_id, started_hour
