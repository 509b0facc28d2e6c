"""The HTTP/1.1 protocol the engine runs uvicorn with: uvicorn's own, with JSON 400s.

A request the HTTP parser cannot read (a Content-Length that is not a
number, a header line without a colon, a broken request line) never
reaches the app: uvicorn answers it itself with a text/plain 400, which
Segment-protocol clients cannot read. This protocol answers it as the app
answers everything else, ``{"code": "invalid_http", "message": ...}``, and
closes the connection as uvicorn does. Pass it as ``uvicorn.Config(app,
http=JsonErrorHTTPProtocol)``.

It overrides `send_400_response`, the one hook uvicorn's h11, httptools and
zttp protocols share for parser errors; `tests/delivery/api/test_tracking_api.py`
sends malformed requests over a socket, so an uvicorn that changes the hook
fails a test rather than silently answering text again.
"""

from __future__ import annotations

import asyncio
import json
from typing import cast

from uvicorn.protocols.http.auto import AutoHTTPProtocol

INVALID_HTTP = "invalid_http"
_BODY = json.dumps(
    {
        "code": INVALID_HTTP,
        "message": "malformed HTTP request: the request line or a header (such as Content-Length) "
        "is not valid HTTP/1.1",
    }
).encode()
_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n"
    b"\r\n" + _BODY
)


class _JsonBadRequest:
    """Replaces uvicorn's text/plain answer to an unparseable request."""

    transport: asyncio.Transport

    def send_400_response(self, msg: str) -> None:
        """Answer the JSON 400 and close, whatever parser state the connection is in."""
        self.transport.write(_RESPONSE)
        self.transport.close()


#: uvicorn's automatic choice (httptools when installed, else h11) with JSON 400s.
JsonErrorHTTPProtocol = cast(
    type[asyncio.Protocol],
    type("JsonErrorHTTPProtocol", (_JsonBadRequest, AutoHTTPProtocol), {}),
)
