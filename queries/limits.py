"""What one query of a person's SQL may use, and what is said when it reaches a limit.

Four limits bound every query that `queries.sandbox.SqlSandbox` runs:

* time (`Limits.timeout_s`): DuckDB is interrupted, and should a function
  not stop for that (one `repeat()` call runs to its end), the worker
  process is killed;
* memory (`SqlSandbox(memory_limit=...)`): DuckDB's `memory_limit`, and a
  cap on the worker process's data, `memory_limit` plus `HEADROOM`, since
  DuckDB does not count every allocation against its limit (a string
  from `repeat()` or a list from `range()` grew past 4 GiB under a
  512 MB limit, measured on DuckDB 2.0);
* rows (`Limits.max_rows`): the rows after the first `max_rows` are never
  fetched; the result says it was cut;
* bytes (`Limits.max_bytes`): a result that grows past it while fetching
  is dropped, with an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from queries.errors import QueryError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BYTES = 64 * MiB
DEFAULT_MEMORY_LIMIT = "1GiB"
DEFAULT_THREADS = 2
#: What a worker process may hold beyond DuckDB's memory limit: the
#: interpreter, DuckDB's and pyarrow's code and caches, and a result of up
#: to `max_bytes` on its way out (measured: about 310 MiB at rest). With
#: the default limit, a worker never holds more than 1.75 GiB.
HEADROOM = 768 * MiB

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": KiB,
    "MIB": MiB,
    "GIB": GiB,
    "TIB": 1024 * GiB,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


@dataclass(frozen=True)
class Limits:
    """The time, rows and bytes one query may take (memory is the sandbox's: `SqlSandbox`)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    """Seconds from the worker receiving the query to its last row fetched."""
    max_rows: int = DEFAULT_MAX_ROWS
    """Rows returned at most; `SqlResult.truncated` says when there were more."""
    max_bytes: int = DEFAULT_MAX_BYTES
    """Bytes of Arrow data fetched at most; a larger result is an error."""

    def __post_init__(self) -> None:
        if not self.timeout_s > 0 or self.max_rows < 1 or self.max_bytes < 1:
            raise ValueError(f"limits must be positive: {self}")


def parse_memory_limit(text: str) -> int:
    """Bytes in a memory limit written as DuckDB writes sizes: `512MB`, `1GiB`, `2 GB`, `1073741824`."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (write e.g. 512MiB, 1GiB or 2GB)")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 16 * MiB:
        raise ValueError(f"too small a memory limit: {text!r} (at least 16MiB)")
    return size


def format_size(size: int) -> str:
    """A size for people: `1 GiB`, `64 MiB`, `1.5 GiB`."""
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} bytes"


def timed_out(timeout_s: float) -> QueryError:
    """The error of a query stopped at its time limit."""
    return QueryError(f"the query ran longer than {timeout_s:g} s and was stopped (time limit)")


def out_of_memory(memory_limit: int) -> QueryError:
    """The error of a query stopped at its memory limit."""
    return QueryError(
        f"the query needed more than its {format_size(memory_limit)} of memory and was stopped "
        "(memory limit): read fewer rows or columns, or aggregate sooner"
    )


def too_large(max_bytes: int, rows: int) -> QueryError:
    """The error of a result that grew past `max_bytes` after `rows` rows."""
    return QueryError(
        f"the result grew past {format_size(max_bytes)} after {rows:,} rows and was dropped "
        "(result size limit): select fewer rows or columns"
    )
