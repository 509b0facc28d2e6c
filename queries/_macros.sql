-- The macros the named queries share: the scope rule, the time range and the cohort are each
-- written here once. Not a query (its name starts with `_`, which `queries.loader` skips): it is
-- run on every query connection after the views exist, since DuckDB binds a table macro's body
-- when the macro is created. DuckDB expands macros where they are called, before planning, so a
-- query written with them is planned exactly as if it spelled them out: bound parameters fold
-- into constants, and the filters reach the Parquet scans (partition and row-group pruning).
-- `deliverydash sql` has them too (docs/sql.md).


-- in_scope(scope_kind, scope_value, workspace_id, destination_id, integration): whether a row
-- belongs to the scope (`queries.scope.Scope`): every row for 'all', else the rows of one
-- workspace, destination or integration. Once $scope_kind is bound, this folds into one
-- comparison on one column (or none), which DuckDB checks against row-group statistics. A CASE,
-- not ORs: DuckDB folded the ORs to `workspace_id = 'w' OR false OR false`, which it evaluates on
-- every row group instead of skipping those whose statistics exclude 'w' (docs/benchmarks.md).
CREATE OR REPLACE MACRO in_scope(scope_kind, scope_value, workspace_id, destination_id, integration) AS
    CASE scope_kind
        WHEN 'all' THEN true
        WHEN 'workspace' THEN workspace_id = scope_value
        WHEN 'destination' THEN destination_id = scope_value
        WHEN 'integration' THEN integration = scope_value
        ELSE false
    END;

-- started_in(part_date, started, range_start, range_end): whether a row's request started in
-- [range_start, range_end), for a row in partition `date` (the UTC date it started on) whose
-- start is `started` (`started_at` in the log, `started_hour` in a rollup). The test on the
-- partition comes first: with the range bound, DuckDB applies it to the directory names and
-- never opens the files of other days.
CREATE OR REPLACE MACRO started_in(part_date, started, range_start, range_end) AS
    part_date BETWEEN timezone('UTC', range_start)::DATE AND timezone('UTC', range_end)::DATE
    AND started >= range_start
    AND started < range_end;

-- received_before(received_hour, day): whether a row's job was received before `day` (a DATE)
-- began, UTC. In epoch seconds against days since 1970: comparing the timestamp with the date
-- converted each date in the session's time zone, which took most of double_deliveries.
CREATE OR REPLACE MACRO received_before(received_hour, day) AS
    epoch(received_hour) < (day - DATE '1970-01-01') * 86400;

-- started_in_hours(part_date, part_hour, started, range_start, range_end): started_in, skipping
-- the files of other hours too, for a few hours of the raw log's big files. The hour test is
-- written in epoch seconds (with INTERVAL arithmetic it ran 3 times slower); it costs a little
-- on every row read, which is why started_in, for whole days of small rollup files, has none.
CREATE OR REPLACE MACRO started_in_hours(part_date, part_hour, started, range_start, range_end) AS
    started_in(part_date, started, range_start, range_end)
    AND epoch(part_date) + part_hour * 3600 >= epoch(range_start)
    AND epoch(part_date) + part_hour * 3600 < epoch(range_end);

-- scoped_outcomes(scope_kind, scope_value, range_start, range_end, per_destination := false): the
-- `outcomes` rows of the scope whose requests started in [range_start, range_end): what request
-- figures sum. For 'all' and an integration they come from `integration_outcomes` (the same sums
-- per integration, a tenth of the rows; workspace_id, source_id and destination_id are NULL),
-- unless `per_destination`, which a figure per destination or workspace passes. The bound
-- $scope_kind makes the other branch an empty result when DuckDB plans the statement, as in
-- scoped_histogram below.
CREATE OR REPLACE MACRO scoped_outcomes(scope_kind, scope_value, range_start, range_end, per_destination := false) AS TABLE
    SELECT *
    FROM integration_outcomes
    WHERE NOT per_destination
      AND scope_kind IN ('all', 'integration')
      AND in_scope(scope_kind, scope_value, NULL, NULL, integration)
      AND started_in(date, started_hour, range_start, range_end)
    UNION ALL BY NAME
    SELECT *
    FROM outcomes
    WHERE (per_destination OR scope_kind NOT IN ('all', 'integration'))
      AND in_scope(scope_kind, scope_value, workspace_id, destination_id, integration)
      AND started_in(date, started_hour, range_start, range_end);

-- cohort_outcomes(scope_kind, scope_value, range_start, range_end, per_destination := false): the
-- `outcomes` rows of the jobs received in [range_start, range_end), the cohort event figures follow
-- (docs/sql.md). A job's retries start less than a day after it was received, so its records are
-- read from range_start to a day past range_end. Replayed jobs are not in it: an event is received
-- once (replay_outcomes has their rows). Files older than the `replayed` column read it as NULL.
CREATE OR REPLACE MACRO cohort_outcomes(scope_kind, scope_value, range_start, range_end, per_destination := false) AS TABLE
    SELECT *
    FROM scoped_outcomes(scope_kind, scope_value, range_start, range_end + INTERVAL 1 DAY,
                         per_destination := per_destination)
    WHERE received_hour >= range_start
      AND received_hour < range_end
      AND NOT coalesce(replayed, false);

-- replay_outcomes(scope_kind, scope_value, range_start, range_end): the `outcomes` rows of the
-- replays of events received in [range_start, range_end) (a replay keeps its event's
-- received_at) that ran up to a day past range_end, the horizon of the cohort's retries.
CREATE OR REPLACE MACRO replay_outcomes(scope_kind, scope_value, range_start, range_end) AS TABLE
    SELECT *
    FROM scoped_outcomes(scope_kind, scope_value, range_start, range_end + INTERVAL 1 DAY)
    WHERE received_hour >= range_start
      AND received_hour < range_end
      AND replayed;

-- cohort_and_requests(scope_kind, scope_value, range_start, range_end, per_destination := false):
-- one scan for both kinds of figure. The `outcomes` rows of the scope started from range_start to
-- a day past range_end, flagged `in_cohort` (the job was received in the range: cohort_outcomes's
-- rows), `is_request` (a request started in the range: scoped_outcomes's rows with attempt >= 1)
-- and `in_replay` (a replay of an event received in the range: replay_outcomes's rows).
CREATE OR REPLACE MACRO cohort_and_requests(scope_kind, scope_value, range_start, range_end, per_destination := false) AS TABLE
    SELECT
        *,
        received_hour >= range_start AND received_hour < range_end AND NOT coalesce(replayed, false)
            AS in_cohort,
        attempt >= 1 AND started_hour < range_end AS is_request,
        received_hour >= range_start AND received_hour < range_end AND coalesce(replayed, false)
            AS in_replay
    FROM scoped_outcomes(scope_kind, scope_value, range_start, range_end + INTERVAL 1 DAY,
                         per_destination := per_destination);

-- cohort_figures(in_cohort, is_request, attempt, outcome, events, records): an aggregate over
-- flagged `outcomes` rows (cohort_and_requests), as a struct that unnest() spreads into columns:
-- `requests` started in the range, and the fate of the events received in it, by the rules of
-- docs/sql.md ("Two kinds of figures"). Every job has one record with attempt <= 1 and, once it
-- has ended, one with an outcome other than 'retry', so each figure is a plain sum.
CREATE OR REPLACE MACRO cohort_figures(in_cohort, is_request, attempt, outcome, events, records) AS {
    'requests': coalesce(sum(records) FILTER (is_request), 0)::BIGINT,
    'events_received': coalesce(sum(events) FILTER (in_cohort AND attempt <= 1), 0)::BIGINT,
    'delivered_first_attempt':
        coalesce(sum(events) FILTER (in_cohort AND attempt = 1 AND outcome = 'delivered'), 0)::BIGINT,
    'delivered_eventually': coalesce(sum(events) FILTER (in_cohort AND outcome = 'delivered'), 0)::BIGINT,
    'failed': coalesce(sum(events) FILTER (in_cohort AND outcome = 'failed'), 0)::BIGINT,
    'dropped': coalesce(sum(events) FILTER (in_cohort AND outcome = 'dropped'), 0)::BIGINT,
    'skipped': coalesce(sum(events) FILTER (in_cohort AND outcome = 'skipped'), 0)::BIGINT
};

-- recovered_by_replay(in_replay, outcome, events): an aggregate over cohort_and_requests rows: the
-- events received in the range that ended undelivered and that a replay then delivered.
CREATE OR REPLACE MACRO recovered_by_replay(in_replay, outcome, events) AS
    coalesce(sum(events) FILTER (in_replay AND outcome = 'delivered'), 0)::BIGINT;

-- destination_figures(scope_kind, scope_value, range_start, range_end): cohort_figures per
-- destination (with its workspace and integration), for the destinations with requests or
-- received events in the range. A destination belongs to one workspace and one integration,
-- so the figures of several add up.
CREATE OR REPLACE MACRO destination_figures(scope_kind, scope_value, range_start, range_end) AS TABLE
    SELECT *, events_received - delivered_eventually - failed - dropped - skipped AS still_retrying
    FROM (
        SELECT
            workspace_id,
            destination_id,
            integration,
            unnest(cohort_figures(in_cohort, is_request, attempt, outcome, events, records)),
            recovered_by_replay(in_replay, outcome, events) AS recovered_by_replay
        FROM cohort_and_requests(scope_kind, scope_value, range_start, range_end, per_destination := true)
        -- DuckDB spreads a struct into columns only under an explicit GROUP BY, not GROUP BY ALL.
        GROUP BY workspace_id, destination_id, integration
        HAVING bool_or(is_request OR in_cohort OR in_replay)
    );

-- pct(part, whole): part as a percentage of whole, 0 when whole is 0 (or NULL).
CREATE OR REPLACE MACRO pct(part, whole) AS coalesce(100 * part / nullif(whole, 0)::DOUBLE, 0);

-- scoped_histogram(per_integration, per_destination, scope_kind, scope_value, range_start,
-- range_end): the rows of a histogram rollup for the scope's requests started in [range_start,
-- range_end). A histogram comes as two views, named by the first two arguments: per integration
-- (small; no workspace or destination, NULL here), which scope 'all' and an integration read,
-- and per destination (many times bigger, sorted by workspace and destination), which a
-- workspace or a destination reads. The bound $scope_kind makes the other view's branch an
-- empty result when DuckDB plans the statement: EXPLAIN ANALYZE shows none of its files read
-- (binding the view still lists them and opens their footers, a few milliseconds).
CREATE OR REPLACE MACRO scoped_histogram(
    per_integration, per_destination, scope_kind, scope_value, range_start, range_end
) AS TABLE
    SELECT *
    FROM (
        FROM query_table(per_integration) WHERE scope_kind IN ('all', 'integration')
        UNION ALL BY NAME
        FROM query_table(per_destination) WHERE scope_kind IN ('workspace', 'destination')
    )
    WHERE in_scope(scope_kind, scope_value, workspace_id, destination_id, integration)
      AND started_in(date, started_hour, range_start, range_end);

-- scoped_delay_histogram(scope_kind, scope_value, range_start, range_end): the delay histogram
-- rows of the scope's jobs received in [range_start, range_end) and delivered, read to a day
-- past range_end as cohort_outcomes does.
CREATE OR REPLACE MACRO scoped_delay_histogram(scope_kind, scope_value, range_start, range_end) AS TABLE
    SELECT *
    FROM scoped_histogram(
        'delay_histogram', 'destination_delay_histogram',
        scope_kind, scope_value, range_start, range_end + INTERVAL 1 DAY
    )
    WHERE received_hour >= range_start
      AND received_hour < range_end;

-- rank_middle(buckets, up_to, k): for a histogram given as its bucket numbers in increasing
-- order, bucket b counting values in [1.1^b, 1.1^(b+1)), and `up_to`, each bucket's running
-- count (the values in it and every lower bucket): the geometric middle of the bucket holding
-- the value of rank k (0-based in sorted order), the lowest bucket whose running count
-- exceeds k. 1.1^(b + 0.5) is within a factor 1.1^0.5 (4.9%) of any value in the bucket.
CREATE OR REPLACE MACRO rank_middle(buckets, up_to, k) AS
    pow(1.1, buckets[list_position(list_transform(up_to, lambda n: n > k), true)] + 0.5);

-- rank_value(buckets, up_to, r, max_value): quantile_cont's value at fractional rank r,
-- estimated from the histogram within 5%. quantile_cont interpolates between the values at
-- ranks floor(r) and ceil(r); here each is replaced by its bucket's middle and the same
-- interpolation applied. A bucket's middle can lie above the largest value, so the result is
-- capped at `max_value`, which only brings it closer. Values under 0.01 ms share one bucket:
-- the bound holds from there up.
CREATE OR REPLACE MACRO rank_value(buckets, up_to, r, max_value) AS
    least(
        rank_middle(buckets, up_to, floor(r))
            + (r - floor(r)) * (rank_middle(buckets, up_to, ceil(r)) - rank_middle(buckets, up_to, floor(r))),
        max_value
    );

-- histogram_quantiles(bucket, up_to, max_value): an aggregate over a histogram's rows, one per
-- bucket with its running count `up_to` and its largest value: [p50, p95, p99] of the values
-- counted, each within 5% of quantile_cont's (r = q * (n - 1) for n values).
CREATE OR REPLACE MACRO histogram_quantiles(bucket, up_to, max_value) AS
    list_transform(
        [0.5, 0.95, 0.99],
        lambda q: rank_value(
            list(bucket ORDER BY bucket), list(up_to ORDER BY bucket), (max(up_to) - 1) * q, max(max_value)
        )
    );

-- explorer_match(error_class, error_code, status_code, destination_id, integration, want_...):
-- whether a record did not deliver (any error class but 'none': failed requests, and jobs
-- settled without a request) and matches the error explorer's filters, each ignored when NULL.
CREATE OR REPLACE MACRO explorer_match(
    error_class, error_code, status_code, destination_id, integration,
    want_error_class, want_error_code, want_status_code, want_destination_id, want_integration
) AS
    error_class <> 'none'
    AND (want_error_class IS NULL OR error_class = want_error_class)
    AND (want_error_code IS NULL OR error_code = want_error_code)
    AND (want_status_code IS NULL OR status_code = want_status_code)
    AND (want_destination_id IS NULL OR destination_id = want_destination_id)
    AND (want_integration IS NULL OR integration = want_integration);

-- id_for_scope(scope_kind, id): an id that names a customer or a job (workspace, source,
-- destination, job, attempt), as the scope may see it: NULL for an integration, a partner's
-- view across customers.
CREATE OR REPLACE MACRO id_for_scope(scope_kind, id) AS CASE WHEN scope_kind <> 'integration' THEN id END;

-- body_for_scope(scope_kind, body, workspace_id, destination_id): a response body as the scope
-- may see it. For an integration, redacted with redact_body (ingest/rollups/macros.sql), after
-- the body's own workspace and destination ids are replaced by <workspace> and <destination>.
CREATE OR REPLACE MACRO body_for_scope(scope_kind, body, workspace_id, destination_id) AS
    CASE
        WHEN scope_kind = 'integration'
            THEN redact_body(
                replace(replace(body, workspace_id, '<workspace>'), destination_id, '<destination>')
            )
        ELSE body
    END;
