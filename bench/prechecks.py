"""Pre-send checks benchmark: how many 400s from the simulator's `strict` partner the prechecks prevent.

    .venv/bin/python bench/prechecks.py [--events 2000] [--seed 7] [--long-context 0] [--timeout 120]

Everything runs in this one process, on loopback: one `strict` partner
(`deliverydash.partner_simulator`, in a thread), the engine (`deliverydash.demo_harness.EngineThread`,
in a thread with its own event loop) and the real `segment-analytics-python`
client, which sends `--events` calls to the engine's tracking API.

The partner's rules are set as close to the `crm-records` catalog entry as
the `strict` profile's knobs allow: track names must match
`^[A-Za-z0-9_]{1,40}$`, `userId` is a required field, strings are at most
255 characters. What the profile cannot say: it accepts every call type
(crm-records takes identify, track and group only), and it measures strings
in all of `context`, where crm-records cuts only `context.traits`.

One source fans every event out to two destinations that point at that same
partner (on two paths, so the partner's answers can be told apart):

* `crm` (`integration = "crm-records"`, `max_batch_events = 1`): every event
  is checked against the catalog's rules first; fixable breaches are fixed,
  the others skip the job (`skipped`, class `precheck`, the rule's code);
* `hook` (`integration = "webhook"`): no rules, every event sent as received,
  one per request. What it is answered is what the partner says about the
  raw event, so it is the baseline: each 400 it gets is one the prechecks
  had the chance to prevent.

Metering is off (`engine.metering = false`): crm-records' documented
10 requests/s would otherwise make the run take minutes, and pacing is not
what is measured. The mix is drawn from a seeded `random.Random`, so runs
repeat: 70 % valid calls (track, identify, group), 15 % fixable (event names
with spaces or punctuation or over 40 characters, strings over 255
characters, or both), 10 % anonymous (no userId: unfixable), 5 % other call
types (page, screen, alias). Every call carries a messageId drawn from the
same generator, so the attempt log's records of the two destinations are
joined per event. `--long-context F` (default 0, off) also gives that share
of the valid track calls a `context.page.url` over 255 characters (a long
query string), drawn from a second generator so the rest of the mix is
unchanged: it shows the one 400 the crm-records rules do not cover.

Reported, per destination: requests sent (attempt log) and as the partner
counted them, 400s (partner and attempt log), fixes made (`/metrics`
`deliverydash_precheck_fixes_total`), jobs skipped by the prechecks (by
code) and events delivered; then the headline (400s the raw events earned
on `hook` that the same events did not earn on `crm`) and, per kind of
event, what became of it on each destination.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deliverydash.partner_simulator.profiles import Reply, Request, Strict  # noqa: E402

WRITE_KEY = "wk_bench_prechecks"
PARTNER = "strict-crm"
#: (destination id, integration, path on the partner).
DESTINATIONS = (("crm", "crm-records", "/crm"), ("hook", "webhook", "/hook"))
#: The crm-records rules, as the strict profile's knobs say them.
EVENT_PATTERN = r"^[A-Za-z0-9_]{1,40}$"
MAX_STRING = 255
KINDS = ("valid", "fixable", "anonymous", "other type", "valid, long context.page.url")
USERS = ("ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken")
VALID_NAMES = ("Order_Completed", "Product_Viewed", "Signed_Up", "Cart_Updated", "Checkout_Started")
BAD_NAMES = (
    "Order Completed",
    "Order Completed!",
    "Added to Cart",
    "Checkout Step 2 - Payment",
    "Coupon Applied (10%)",
    "Plan Upgraded: Pro -> Business",
    "Subscription Renewed For Another Twelve Months Automatically",
)


@dataclass
class CountingStrict(Strict):
    """The `strict` profile, unchanged, also counting its answers by request path."""

    name: ClassVar[str] = "strict"
    answers: Counter[tuple[str, int]] = field(
        default_factory=Counter, init=False, repr=False, metadata={"knob": False}
    )

    def decide(self, request: Request, now: float) -> Reply:
        reply = super().decide(request, now)
        self.answers[(request.path, getattr(reply, "status", 0))] += 1
        return reply


# -- the events --------------------------------------------------------------------------------


def long_text(rng: random.Random) -> str:
    """A free text over the 255-character limit (a review, a description)."""
    words = ("great", "product", "shipping", "was", "fast", "and", "the", "box", "arrived", "intact")
    length = rng.randint(MAX_STRING + 1, 1200)
    text = ""
    while len(text) < length:
        text += rng.choice(words) + " "
    return text[:length]


def send_events(host: str, n: int, seed: int, long_context: float = 0.0) -> tuple[dict[str, str], int]:
    """Send `n` calls with the real client; (messageId -> kind, calls the client failed to send)."""
    from segment.analytics.client import Client

    rng = random.Random(seed)
    extra = random.Random(seed + 1)  # the --long-context draws, apart so the main mix is unchanged
    failures = 0

    def on_error(error: Exception, batch: list[Any]) -> None:
        nonlocal failures
        failures += len(batch)

    client = Client(
        WRITE_KEY, host=host, upload_size=100, max_retries=3, timeout=15, on_error=on_error, max_queue_size=n
    )
    kinds: dict[str, str] = {}
    for i in range(n):
        message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        user = f"{rng.choice(USERS)}-{i % 97}"
        draw = rng.random()
        kind = (
            "valid"
            if draw < 0.70
            else "fixable"
            if draw < 0.85
            else "anonymous"
            if draw < 0.95
            else "other type"
        )
        props: dict[str, Any] = {"order_id": f"o-{i}", "revenue": round(rng.uniform(5, 500), 2)}
        call = _Call(client, rng, i, user, message_id, props)
        kinds[message_id] = kind
        if kind == "valid":
            kinds[message_id] = _send_valid(call, extra, long_context)
        elif kind == "fixable":
            _send_fixable(call)
        elif kind == "anonymous":
            _send_anonymous(call)
        else:
            _send_other_type(call)
    client.shutdown()  # flush the queue and stop the consumer thread
    return kinds, failures


@dataclass(frozen=True)
class _Call:
    """One call to send: the client, the mix's generator, and what every kind of call carries."""

    client: Any
    rng: random.Random
    i: int
    user: str
    message_id: str
    props: dict[str, Any]


def _send_valid(call: _Call, extra: random.Random, long_context: float) -> str:
    """A call the partner accepts raw; its kind (the last of KINDS when it got a long page URL)."""
    client, rng, user, message_id = call.client, call.rng, call.user, call.message_id
    draw = rng.random()
    if draw < 0.6:
        context: dict[str, Any] = {}
        kind = "valid"
        if long_context and extra.random() < long_context:
            kind = KINDS[-1]
            query = "&".join(f"utm_{k}={'x' * 40}" for k in ("source", "medium", "campaign", "content"))
            context["page"] = {"url": f"https://shop.example.com/checkout?{query}&gclid={'g' * 100}"}
        client.track(
            user_id=user,
            event=rng.choice(VALID_NAMES),
            properties=call.props,
            context=context,
            message_id=message_id,
        )
        return kind
    if draw < 0.9:
        traits = {"email": f"{user}@example.com", "plan": rng.choice(("free", "pro", "business"))}
        client.identify(user_id=user, traits=traits, message_id=message_id)
    else:
        client.group(
            user_id=user, group_id=f"g-{call.i % 13}", traits={"name": "Initech"}, message_id=message_id
        )
    return "valid"


def _send_fixable(call: _Call) -> None:
    """A call breaking a rule the prechecks fix: a bad event name, a string too long, or both."""
    client, rng, user, message_id = call.client, call.rng, call.user, call.message_id
    problem = rng.random()  # 40 % name only, 40 % long string only, 20 % both
    name = rng.choice(BAD_NAMES) if problem < 0.4 or problem >= 0.8 else rng.choice(VALID_NAMES)
    if problem >= 0.4:
        if rng.random() < 0.75 or problem >= 0.8:
            call.props["review"] = long_text(rng)
        else:
            traits = {"email": f"{user}@example.com", "bio": long_text(rng)}
            client.identify(user_id=user, traits=traits, message_id=message_id)
            return
    client.track(user_id=user, event=name, properties=call.props, message_id=message_id)


def _send_anonymous(call: _Call) -> None:
    """A call with an anonymousId only, which crm-records refuses."""
    anonymous_id = f"anon-{call.rng.getrandbits(32):08x}"
    if call.rng.random() < 0.7:
        call.client.track(
            anonymous_id=anonymous_id,
            event=call.rng.choice(VALID_NAMES),
            properties=call.props,
            message_id=call.message_id,
        )
    else:
        call.client.identify(anonymous_id=anonymous_id, traits={"plan": "free"}, message_id=call.message_id)


def _send_other_type(call: _Call) -> None:
    """A page, screen or alias call: types crm-records does not take."""
    client, user, message_id = call.client, call.user, call.message_id
    draw = call.rng.random()
    if draw < 0.5:
        client.page(user_id=user, name="Pricing", properties={"path": "/pricing"}, message_id=message_id)
    elif draw < 0.8:
        client.screen(user_id=user, name="Home", properties={"tab": "feed"}, message_id=message_id)
    else:
        client.alias(previous_id=f"anon-{call.i}", user_id=user, message_id=message_id)


# -- the run -----------------------------------------------------------------------------------


def engine_config(data_dir: Path, url: str) -> Any:
    from delivery.config import parse_config

    destinations = []
    for destination_id, integration, path in DESTINATIONS:
        destination: dict[str, Any] = {
            "id": destination_id,
            "source": "web",
            "integration": integration,
            "url": url.rstrip("/") + path,
            "max_batch_events": 1,
        }
        if integration != "webhook":
            destination["credential"] = "bench-crm-token"
        destinations.append(destination)
    return parse_config(
        {
            "engine": {
                "data_dir": str(data_dir.resolve()),
                "allow_private_targets": True,
                "metering": False,
                "export_interval_s": 1,
                "request_timeout_s": 5,
                "shutdown_grace_s": 2,
                # Nothing here should be retried (400 is terminal); a quick schedule keeps a surprise short.
                "backoff_base_s": 0.5,
                "backoff_max_s": 2,
                "max_attempts": 3,
            },
            "sources": [{"id": "web", "workspace": "acme", "write_key": WRITE_KEY}],
            "destinations": destinations,
        },
        "bench prechecks config",
    )


def precheck_fixes(metrics_text: str) -> Counter[str]:
    """`deliverydash_precheck_fixes_total` for crm-records, by rule."""
    fixes: Counter[str] = Counter()
    pattern = re.compile(r"^deliverydash_precheck_fixes_total\{([^}]*)\}\s+([0-9.e+]+)$")
    for line in metrics_text.splitlines():
        if (match := pattern.match(line)) is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
        if labels.get("integration") == "crm-records":
            fixes[labels.get("rule", "?")] += int(float(match[2]))
    return fixes


def read_log(data_dir: Path) -> list[dict[str, Any]]:
    """Every attempt record, one event each (max_batch_events = 1)."""
    import duckdb

    glob = str(data_dir / "attempts" / "**" / "*.parquet")
    rows = duckdb.connect().execute(
        f"""
        SELECT destination_id, attempt, outcome, status_code, error_class, error_code,
               event_count, events[1].message_id AS message_id
        FROM read_parquet('{glob}', hive_partitioning = false)
        """
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, row, strict=True)) for row in rows.fetchall()]


def run(n: int, seed: int, long_context: float, timeout_s: float) -> dict[str, Any]:
    import httpx

    from deliverydash.demo_harness import DemoError, EngineThread
    from deliverydash.partner_simulator.config import PartnerSpec
    from deliverydash.partner_simulator.servers import partners_in_thread

    profile = CountingStrict(
        event_pattern=EVENT_PATTERN,
        required_fields=["type", "messageId", "timestamp", "userId"],
        require_identity=True,
        max_string_length=MAX_STRING,
    )
    with tempfile.TemporaryDirectory(prefix="bench-prechecks-") as tmp:
        data_dir = Path(tmp) / "data"
        with partners_in_thread([PartnerSpec(PARTNER, profile)], control_port=None) as partners:
            engine = EngineThread(engine_config(data_dir, partners.url(PARTNER)))
            engine.start()
            started = time.monotonic()
            try:
                kinds, client_failures = send_events(engine.url, n, seed, long_context)
                sent_s = time.monotonic() - started
                print(f"sent {n:,} calls in {sent_s:.1f} s ({client_failures} failed)", file=sys.stderr)
                deadline = time.monotonic() + timeout_s
                while (unsettled := engine.unfinished_jobs()) and time.monotonic() < deadline:
                    if not engine._thread.is_alive():
                        raise DemoError(f"the engine stopped unexpectedly: {engine.error}")
                    time.sleep(0.2)
                settled_s = time.monotonic() - started
                metrics = httpx.get(engine.url + "/metrics", timeout=10).text
            finally:
                engine.stop()
            if engine.error is not None:
                raise DemoError(f"the engine failed: {engine.error!r}")
            stats = partners.stats(PARTNER).as_dict()
        records = read_log(data_dir)
    return {
        "kinds": kinds,
        "client_failures": client_failures,
        "unsettled": unsettled,
        "sent_s": sent_s,
        "settled_s": settled_s,
        "fixes": precheck_fixes(metrics),
        "partner": stats,
        "answers": dict(profile.answers),
        "records": records,
    }


# -- the report --------------------------------------------------------------------------------


def final_outcomes(records: list[dict[str, Any]], destination: str) -> dict[str, dict[str, Any]]:
    """messageId -> the job's final record (the last attempt), on one destination."""
    finals: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["destination_id"] != destination or record["outcome"] == "retry":
            continue
        finals[record["message_id"]] = record
    return finals


def verdict(record: dict[str, Any] | None) -> str:
    if record is None:
        return "no record"
    if record["outcome"] == "skipped":
        return f"skipped ({record['error_code']})"
    if record["status_code"] is not None:
        return f"{record['outcome']} {record['status_code']}"
    return f"{record['outcome']} ({record['error_code']})"


def report(result: dict[str, Any], n: int, seed: int) -> None:
    """Print the figures of `run` as Markdown for docs/benchmarks.md."""
    finals = {d: final_outcomes(result["records"], d) for d, _, _ in DESTINATIONS}
    print(
        f"\n### Prechecks: {n:,} calls (seed {seed}) to one `strict` partner, "
        "through a `crm-records` and a `webhook` destination\n"
    )
    _report_destinations(result, finals)
    partner = result["partner"]
    print(
        f"\nPartner's own totals (both paths): {partner['requests']:,} requests, "
        f"statuses {partner['statuses']}"
    )

    _report_prevented(result["kinds"], finals)
    _report_by_kind(result["kinds"], finals)
    print(
        f"\nRun: {result['sent_s']:.1f} s to send, {result['settled_s']:.1f} s until every delivery settled "
        f"({result['unsettled']} unsettled, {result['client_failures']} calls the client failed to send); "
        f"machine: {os.cpu_count()} cores, partner, engine and client in one process"
    )


def _report_destinations(result: dict[str, Any], finals: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The table of requests, 400s, fixes, skips and final outcomes per destination."""
    records = result["records"]
    answers: dict[tuple[str, int], int] = result["answers"]
    print(
        "| destination | integration | requests (log) | requests (partner) | 400 (partner) | 400 (log) "
        "| fixes made (events fixed) | jobs skipped by prechecks | delivered | other final |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for destination, integration, path in DESTINATIONS:
        mine = [r for r in records if r["destination_id"] == destination]
        requests = sum(1 for r in mine if r["attempt"] >= 1)
        partner_requests = sum(v for (p, _), v in answers.items() if p == path)
        partner_400 = answers.get((path, 400), 0)
        log_400 = sum(1 for r in mine if r["status_code"] == 400)
        skipped = Counter(
            r["error_code"] for r in mine if r["outcome"] == "skipped" and r["error_class"] == "precheck"
        )
        skipped_text = ", ".join(f"{code} {count:,}" for code, count in skipped.most_common()) or "0"
        skipped_text = f"{sum(skipped.values()):,}" + (f" ({skipped_text})" if skipped else "")
        fixes: Counter[str] = result["fixes"] if integration == "crm-records" else Counter()
        fixes_text = f"{sum(fixes.values()):,}" + (
            " (" + ", ".join(f"{rule} {count:,}" for rule, count in fixes.most_common()) + ")"
            if fixes
            else ""
        )
        if integration == "crm-records":
            # The log has no column for fixes: an event refused raw on `hook` and delivered here was fixed.
            fixed = sum(
                1
                for m, r in finals[destination].items()
                if r["outcome"] == "delivered" and (finals["hook"].get(m) or {}).get("status_code") == 400
            )
            fixes_text += f" on {fixed:,} events"
        delivered = sum(1 for r in finals[destination].values() if r["outcome"] == "delivered")
        other = Counter(
            verdict(r) for r in finals[destination].values() if r["outcome"] not in ("delivered", "skipped")
        )
        other_text = ", ".join(f"{v} {c:,}" for v, c in other.most_common()) or "0"
        print(
            f"| `{destination}` | {integration} | {requests:,} | {partner_requests:,} | {partner_400:,} "
            f"| {log_400:,} | {fixes_text} | {skipped_text} | {delivered:,} | {other_text} |"
        )


def _report_prevented(kinds: dict[str, str], finals: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Per event: what the raw event earned on `hook`, what it became on `crm`."""
    crm, hook = finals["crm"], finals["hook"]
    refused_raw = [m for m, r in hook.items() if r["status_code"] == 400]
    still_400 = [m for m in refused_raw if (crm.get(m) or {}).get("status_code") == 400]
    prevented = len(refused_raw) - len(still_400)
    fixed_through = sum(1 for m in refused_raw if (crm.get(m) or {}).get("outcome") == "delivered")
    skipped_instead = sum(1 for m in refused_raw if (crm.get(m) or {}).get("outcome") == "skipped")
    new_400 = sum(1 for m, r in crm.items() if r["status_code"] == 400 and m not in set(refused_raw))
    over_skipped = sum(
        1
        for m, r in crm.items()
        if r["outcome"] == "skipped" and (hook.get(m) or {}).get("status_code") == 200
    )
    share = 100 * prevented / len(refused_raw) if refused_raw else 0.0
    print(f"\n**prechecks prevented {prevented:,} of {len(refused_raw):,} 400s ({share:.1f}%)**")
    print(
        f"- of those, {fixed_through:,} events were fixed and delivered, {skipped_instead:,} skipped "
        f"before sending; {len(still_400):,} still answered 400 after the prechecks, {new_400:,} 400s on "
        "`crm` for events the partner accepted raw"
    )
    fixable = [m for m, k in kinds.items() if k == "fixable"]
    fixable_delivered = sum(1 for m in fixable if (crm.get(m) or {}).get("outcome") == "delivered")
    fixable_refused_raw = sum(1 for m in fixable if (hook.get(m) or {}).get("status_code") == 400)
    print(
        f"- fixable events: {len(fixable):,}; delivered on `crm` thanks to fixes {fixable_delivered:,} "
        f"({100 * fixable_delivered / max(1, len(fixable)):.1f}%), against "
        f"{len(fixable) - fixable_refused_raw:,} of them accepted raw on `hook`"
    )
    print(
        f"- skipped on `crm` although the partner accepted the raw event on `hook`: {over_skipped:,} "
        "(call types crm-records does not take; the strict profile has no knob for types)"
    )


def _report_by_kind(kinds: dict[str, str], finals: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The fate of each kind of event, raw and prechecked."""
    crm, hook = finals["crm"], finals["hook"]
    print("\n| kind of event | events | on `hook` (raw) | on `crm` (prechecked) |")
    print("|---|---|---|---|")
    for kind in KINDS:
        ids = [m for m, k in kinds.items() if k == kind]
        if not ids:
            continue
        on_hook = Counter(verdict(hook.get(m)) for m in ids)
        on_crm = Counter(verdict(crm.get(m)) for m in ids)
        print(
            f"| {kind} | {len(ids):,} | {', '.join(f'{v} {c:,}' for v, c in on_hook.most_common())} "
            f"| {', '.join(f'{v} {c:,}' for v, c in on_crm.most_common())} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000, help="calls sent (default 2000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the mix (default 7)")
    parser.add_argument(
        "--long-context",
        type=float,
        default=0.0,
        help="share of valid track calls with a context.page.url over 255 characters (default 0)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="longest wait for every delivery to settle"
    )
    args = parser.parse_args()
    result = run(args.events, args.seed, args.long_context, args.timeout)
    report(result, args.events, args.seed)


if __name__ == "__main__":
    main()
