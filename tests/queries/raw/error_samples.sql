-- error_samples: the most frequent non-2xx response bodies, grouped by template.
--
-- Bodies that differ only in variable data fall into one template:
--   * a JSON string value that is one token (no whitespace: an id, a name, an
--     email, a code) becomes "?"; a value with whitespace is prose, a message,
--     and is kept, so different messages stay apart. Keys are kept: a quoted
--     string followed by `:` is a key, and RE2 has no look-ahead, so the
--     pattern consumes what follows a value (`,` `}` `]` or the end) and puts
--     it back.
--   * a string quoted inside a JSON string (\"...\") becomes \"?\";
--   * ISO-8601 timestamps become <ts>, UUIDs <id>;
--   * a run of 8 or more letters and digits with a digit in it (hex ids,
--     ULIDs, long tokens; `req_8f3a9c21` -> `req_<id>`) becomes <id>. RE2
--     cannot say "8+ characters, one of them a digit" in one pattern, so the
--     runs are first wrapped in \x01 ... \x02 markers, the wrapped runs that
--     hold a digit replaced, and the markers removed;
--   * a number at the start of a word becomes <n> (`12s` -> `<n>s`; the 1
--     of `h1` or `HTTP2` belongs to a name and stays);
--   * runs of whitespace become one space.
-- Templates are computed once per distinct body, not once per request.
--
-- Output per template and its error_class, status_code, error_code and
-- integration (and destination_id when the scope is a workspace or a
-- destination; NULL otherwise, since across workspaces it would split the
-- rows by tenant): `requests`, `last_seen`, and the most recent body as
-- `example`. The $limit most frequent, most recent first among equals.
-- Scoped to an integration, template and example are redacted (redact_body,
-- after the body's workspace and destination ids are replaced).
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql),
-- $limit (rows to return).
WITH failures AS (
    SELECT
        response_body,
        error_class,
        status_code,
        error_code,
        integration,
        CASE WHEN $scope_kind IN ('workspace', 'destination') THEN destination_id END AS destination_id,
        workspace_id AS body_workspace_id,
        destination_id AS body_destination_id,
        started_at
    FROM attempts
    WHERE ($scope_kind = 'all'
           OR ($scope_kind = 'workspace' AND workspace_id = $scope_value)
           OR ($scope_kind = 'destination' AND destination_id = $scope_value)
           OR ($scope_kind = 'integration' AND integration = $scope_value))
      -- Files are partitioned by started_at's UTC date: this skips whole days.
      AND date BETWEEN timezone('UTC', $start)::DATE AND timezone('UTC', $end)::DATE
      AND started_at >= $start
      AND started_at < $end
      AND attempt >= 1
      AND response_body IS NOT NULL
      AND status_code NOT BETWEEN 200 AND 299
),

bodies AS (
    SELECT
        response_body,
        error_class,
        status_code,
        error_code,
        integration,
        destination_id,
        body_workspace_id,
        body_destination_id,
        count(*) AS requests,
        max(started_at) AS last_seen
    FROM failures
    GROUP BY ALL
),

templated AS (
    SELECT
        *,
        response_body
            .regexp_replace('\\"[^"\\]*\\"', '\\"?\\"', 'g')
            .regexp_replace('"[^"\s\\]*"(\s*[,}\]]|\s*$)', '"?"\1', 'g')
            .regexp_replace('\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?', '<ts>', 'g')
            .regexp_replace('[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}', '<id>', 'g')
            .regexp_replace('[A-Za-z0-9]{8,}', chr(1) || '\0' || chr(2), 'g')
            .regexp_replace('\x01[A-Za-z]*[0-9][A-Za-z0-9]*\x02', '<id>', 'g')
            .regexp_replace('[\x01\x02]', '', 'g')
            .regexp_replace('\b\d+(\.\d+)?', '<n>', 'g')
            .regexp_replace('\s+', ' ', 'g')
            .trim() AS template
    FROM bodies
),

shown AS (
    SELECT
        CASE WHEN $scope_kind = 'integration' THEN redact_body(template) ELSE template END AS template,
        error_class,
        status_code,
        error_code,
        integration,
        destination_id,
        requests,
        last_seen,
        CASE
            WHEN $scope_kind = 'integration'
                THEN redact_body(replace(replace(response_body, body_workspace_id, '<workspace>'),
                                         body_destination_id, '<destination>'))
            ELSE response_body
        END AS example
    FROM templated
)

SELECT
    template,
    error_class,
    status_code,
    error_code,
    integration,
    destination_id,
    sum(requests)::BIGINT AS requests,
    max(last_seen) AS last_seen,
    arg_max(example, last_seen) AS example
FROM shown
GROUP BY template, error_class, status_code, error_code, integration, destination_id
ORDER BY requests DESC, last_seen DESC, template
LIMIT $limit
