-- rollup errors: non-2xx response bodies grouped by template (body_template
-- in macros.sql) per hour and destination, with a count, the last time seen
-- and the most recent body as an example.
--
-- Templates are computed once per distinct body, not once per request.
-- Hours are grouped as integers (hour_number, in macros.sql).
WITH bodies AS (
    SELECT
        hour_number(started_at) AS started_hour,
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
    hour_start(started_hour) AS started_hour,
    * EXCLUDE (started_hour, response_body, requests, last_seen),
    body_template(response_body) AS template,
    sum(requests)::BIGINT AS requests,
    max(last_seen) AS last_seen,
    arg_max(response_body, last_seen) AS example
FROM bodies
GROUP BY ALL
ORDER BY workspace_id, destination_id, started_hour
