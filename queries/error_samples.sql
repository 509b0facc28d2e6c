-- error_samples: the most frequent non-2xx response bodies, grouped by template.
--
-- Bodies that differ only in variable data (numbers, ids, timestamps,
-- one-token JSON values, whitespace) fall into one template: see the
-- body_template macro in ingest/rollups/macros.sql for the rules. The
-- `error_templates` rollup read here holds, per started hour, destination and
-- template, the failed requests (attempt >= 1, a body, a status outside 2xx),
-- when the latest started and its body; so summing it over hours and
-- destinations gives what grouping the raw bodies in `attempts` would.
--
-- Output per template and its error_class, status_code, error_code and
-- integration (and destination_id when the scope is a workspace or a
-- destination; NULL otherwise, since across workspaces it would split the
-- rows by tenant): `requests`, `last_seen`, and the most recent body as
-- `example`. The $limit most frequent, most recent first among equals.
--
-- Scoped to an integration (a partner's view, across customers), nothing
-- names a customer or quotes their data: destination_id is NULL, and
-- `template` and `example` are redacted with the redact_body macro
-- (ingest/rollups/macros.sql: body_template's masks, plus URLs, email
-- addresses and single-quoted text), after the example's own workspace and
-- destination ids are replaced by <workspace> and <destination>. Templates
-- that become equal once redacted are counted together.
--
-- Parameters: $scope_kind, $scope_value, $start, $end (as in day_report.sql),
-- $limit (rows to return).
WITH failures AS (
    SELECT
        template,
        error_class,
        status_code,
        error_code,
        integration,
        CASE WHEN $scope_kind IN ('workspace', 'destination') THEN destination_id END AS destination_id,
        requests,
        last_seen,
        {'example': example, 'workspace_id': workspace_id, 'destination_id': destination_id} AS latest
    FROM error_templates
    WHERE in_scope($scope_kind, $scope_value, workspace_id, destination_id, integration)
      AND started_in(date, started_hour, $start, $end)
),

-- Every column but the measures is a grouping column, here and below.
grouped AS (
    SELECT
        * EXCLUDE (requests, last_seen, latest),
        sum(requests) AS requests,
        max(last_seen) AS last_seen,
        arg_max(latest, last_seen) AS latest
    FROM failures
    GROUP BY ALL
),

-- Redacting after grouping runs the regular expressions once per template, not once per row.
shown AS (
    SELECT
        * EXCLUDE (latest) REPLACE (
            CASE WHEN $scope_kind = 'integration' THEN redact_body(template) ELSE template END AS template
        ),
        body_for_scope($scope_kind, latest.example, latest.workspace_id, latest.destination_id) AS example
    FROM grouped
)

-- Templates equal once redacted count together.
SELECT
    * EXCLUDE (requests, last_seen, example),
    sum(requests)::BIGINT AS requests,
    max(last_seen) AS last_seen,
    arg_max(example, last_seen) AS example
FROM shown
GROUP BY ALL
-- Every grouping column breaks ties, so which rows make the $limit is never left to chance.
ORDER BY requests DESC, last_seen DESC, template, error_class, status_code, error_code, integration,
    destination_id
LIMIT $limit
