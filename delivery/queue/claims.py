"""Which of a claim's candidate jobs it takes: the fairness rule every backend applies the same way.

A backend reads, per destination with claimable work, its oldest claimable
jobs (at most that destination's share), and hands them here; what comes
back is what it leases. Pure: no clock, no storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: A candidate: (available_at, job id, destination id, may share a request with other fresh jobs).
Candidate = tuple[float, str, str, bool]


def destination_share(
    destination_id: str, per_destination_limit: int, limits: Mapping[str, int], batches: Mapping[str, int]
) -> int:
    """How many jobs of `destination_id` a claim reads at most: its requests times the events in each."""
    requests = min(limits.get(destination_id, per_destination_limit), per_destination_limit)
    return max(requests, 0) * batches.get(destination_id, 1)


def choose(
    candidates: Sequence[Candidate],
    limit: int,
    per_destination_limit: int,
    limits: Mapping[str, int],
    batches: Mapping[str, int],
) -> list[str]:
    """The ids of the oldest candidates that fit in `limit` requests and each destination's limit.

    Jobs that may share a request fill a destination's open request (up to
    its `batches` size) before a new request is counted.
    """
    chosen: list[str] = []
    total = 0
    requests: dict[str, int] = {}
    shared: dict[str, int] = {}
    for _, job_id, destination_id, shares in sorted(candidates):
        # A job that may share a request opens a new one only when the last is full.
        opens = not shares or shared.get(destination_id, 0) % batches[destination_id] == 0
        cost = 1 if opens else 0
        cap = min(limits.get(destination_id, per_destination_limit), per_destination_limit)
        if total + cost > limit or requests.get(destination_id, 0) + cost > cap:
            continue
        total += cost
        requests[destination_id] = requests.get(destination_id, 0) + cost
        if shares:
            shared[destination_id] = shared.get(destination_id, 0) + 1
        chosen.append(job_id)
    return chosen
