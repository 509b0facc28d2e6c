"""Standard Webhooks signatures: the headers that let a receiver tell a real delivery from a forged one. Pure.

A destination with a `signing_secret` sends three more headers with every
request, as the Standard Webhooks specification says
(https://www.standardwebhooks.com, docs/webhooks.md)::

    webhook-id         the job's id: the same on every retry of the job (the receiver's idempotency key)
    webhook-timestamp  when this attempt was sent, in integer seconds since the epoch
    webhook-signature  "v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}." + body)>", one per key,
                       separated by spaces

A secret is ``whsec_`` and the standard base64 of a key of 24 to 64 random
bytes (`secret_key` checks it). During a rotation the previous secret signs
too, until the moment it expires; a receiver holding either secret accepts
the request, since it finds its own signature among them.

The HMAC of each key is keyed once, when the `Signer` is built: signing a
request copies the keyed state and hashes the signed content, so its cost is
that of hashing the body (docs/benchmarks.md, "Signed webhooks"). Nothing
here shows a key: `Signer`'s repr is masked, and no message quotes a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

#: How a secret starts.
SECRET_PREFIX: Final = "whsec_"
#: Bounds of a key's size, in bytes, as the specification sets them.
MIN_KEY_BYTES: Final = 24
MAX_KEY_BYTES: Final = 64
#: The headers, spelt as the specification spells them.
ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
HEADERS: Final = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
#: The version prefix of a symmetric (HMAC-SHA256) signature.
VERSION: Final = "v1"
#: The rule a secret must follow, for error messages and docs.
SECRET_RULE: Final = (
    f"must be {SECRET_PREFIX!r} followed by the base64 of {MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes "
    "(docs/webhooks.md shows how to make one)"
)


def secret_key(secret: str) -> bytes:
    """The key a ``whsec_<base64>`` secret holds; ValueError, never quoting the secret, when it holds none.

    The base64 is the standard alphabet with its padding, checked strictly:
    a character outside it is an error rather than skipped.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"does not start with {SECRET_PREFIX!r}; {SECRET_RULE}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError(f"the part after {SECRET_PREFIX!r} is not valid base64; {SECRET_RULE}") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"holds a key of {len(key)} bytes; {SECRET_RULE}")
    return key


class Signer:
    """Signs one destination's requests with its secret, and with its previous one until that expires."""

    __slots__ = ("_current", "_previous", "_previous_until")

    def __init__(
        self, key: bytes, previous: bytes | None = None, previous_until: float | None = None
    ) -> None:
        """`key` signs every request; `previous` (a rotated-out key) those sent before `previous_until`.

        `previous_until` is in epoch seconds, and required with `previous`.
        """
        if (previous is None) != (previous_until is None):
            raise ValueError("a previous key needs the time it stops signing, and only then")
        self._current = hmac.new(key, digestmod=hashlib.sha256)
        self._previous = hmac.new(previous, digestmod=hashlib.sha256) if previous is not None else None
        self._previous_until = previous_until

    @classmethod
    def from_secrets(
        cls, secret: str, previous: str | None = None, previous_until: float | None = None
    ) -> Signer:
        """A signer for ``whsec_`` secrets (ValueError when one is malformed; `secret_key`)."""
        return cls(secret_key(secret), secret_key(previous) if previous else None, previous_until)

    def signature(self, message_id: str, timestamp: int, body: bytes) -> str:
        """The `webhook-signature` value of a request sent at `timestamp`: one ``v1,<base64>`` per key."""
        signed = f"{message_id}.{timestamp}.".encode()
        keys = [self._current]
        if (
            self._previous is not None
            and self._previous_until is not None
            and timestamp < self._previous_until
        ):
            keys.append(self._previous)
        signatures = []
        for keyed in keys:
            mac = keyed.copy()
            mac.update(signed)
            mac.update(body)
            signatures.append(f"{VERSION},{base64.b64encode(mac.digest()).decode('ascii')}")
        return " ".join(signatures)

    def headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The three headers of a request whose id is `message_id`, sent at `timestamp` with `body`."""
        return {
            ID_HEADER: message_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: self.signature(message_id, timestamp, body),
        }

    def __repr__(self) -> str:
        rotating = f", previous until {self._previous_until:g}" if self._previous is not None else ""
        return f"Signer(key=**********{rotating})"
