"""Plain-language advice for an error: who can fix it, and how.

The seed's point: a customer should know whether a failure is theirs to fix
(credentials, payload), the partner's (an outage), or nobody's (a blip that
retries absorb).
"""

from __future__ import annotations

from ingest.taxonomy import ErrorClass

_BY_CLASS: dict[str, str] = {
    ErrorClass.AUTH: "Fix the credentials: the destination rejects the API key or token configured for it "
    "(expired, revoked, or missing a permission). Retrying cannot help.",
    ErrorClass.VALIDATION: "Fix the payload: the destination rejects these events as sent (a field is "
    "missing, badly formatted or too long). Check the body for the field it names.",
    ErrorClass.CLIENT: "Check the destination's settings: it refuses the request (wrong URL, method or "
    "account state). Retrying cannot help.",
    ErrorClass.RATE_LIMIT: "Nothing to do: the destination limits how fast it accepts data. Deliveries are "
    "slowed down and retried; events arrive late, not lost, unless the limit lasts hours.",
    ErrorClass.SERVER: "Nothing to do on your side: it is the partner's outage or bug. Deliveries are "
    "retried for up to four hours.",
    ErrorClass.TIMEOUT: "Usually the partner's slowness: deliveries are retried. If it lasts, ask the "
    "partner whether the endpoint is overloaded.",
    ErrorClass.NETWORK: "Usually a passing network problem (connection reset, DNS): deliveries are retried. "
    "If it lasts, check that the destination's host name still resolves and accepts connections.",
    ErrorClass.TLS: "Fix the destination's HTTPS set-up: its certificate is expired, self-signed or not "
    "trusted. The destination's owner must install a valid certificate.",
    ErrorClass.NONSTANDARD: "The endpoint answers with a status code outside HTTP's vocabulary: ask its "
    "owner to answer 2xx on success and a standard error code otherwise.",
    ErrorClass.REDIRECT: "Update the destination's URL: the endpoint moved and redirects are not followed.",
    ErrorClass.PRECHECK: "Fix the events or the destination's settings: they were refused before sending "
    "because they break the destination's rules (see the error message).",
    ErrorClass.DISABLED: "Re-enable the destination once its credentials are fixed: it was disabled after "
    "repeated authentication failures.",
}


def hint(error_class: str | None, status_code: int | None = None) -> str:
    """What to do about one kind of failure, in one or two sentences."""
    if status_code == 403:
        return (
            "Fix the permissions: the destination knows the credentials but forbids this action "
            "(a scope or plan limit). Retrying cannot help."
        )
    return _BY_CLASS.get(error_class or "", "No advice for this kind of failure yet.")
