"""Signed webhooks benchmark: what signing adds to each request, on the worker's hot path.

    .venv/bin/python bench/signing.py [--repeat 200]

Times `delivery.payload.signed` (the destination's headers plus the three
Standard Webhooks headers: id, timestamp, signature) as the worker calls it
once per request, with the `Signer` built once per destination (keys
decoded, HMAC keyed), for bodies of the sizes deliveries have: one event,
a small batch, a large one and the webhook's largest (500,000 bytes). Beside
it: an unsigned destination (the baseline: the headers as they are), a
rotation (two signatures), and signing without the precomputation (the
secret decoded and the HMAC keyed on every request), which is what the
`Signer` saves. Prints a Markdown table of microseconds per request for
docs/benchmarks.md: the fastest of `--repeat` short runs (about 10 ms each),
each the mean of its calls. The fastest, as `timeit` advises: slower runs
measure other load on the machine, not the code; short runs, so that some
fall between the other load's bursts on a shared machine.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import platform
import secrets
import time
import timeit
from collections.abc import Callable

from delivery.config import Destination, Secret
from delivery.payload import headers, signed, signer

#: Events per body: one event, batches, and about the webhook's largest body (500,000 bytes).
SIZES = (1, 10, 140, 1_540)
JOB_ID = "01JEV7Q8Z4K0M6N2P4R6S8T0VW"


def body(events: int) -> bytes:
    """A webhook body of `events` Segment track calls of about 320 bytes each."""
    event = {
        "type": "track",
        "event": "Order Completed",
        "userId": "user-000123",
        "messageId": "0b3a7c4e-8a51-4a8e-9d55-6c2f7b1e9a10",
        "timestamp": "2026-12-05T10:00:00.000Z",
        "properties": {"order_id": "ord_51234", "total": 129.95, "currency": "EUR", "items": 3},
        "context": {"library": {"name": "analytics-python", "version": "2.3.4"}, "ip": "203.0.113.7"},
    }
    one = json.dumps(event, separators=(",", ":")).encode()
    return one if events == 1 else b'{"batch":[' + b",".join([one] * events) + b"]}"


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def destination(**signing: object) -> Destination:
    return Destination(
        id="hook",
        source="web",
        integration="webhook",
        url="https://hooks.example.com/in",
        headers={"Authorization": Secret("Bearer s3cret")},
        **signing,  # type: ignore[arg-type]
    )


def unprecomputed(secret: str, static: dict[str, str], sent_at: float, payload: bytes) -> dict[str, str]:
    """Signing as a naive sender would: the secret decoded and the HMAC keyed on every request."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    timestamp = int(sent_at)
    mac = hmac.new(key, f"{JOB_ID}.{timestamp}.".encode() + payload, hashlib.sha256).digest()
    return {
        **static,
        "webhook-id": JOB_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def per_call_us(call: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` runs of about 10 ms of the mean time of one call, in microseconds."""
    timer = timeit.Timer(call)
    number, _ = timer.autorange()  # calls taking 0.2 s at least
    number = max(1, number // 20)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="runs per figure (the fastest is shown)")
    args = parser.parse_args()

    secret, previous = whsec(), whsec()
    plain = destination()
    single = destination(signing_secret=Secret(secret))
    rotating = destination(
        signing_secret=Secret(secret),
        previous_signing_secret=Secret(previous),
        previous_signing_secret_expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    )
    static = headers(single)
    signers = {
        name: signer(d) for name, d in (("unsigned", plain), ("signed", single), ("rotating", rotating))
    }
    now = time.time()

    print(f"{platform.machine()}, {platform.python_version()}, {platform.python_implementation()}")
    print("| body | unsigned | signed | rotating (2 signatures) | signed, key not precomputed |")
    print("|---|---:|---:|---:|---:|")
    for events in SIZES:
        payload = body(events)
        figures = [
            per_call_us(lambda s=s, p=payload: signed(static, s, JOB_ID, now, p), args.repeat)  # type: ignore[misc]
            for s in signers.values()
        ]
        figures.append(
            per_call_us(lambda p=payload: unprecomputed(secret, static, now, p), args.repeat)  # type: ignore[misc]
        )
        cells = " | ".join(f"{figure:.2f} µs" for figure in figures)
        print(f"| {events:,} event{'s' if events > 1 else ''}, {len(payload):,} bytes | {cells} |")


if __name__ == "__main__":
    main()
