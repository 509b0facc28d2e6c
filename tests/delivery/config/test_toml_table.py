"""The generic TOML reader: problems named by key, values shown as TOML spells them or by kind."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from delivery.config.toml_table import (
    Table,
    array_of_tables,
    as_table,
    describe,
    kind,
    reject_unknown,
    suggest,
)

KEYS = ("name", "port", "timeout_s", "enabled", "mode", "token")


def read(text: str, known: tuple[str, ...] | None = KEYS) -> tuple[Table, list[str]]:
    problems: list[str] = []
    return Table(tomllib.loads(text), "server", known, problems), problems


# -- unknown keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("timout_s", "server.timout_s: unknown key (did you mean 'timeout_s'?)"),
        ("enable", "server.enable: unknown key (did you mean 'enabled'?)"),
        (
            "colour",
            "server.colour: unknown key (known: 'name', 'port', 'timeout_s', 'enabled', 'mode', 'token')",
        ),
    ],
)
def test_an_unknown_key_is_named_with_the_nearest_known_one(key: str, message: str) -> None:
    _, problems = read(f'{key} = 1\nname = "a"\n')
    assert problems == [message]


def test_a_long_list_of_known_keys_is_not_spelled_out() -> None:
    known = tuple(f"key_{n}" for n in range(9))
    problems: list[str] = []
    reject_unknown({"colour": 1, "key_10": 2}, known, "big", problems)
    assert problems == ["big.colour: unknown key", "big.key_10: unknown key (did you mean 'key_1'?)"]


def test_top_level_keys_have_no_prefix() -> None:
    problems: list[str] = []
    top = Table({"engin": {}}, "", ("engine", "sources"), problems)
    top.problem("sources", "must be an array of tables")
    assert problems == [
        "engin: unknown key (did you mean 'engine'?)",
        "sources: must be an array of tables",
    ]


def test_known_none_leaves_the_keys_to_the_caller() -> None:
    table, problems = read("anything = 1\n", known=None)
    assert problems == []
    reject_unknown(table.raw, ("name",), table.where, problems)
    assert problems == ["server.anything: unknown key (known: 'name')"]


def test_suggest() -> None:
    assert suggest("ios", ["web", "iso"]) == " (did you mean 'iso'?)"
    assert suggest("android", ["web", "ios"]) == " (known: 'web', 'ios')"
    assert suggest("android", []) == ""


# -- values: shown as TOML spells them, or by kind where they may be secret ----------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("true", "a boolean"),
        ("12345", "an integer"),
        ("1.5", "a float"),
        ("inf", "a float"),
        ('"x"', "a string"),
        ("{ a = 1 }", "a table"),
        ("[1, 2]", "an array"),
        ("2026-11-27T10:00:00Z", "a date/time"),
        ("2026-11-27", "a date/time"),
        ("10:00:00", "a date/time"),
    ],
)
def test_kind_is_the_toml_kind(toml: str, expected: str) -> None:
    assert kind(tomllib.loads(f"v = {toml}")["v"]) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "true (a boolean)"),
        (10, "10"),
        (2.5, "2.5"),
        ("ten", "'ten'"),
        ("10", "'10' (a string)"),
        ("false", "'false' (a string)"),
        ("x" * 61, repr("x" * 57 + "...")),
        ({"a": 1}, "a table"),
        ([1], "an array"),
    ],
)
def test_describe_spells_values_and_names_the_kind_where_ambiguous(value: Any, shown: str) -> None:
    assert describe(value) == shown


@pytest.mark.parametrize("value", ["12345", "true", "[12345]", "{ t = 12345 }", "2026-11-27"])
def test_a_secret_of_the_wrong_type_is_named_by_kind_only(value: str) -> None:
    table, problems = read(f"token = {value}\n")
    assert table.text("token", secret=True) == ""
    (problem,) = problems
    assert re.fullmatch(r"server\.token: must be a string, got an? [a-z/]+", problem), problem
    assert "12345" not in problem and "true" not in problem and "2026" not in problem


def test_a_value_that_is_not_secret_is_quoted() -> None:
    table, problems = read("name = 12345\nmode = 7\n")
    assert table.text("name") == ""
    assert table.choice("mode", "fast", ("fast", "safe")) == "fast"
    assert problems == [
        "server.name: must be a string, got 12345",
        "server.mode: must be one of 'fast', 'safe', got 7",
    ]


# -- every problem at once -----------------------------------------------------------------------


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    document = tomllib.loads(
        """\
colour = "blue"

[server]
name = ""
port = "8080"
timeout_s = -1
enabled = "yes"
mode = "slow"
tokn = "hunter2"

[[clients]]
id = "a"

[[clients]]
id = 1
"""
    )
    problems: list[str] = []
    reject_unknown(document, ("server", "clients", "limits"), "", problems)
    server = Table(as_table(document["server"], "server", problems), "server", KEYS, problems)
    values = (
        server.text("name"),
        server.integer("port", 80, maximum=65535),
        server.seconds("timeout_s", 10),
        server.boolean("enabled", True),
        server.choice("mode", "fast", ("fast", "safe")),
        server.text("token", secret=True),
    )
    for where, raw in array_of_tables(document, "clients", problems):
        Table(raw, where, ("id",), problems).text("id")
    Table(as_table(document.get("limits", []), "limits", problems), "limits", (), problems)
    assert problems == [
        "colour: unknown key (known: 'server', 'clients', 'limits')",
        "server.tokn: unknown key (did you mean 'token'?)",
        "server.name: must not be empty",
        "server.port: must be an integer, got '8080' (a string)",
        "server.timeout_s: must be a positive number of seconds, got -1",
        "server.enabled: must be true or false, got 'yes'",
        "server.mode: must be one of 'fast', 'safe', got 'slow'",
        "server.token: required key is missing",
        "clients[1].id: must be a string, got 1",
        "limits: must be a table ([limits]), got an array",
    ]
    # Each getter went on with a placeholder, so reading reached the end of the file.
    assert values == ("", 80, -1.0, True, "fast", "")
    assert "hunter2" not in "\n".join(problems)


def test_array_of_tables_keeps_the_tables_and_notes_the_rest() -> None:
    problems: list[str] = []
    tables = array_of_tables({"clients": [{"id": "a"}, 3, {"id": "b"}]}, "clients", problems)
    assert tables == [("clients[0]", {"id": "a"}), ("clients[2]", {"id": "b"})]
    assert problems == ["clients[1]: must be a table, got an integer"]
    assert array_of_tables({}, "clients", problems) == []
    assert array_of_tables({"clients": {"id": "a"}}, "clients", problems) == []
    assert problems[-1] == "clients: must be an array of tables ([[clients]]), got a table"


def test_getters_check_ranges() -> None:
    table, problems = read(
        'port = 70000\ntimeout_s = 400000000\nname = "a b"\n',
        known=None,
    )
    assert table.integer("port", 80, maximum=65535) == 70000
    assert table.seconds("timeout_s", 10) == 400_000_000
    assert table.text("name", pattern=re.compile(r"\w+"), rule="must be one word") == "a b"
    assert table.number("rate", 1.0, maximum=10) == 1.0  # absent: the default, no problem
    assert table.fraction("share", 0.5) == 0.5
    assert problems == [
        "server.port: must be at most 65535, got 70000",
        "server.timeout_s: must be at most 31622400 seconds (366 days), got 4e+08",
        "server.name: must be one word, got 'a b'",
    ]


def test_an_absent_choice_is_its_default_even_when_that_is_not_a_choice() -> None:
    table, problems = read("", known=None)
    assert table.choice("tls", None, ("valid", "expired")) is None
    assert problems == []
