"""The verdict on one request: what `Sender.send` returned, judged by the taxonomy. Pure.

A response's status, nonstandard numbers included, goes to
`ingest.taxonomy.classify_status`; a failure's transport code (which the
client that ran already mapped from its exception,
`delivery.transport.errors`) to `ingest.taxonomy.classify_transport`.
"""

from __future__ import annotations

from delivery.sender import SendResult
from ingest.taxonomy import Classification, classify_status, classify_transport


def classify(result: SendResult) -> Classification:
    """The taxonomy's verdict on one request: class, code and retryability."""
    if result.status is not None:
        return classify_status(result.status)
    if result.error_code is None:
        raise ValueError("a SendResult holds a status or an error")
    return classify_transport(result.error_code)
