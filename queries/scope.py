"""Who a query looks at (`Scope`) and the parameters every query binds.

Every `.sql` file in this package takes the same four parameters:
`$scope_kind`, `$scope_value`, `$start` and `$end`. `query_parameters`
builds them, so the rules for a valid scope and time range live here once:
a range is half-open, [start, end), and starts and ends on whole UTC hours,
the grain of the rollups the queries read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class ScopeKind(StrEnum):
    """Which rows a query may see; the values are what the SQL compares."""

    ALL = "all"
    WORKSPACE = "workspace"
    DESTINATION = "destination"
    INTEGRATION = "integration"


@dataclass(frozen=True, slots=True)
class Scope:
    """All rows, or the rows of one workspace, destination or integration."""

    kind: ScopeKind
    """What `value` names."""
    value: str | None = None
    """The workspace_id, destination_id or integration; None for `all`."""

    def __post_init__(self) -> None:
        # Validated here so a scope can never reach SQL half-formed: a
        # workspace scope without an id would otherwise match nothing silently.
        object.__setattr__(self, "kind", ScopeKind(self.kind))
        if self.kind is ScopeKind.ALL:
            if self.value is not None:
                raise ValueError("Scope 'all' takes no value")
        elif not self.value:
            raise ValueError(f"Scope {self.kind.value!r} needs a non-empty value")

    def __str__(self) -> str:
        return self.kind.value if self.value is None else f"{self.kind.value}={self.value}"

    @classmethod
    def all(cls) -> Scope:
        """Every workspace: the operator's view."""
        return cls(ScopeKind.ALL)

    @classmethod
    def workspace(cls, workspace_id: str) -> Scope:
        """One customer's rows only."""
        return cls(ScopeKind.WORKSPACE, workspace_id)

    @classmethod
    def destination(cls, destination_id: str) -> Scope:
        """One configured destination's rows only."""
        return cls(ScopeKind.DESTINATION, destination_id)

    @classmethod
    def integration(cls, integration: str) -> Scope:
        """One destination type's rows, across workspaces."""
        return cls(ScopeKind.INTEGRATION, integration)


def query_parameters(scope: Scope, start: datetime, end: datetime) -> dict[str, object]:
    """The parameters every query binds, for rows in the half-open range [start, end).

    Raises `ValueError` for naive datetimes (the log is in UTC and a naive
    time would be read in whatever zone the process happens to run in), for
    moments not on a whole UTC hour (the queries read hourly rollups, which
    cannot split an hour), and for an empty or reversed range.
    """
    for name, moment in (("start", start), ("end", end)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
        _check_on_the_hour(name, moment)
    if end <= start:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    return {
        "scope_kind": scope.kind.value,
        "scope_value": scope.value,
        "start": start,
        "end": end,
    }


def _check_on_the_hour(name: str, moment: datetime) -> None:
    utc = moment.astimezone(UTC)
    if (utc.minute, utc.second, utc.microsecond) == (0, 0, 0):
        return
    # A zone whose offset is not whole hours (+05:30) can be on its own hour and not on UTC's.
    in_utc = "" if moment.utcoffset() == timedelta(0) else f" ({utc} in UTC)"
    raise ValueError(
        f"time ranges are whole UTC hours (the rollups' grain): {name} {moment}{in_utc} is not on the hour"
    )
