-- hour_number(ts) and hour_start(n): rollups group hours as integers
-- (microseconds // 3600e6) and turn them into timestamps after grouping:
-- date_trunc on TIMESTAMPTZ is time-zone aware and several times slower.
CREATE OR REPLACE MACRO hour_number(ts) AS epoch_us(ts) // 3600000000;
CREATE OR REPLACE MACRO hour_start(n) AS to_timestamp(n * 3600);

-- log_bucket(ms): the histogram bucket of a duration or delay in
-- milliseconds: b holds [1.1^b, 1.1^(b+1)) ms, under 0.01 ms counts as
-- 0.01 ms; a percentile read from the buckets is within 5% of the exact one.
CREATE OR REPLACE MACRO log_bucket(ms) AS floor(ln(greatest(ms, 0.01)) / ln(1.1))::SMALLINT;

-- body_template(body): an error body with its variable parts masked, so bodies
-- that differ only in numbers, ids or quoted values fall into one template.
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
CREATE OR REPLACE MACRO body_template(body) AS
    body
        .regexp_replace('\\"[^"\\]*\\"', '\\"?\\"', 'g')
        .regexp_replace('"[^"\s\\]*"(\s*[,}\]]|\s*$)', '"?"\1', 'g')
        .regexp_replace('\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?', '<ts>', 'g')
        .regexp_replace('[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}', '<id>', 'g')
        .regexp_replace('[A-Za-z0-9]{8,}', chr(1) || '\0' || chr(2), 'g')
        .regexp_replace('\x01[A-Za-z]*[0-9][A-Za-z0-9]*\x02', '<id>', 'g')
        .regexp_replace('[\x01\x02]', '', 'g')
        .regexp_replace('\b\d+(\.\d+)?', '<n>', 'g')
        .regexp_replace('\s+', ' ', 'g')
        .trim();

-- credential_name(): the pattern (for regexp_replace, case-insensitive) of a
-- name a credential follows in a message: api_key, X-Api-Key, token,
-- client_secret, password, Authorization, signature, ...; group 1.
CREATE OR REPLACE MACRO credential_name() AS
    '(?i)\b((?:api|access|write|private|secret|client)?[_ -]?(?:key|token|secret)|apikey|password|passwd|pwd'
    || '|authorization|signature|credentials?)';

-- redact_body(body): an error body as a partner may see it, across customers:
-- body_template's masks, and then whatever of a customer's data its prose
-- could still quote: URLs (a webhook's address is the customer's), with any
-- <n>, <id> or <ts> masked in them, become <url>; email addresses <email>;
-- text in single quotes '?' (partners quote the offending value that way:
-- "Event name 'Order Completed' is invalid"; body_template already masks
-- \"...\"). An apostrophe inside a word (didn't) opens no quote.
-- Then whatever is shaped like a credential, whatever characters it uses:
-- the value after a credential's name (api_key=..., "token: ...",
-- password ...; after a bare space only when it is 12 characters or more, so
-- "the token expired" keeps its words) becomes ?, and any run of 20 or
-- more letters, digits, '_', '-', '+' or '=' (no word of an error message is
-- that long) becomes <id>.
-- redact_body(body_template(b)) = redact_body(b), so a redacted template and
-- its redacted example agree. Queries also replace the row's own workspace
-- and destination ids before calling it (error_samples.sql).
CREATE OR REPLACE MACRO redact_body(body) AS
    body_template(body)
        .regexp_replace('[A-Za-z][A-Za-z0-9+.-]*://[^\s"''<>]*(<(n|id|ts)>[^\s"''<>]*)*', '<url>', 'g')
        .regexp_replace('[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}', '<email>', 'g')
        .regexp_replace('(^|[^A-Za-z0-9])''[^''\n]*''', '\1''?''', 'g')
        .regexp_replace(
            credential_name() || '(["'']?\s*[:=]\s*["'']?(?:(?:bearer|basic|token)\s+)?)[^\s"'',;&}\]]+',
            '\1\2?', 'g')
        .regexp_replace(
            credential_name() || '(\s+(?:(?:bearer|basic|token)\s+)?)[A-Za-z0-9_+/=.<>-]{12,}', '\1\2?', 'g')
        .regexp_replace('[A-Za-z0-9_+=-]{20,}', '<id>', 'g');

-- maybe_accepted(status_code, error_code): whether a request that got no answer may still have
-- been accepted by the partner: the body went out and then the wait ran out (ETIMEDOUT) or the
-- connection was cut (reset, aborted, closed without answering, broken pipe, an error nobody
-- knows). Errors that stop a request before its body leaves (ENOTFOUND, ECONNREFUSED,
-- EHOSTUNREACH, EAI_AGAIN, ENETUNREACH, TLS, private targets) and every answer (a 408 included:
-- the partner says it did not take the request) are not (docs/double-delivery.md).
CREATE OR REPLACE MACRO maybe_accepted(status_code, error_code) AS
    status_code IS NULL
    AND error_code IN ('ETIMEDOUT', 'ECONNRESET', 'ECONNABORTED', 'ESERVERDISCONNECT', 'EPIPE', 'EUNCLASSIFIED');

-- received_twice(deliveries, unanswered), twice_cause(deliveries), twice_certainty(deliveries): how
-- a job as received (not a replay), with its records' deliveries and unanswered requests summed,
-- counts as delivered more than once: two deliveries are certain (a second engine sent it again
-- while the first one's request was in flight, lease_expired); one delivery after a request that
-- may have been accepted unanswered is possible (retry_after_timeout). double_deliveries.sql
-- counts them, and so do the day files' sums per day received (ingest.day_rollups).
CREATE OR REPLACE MACRO received_twice(deliveries, unanswered) AS
    deliveries >= 2 OR (deliveries = 1 AND unanswered >= 1);
CREATE OR REPLACE MACRO twice_cause(deliveries) AS
    CASE WHEN deliveries >= 2 THEN 'lease_expired' ELSE 'retry_after_timeout' END;
CREATE OR REPLACE MACRO twice_certainty(deliveries) AS
    CASE WHEN deliveries >= 2 THEN 'certain' ELSE 'possible' END;

-- message_hash(message_id): the key of the message index (message_index.sql, docs/trace.md): the
-- top 40 bits of md5_number_upper, which DuckDB computes the same in every version (its hash()
-- does not). 40 bits, not 64: sorted, the hashes are stored as their differences, and 40 bits take
-- about 2.5 bytes a row where 64 take 5.5; a lookup checks the message id itself, so another event
-- sharing a hash (about one lookup in 10,000 on a 100-million-attempt day) costs a read, never a
-- wrong answer.
CREATE OR REPLACE MACRO message_hash(message_id) AS (md5_number_upper(message_id) >> 24)::BIGINT;
