"""Response bodies the simulated partners answer with, and transport error texts.

A body is a template of literal parts around at most one variable part
(a request id, unique per response; a number, such as an account id or a
limit, fixed per destination; a number of seconds; the index of the bad
event), the way real APIs vary the same message. Each integration sticks to one template per status, as real
partners do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Var = Literal["", "request_id", "number", "seconds", "index"]


@dataclass(frozen=True, slots=True)
class Template:
    """`prefix + <variable> + suffix`."""

    prefix: str
    var: Var = ""
    suffix: str = ""


_NAME_RULE = "/^[0-9a-zA-Z_][0-9a-zA-Z _-]{0,39}$/"

#: Templates by status code; codes not listed use the class fallback below.
BY_STATUS: dict[int, tuple[Template, ...]] = {
    400: (
        Template(
            '{"error":{"message":"(#100) Value of param custom_events[',
            "index",
            f'][_eventName] must match regex pattern: {_NAME_RULE}","code":100}}}}',
        ),
        Template(
            '{"status":"error","errors":[{"field":"event","message":"Event name contains '
            'characters that are not allowed"}],"request_id":"',
            "request_id",
            '"}',
        ),
        Template(
            '{"code":"invalid_event_name","message":"Event names must be at most 40 characters '
            'and use letters, digits, spaces, _ or -"}'
        ),
    ),
    422: (
        Template(
            '{"errors":[{"title":"Unprocessable Entity","detail":"data.attributes.name is invalid",'
            '"source":{"pointer":"/data/',
            "index",
            '/attributes/name"}}]}',
        ),
    ),
    401: (
        Template(
            '{"error":"invalid_token","message":"The access token provided is expired, revoked or '
            'malformed","request_id":"',
            "request_id",
            '"}',
        ),
        Template('{"errors":[{"code":"unauthorized","message":"Invalid API key"}]}'),
        Template("Unauthorized"),
    ),
    403: (
        Template(
            '{"error":{"code":403,"message":"Permission denied: the API key lacks the scope '
            'events:write","status":"PERMISSION_DENIED"}}'
        ),
        Template(
            '{"message":"Account suspended. Contact support to reactivate.","account_id":', "number", "}"
        ),
    ),
    429: (
        Template('{"error":"rate_limited","message":"Rate limit exceeded, retry in ', "seconds", 's"}'),
        Template("Too Many Requests"),
        Template(
            '{"errors":[{"code":"too_many_requests","message":"API rate limit exceeded","limit_per_minute":',
            "number",
            "}]}",
        ),
    ),
    500: (
        Template(
            '{"error":"internal_error","message":"An unexpected error occurred. Please try again.",'
            '"request_id":"',
            "request_id",
            '"}',
        ),
        Template("Internal Server Error"),
    ),
    501: (Template('{"message":"Not Implemented: batch endpoint is not available on this plan"}'),),
    502: (
        Template(
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
            "Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        ),
    ),
    503: (
        Template(
            '{"message":"Service temporarily unavailable, please retry later","retry_after":', "seconds", "}"
        ),
        Template(
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
        ),
    ),
    504: (
        Template(
            "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n"
        ),
    ),
    404: (Template("Cannot POST /hooks/segment"), Template('{"message":"Not Found"}')),
    405: (Template("Method Not Allowed"),),
    408: (
        Template(
            '{"error":"request_timeout","message":"Timed out reading request body after ', "number", ' ms"}'
        ),
    ),
    410: (Template('{"error":"gone","message":"This webhook endpoint has been deleted"}'),),
    413: (Template('{"error":"payload_too_large","message":"Request body exceeds ', "number", ' bytes"}'),),
    418: (Template("I'm a teapot"),),
}

#: Bodies for codes without their own entry, by class of code.
FALLBACK_NONSTANDARD = (Template("OK"), Template('{"ok":true}'), Template("received"))
FALLBACK_REDIRECT = (
    Template(
        '<html><body>You are being <a href="https://hooks.example.com/v2/',
        "number",
        '">redirected</a>.</body></html>',
    ),
    Template("Moved Permanently. Redirecting to https://example.net/webhooks/segment"),
)


def templates_for(status: int) -> tuple[Template, ...]:
    """The templates a partner may answer `status` with."""
    if status in BY_STATUS:
        return BY_STATUS[status]
    if 300 <= status < 400:
        return FALLBACK_REDIRECT
    return FALLBACK_NONSTANDARD


#: What Python's stack says for each transport failure (the engine records the same).
TRANSPORT_MESSAGES: dict[str, str] = {
    "ENOTFOUND": "[Errno -2] Name or service not known",
    "EAI_AGAIN": "[Errno -3] Temporary failure in name resolution",
    "ECONNREFUSED": "[Errno 111] Connection refused",
    "ECONNRESET": "[Errno 104] Connection reset by peer",
    "ECONNABORTED": "[Errno 103] Software caused connection abort",
    "EHOSTUNREACH": "[Errno 113] No route to host",
    "ETIMEDOUT": "timed out: no response within the request timeout",
    "CERT_HAS_EXPIRED": "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired",
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE": "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
    "unable to verify the first certificate",
    "DEPTH_ZERO_SELF_SIGNED_CERT": "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
    "self-signed certificate",
}
