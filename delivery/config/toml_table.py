"""Reading a parsed TOML document so that every problem in it is reported at once.

A reader does not stop at the first problem: each check appends a line
naming the key at fault to one shared `problems` list, returns a
placeholder, and reading carries on. The caller raises once, with the
whole list::

    engine.max_atempts: unknown key (did you mean 'max_attempts'?)
    engine.lease_s: must be a number of seconds, got '60' (a string)

Keys are named as a user would find them in the file: `engine.lease_s`,
`destinations[1].url`, `control_port` at the top level.

Values are shown the way TOML spells them (`describe`), except where the key
may hold a secret: then only the value's TOML kind is named (`kind`), so a
message never quotes a token that was put under the wrong key or type.

Nothing here knows the engine's keys; `delivery.config.parse` and the
partner simulator's config both read their files with it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from typing import Any, TypeVar

_T = TypeVar("_T")

#: Longest duration `Table.seconds` accepts: longer is a mistake in units, not a wish.
_MAX_SECONDS = 366 * 86_400
#: The default of a key that must be present: `get` records it as missing.
_REQUIRED: Any = object()


class Table:
    """One TOML table being read: typed getters that record problems under the table's name.

    A getter that finds a problem records it and returns a placeholder, so
    reading carries on and every problem in the file is reported at once.
    """

    def __init__(
        self, raw: Mapping[str, Any], where: str, known: Iterable[str] | None, problems: list[str]
    ) -> None:
        """Read `raw`, found at `where` ("" for the top level), noting problems in `problems`.

        Keys not in `known` are recorded as unknown right away; pass None
        when which keys are known depends on what the table holds, and call
        `reject_unknown` once that is read.
        """
        self.raw = raw
        """The table as `tomllib` parsed it."""
        self.where = where
        """Where the table is in the file (`engine`, `destinations[1]`), prefixed to its problems."""
        self.problems = problems
        """The list every problem is appended to, shared with the rest of the document."""
        if known is not None:
            reject_unknown(raw, tuple(known), where, problems)

    def problem(self, key: str, message: str) -> None:
        """Record `message` as a problem with `key` of this table."""
        self.problems.append(f"{self.where}.{key}: {message}" if self.where else f"{key}: {message}")

    def get(self, key: str, default: Any) -> Any:
        """The raw value of `key`, or `default` when it is absent (a problem if that means required)."""
        if key in self.raw:
            return self.raw[key]
        if default is _REQUIRED:
            self.problem(key, "required key is missing")
        return default

    def text(
        self,
        key: str,
        default: Any = _REQUIRED,
        *,
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
        secret: bool = False,
        allow_empty: bool = False,
    ) -> str:
        """A string; "" after a problem.

        `rule` is the problem stated (before ", got ...") when the value does
        not fully match `pattern`. A `secret` value of the wrong type is
        named by its kind only, never quoted.
        """
        value = self.get(key, default)
        if value is _REQUIRED:
            return ""
        if not isinstance(value, str):
            shown = kind(value) if secret else describe(value)
            self.problem(key, f"must be a string, got {shown}")
            return ""
        if not value and not allow_empty:
            self.problem(key, "must not be empty")
        elif pattern is not None and not pattern.fullmatch(value):
            self.problem(key, f"{rule}, got {describe(value)}")
        return value

    def integer(self, key: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
        """An integer from `minimum` up to `maximum` (booleans are not integers here)."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be an integer, got {describe(value)}")
            return default
        if value < minimum:
            self.problem(key, f"must be at least {minimum}, got {value}")
        elif maximum is not None and value > maximum:
            self.problem(key, f"must be at most {maximum}, got {value}")
        return value

    def seconds(self, key: str, default: float, *, allow_zero: bool = False) -> float:
        """A duration: a positive number of seconds (or zero if allowed), integer or float, up to 366 days."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"must be a number of seconds, got {describe(value)}")
            return default
        if not math.isfinite(value):
            self.problem(key, f"must be a finite number of seconds, got {value}")
            return default
        if value < 0 or (value == 0 and not allow_zero):
            least = "zero or more" if allow_zero else "a positive number of"
            self.problem(key, f"must be {least} seconds, got {value:g}")
        elif value > _MAX_SECONDS:
            self.problem(key, f"must be at most {_MAX_SECONDS} seconds (366 days), got {value:g}")
        return float(value)

    def number(self, key: str, default: float, *, maximum: float) -> float:
        """A positive finite number up to `maximum` (a rate)."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"must be a number, got {describe(value)}")
            return default
        if not 0 < value <= maximum:  # NaN fails this too
            self.problem(key, f"must be above 0 and at most {maximum:g}, got {value}")
            return default
        return float(value)

    def fraction(self, key: str, default: float) -> float:
        """A number from 0 to 1."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"must be a number from 0 to 1, got {describe(value)}")
            return default
        if not 0 <= value <= 1:  # NaN fails this too
            self.problem(key, f"must be a number from 0 to 1, got {value}")
            return default
        return float(value)

    def choice(self, key: str, default: _T, choices: tuple[str, ...]) -> str | _T:
        """One of `choices`; `default` when the key is absent or after a problem."""
        if key not in self.raw:
            return default
        value = self.raw[key]
        if value not in choices:
            self.problem(key, f"must be one of {', '.join(map(repr, choices))}, got {describe(value)}")
            return default
        return str(value)

    def boolean(self, key: str, default: bool) -> bool:
        """true or false."""
        value = self.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, got {describe(value)}")
            return default
        return value


def reject_unknown(raw: Mapping[str, Any], known: tuple[str, ...], where: str, problems: list[str]) -> None:
    """Record each key of `raw` that is not in `known`, with the nearest known key as a hint."""
    prefix = f"{where}." if where else ""
    for key in raw:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown key{suggest(key, known)}")


def suggest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a close choice, else the choices if they are few, else "".

    A list of more than 8 would drown the message; the docs list every key.
    """
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if 0 < len(choices) <= 8:
        return f" (known: {', '.join(repr(choice) for choice in choices)})"
    return ""


def as_table(value: Any, where: str, problems: list[str]) -> Mapping[str, Any]:
    """`value` if it is a table (`[where]`), else an empty one and a problem."""
    if isinstance(value, Mapping):
        return value
    problems.append(f"{where}: must be a table ([{where}]), got {kind(value)}")
    return {}


def array_of_tables(
    mapping: Mapping[str, Any], key: str, problems: list[str]
) -> list[tuple[str, Mapping[str, Any]]]:
    """The tables of `[[key]]` with where each is (`key[0]`, ...); none when absent, problems for the rest."""
    value = mapping.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{key}: must be an array of tables ([[{key}]]), got {kind(value)}")
        return []
    tables = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        if isinstance(item, Mapping):
            tables.append((where, item))
        else:
            problems.append(f"{where}: must be a table, got {kind(item)}")
    return tables


def kind(value: Any) -> str:
    """The TOML kind of a value, with its article, for messages that must not quote it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return f"a {type(value).__name__}"


def describe(value: Any) -> str:
    """A value as TOML would spell it, shortened, with its kind where the spelling is ambiguous."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown) + (" (a string)" if _looks_numeric(value) else "")
    return kind(value)


def _looks_numeric(text: str) -> bool:
    return text.strip().lower() in ("true", "false") or bool(re.fullmatch(r"\s*[-+]?[0-9_.]+\s*", text))
