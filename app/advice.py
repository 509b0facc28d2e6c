"""Advice to a partner about answers that defeat retries, in the seed's spirit (pure).

A sender can only act on what a status code says: 429 and 5xx mean "try
again", other 4xx mean "stop". Answers whose code and body disagree, or
"temporary" errors that never pass, waste the partner's capacity and the
sender's retry budget.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

_SAYS_RETRY = re.compile(r"try again|retry|temporar|unavailable|timed? ?out|overload|later", re.IGNORECASE)
_SAYS_INVALID = re.compile(
    r"invalid|required|must (be|match|not)|malformed|missing|not allowed|too long", re.IGNORECASE
)
#: Below this share of events dropped, 5xx answers are passing blips, not a pattern.
DROPPED_PCT_WORTH_A_NOTE = 0.5


def advise(report: dict[str, Any], codes: pl.DataFrame, samples: pl.DataFrame) -> list[str]:
    """Notes for the partner, most costly first; empty when nothing stands out.

    `report` is a day_report row, `codes` by_status_code and `samples`
    error_samples, all for the partner's integration.
    """
    notes: list[str] = []
    for row in samples.iter_rows(named=True):
        body = row["example"] or ""
        status = row["status_code"]
        if status is None:
            continue
        if 400 <= status < 500 and status != 429 and _SAYS_RETRY.search(body):
            notes.append(
                f"{row['requests']:,} answers were HTTP {status}, a code that tells senders to stop, "
                "with a body that says to try again. Answer 429 (with Retry-After) or 503 for temporary "
                "conditions, so the events are retried instead of lost."
            )
        elif status >= 500 and _SAYS_INVALID.search(body):
            notes.append(
                f"{row['requests']:,} answers were HTTP {status}, which senders retry for hours, with a body "
                "that describes invalid data. Answer 400 (or 422) for data the API will never accept, so "
                "senders stop retrying and customers see the reason."
            )
    if report["dropped_pct"] >= DROPPED_PCT_WORTH_A_NOTE and report["status_5xx_requests"]:
        notes.append(
            f"{report['dropped_pct']:.2f}% of events were dropped after retrying for the whole retry window: "
            "some 5xx answers never recovered. Persistent 5xx for the same request is a bug, not an outage: "
            "answer 4xx with the reason if the request itself is the problem."
        )
    nonstandard = codes.filter(pl.col("error_class") == "nonstandard")
    if nonstandard.height:
        listed = ", ".join(str(code) for code in nonstandard.get_column("label").to_list()[:8])
        notes.append(
            f"{int(nonstandard.get_column('requests').sum()):,} answers used status codes outside HTTP's "
            f"vocabulary ({listed}). Senders cannot tell success from failure: answer 2xx on success and a "
            "standard 4xx/5xx otherwise."
        )
    return notes
