-- rollup integration_outcomes: the `outcomes` rollup summed over workspaces, sources and
-- destinations, per integration.
--
-- The figures of the whole log or of one partner (scope 'all' or an integration) need no
-- workspace, source or destination: read here, a month of whole days is about a tenth of
-- `outcomes`'s rows (12 thousand a day of 10 million attempts against 135 thousand), sorted by
-- integration so that one partner's page skips the others' row groups. A workspace or
-- destination, and every figure per destination, still read `outcomes` (queries/_macros.sql,
-- scoped_outcomes).
--
-- Built from the `outcomes` rows (about a tenth of the attempts), not from `batch` again.
SELECT
    received_hour,
    started_hour,
    integration,
    attempt,
    outcome,
    status_code,
    error_class,
    error_code,
    retryable,
    first_error_class,
    replayed,
    sum(records)::BIGINT AS records,
    sum(events)::BIGINT AS events,
    sum(duration_ms_sum)::DOUBLE AS duration_ms_sum,
    sum(request_bytes_sum)::BIGINT AS request_bytes_sum
FROM outcomes
GROUP BY ALL
ORDER BY integration, started_hour
