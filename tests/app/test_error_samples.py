"""The error samples of the customer and partner pages: one table of the most frequent error
answers, with the figures of `error_samples.sql`, and one template's example answer at a time."""

from __future__ import annotations

import polars as pl
from streamlit.testing.v1 import AppTest

from app.access import ViewerKind
from queries import Scope, api, connect
from tests.app.conftest import END, START, OpenApp, SimulatedDay, token


def _opened(
    open_app: OpenApp, simulated_day: SimulatedDay, kind: ViewerKind, scope: Scope, limit: int
) -> tuple[pl.DataFrame, AppTest]:
    """The named query's `limit` templates for `scope`, and the page a link of `kind` opens."""
    with connect(simulated_day.data_dir) as log:
        expected = api.error_samples(log, scope, START, END, limit=limit)
    assert expected.height >= 2, f"the simulated day should give {scope.value} several error templates"
    at = open_app(token(kind, scope.value))
    assert not at.exception
    return expected, at


def _table(at: AppTest) -> pl.DataFrame:
    (table,) = [frame for frame in at.dataframe if "answer" in frame.value.columns]
    return pl.from_pandas(table.value)


def _picker(at: AppTest, label: str = "Example answer of"):
    (picker,) = [box for box in at.selectbox if box.label == label]
    return picker


def _examples(at: AppTest) -> list[str]:
    return [text.value for text in at.text]


def test_the_customer_sees_every_template_in_one_table_and_one_example_at_a_time(
    open_app: OpenApp, simulated_day: SimulatedDay
) -> None:
    scope = Scope.workspace(simulated_day.workspaces[0])
    expected, at = _opened(open_app, simulated_day, ViewerKind.WORKSPACE, scope, 20)
    first, second = expected.row(0, named=True), expected.row(1, named=True)
    assert first["example"] != second["example"]

    table = _table(at)
    assert table.get_column("requests").to_list() == expected.get_column("requests").to_list()
    assert table.get_column("error class").to_list() == expected.get_column("error_class").to_list()
    assert table.get_column("destination").to_list() == expected.get_column("destination_id").to_list()
    assert table.get_column("template").to_list() == [t[:200] for t in expected.get_column("template")]
    assert table.get_column("answer")[0] == f"HTTP {first['status_code']}"

    picker = _picker(at)
    assert picker.options[0].startswith("1. ") and first["destination_id"] in picker.options[0]
    assert first["example"] in _examples(at) and second["example"] not in _examples(at)
    assert any(markdown.value.startswith("**What to do:**") for markdown in at.markdown)

    at = picker.select_index(1).run()
    assert not at.exception
    assert second["example"] in _examples(at) and first["example"] not in _examples(at)
    assert any(f"template: `{second['template'][:200]}`" in caption.value for caption in at.caption)


def test_the_partner_sees_counts_answers_and_redacted_examples_only(
    open_app: OpenApp, simulated_day: SimulatedDay
) -> None:
    scope = Scope.integration(simulated_day.integrations[0])
    expected, at = _opened(open_app, simulated_day, ViewerKind.PARTNER, scope, 15)

    table = _table(at)
    assert table.columns == ["#", "requests", "answer", "error class"]
    assert table.get_column("requests").to_list() == expected.get_column("requests").to_list()
    picker = _picker(at)
    assert expected.item(0, "example") in _examples(at)
    at = picker.select_index(1).run()
    assert not at.exception
    assert expected.item(1, "example") in _examples(at)

    # Nothing of the section names a customer: not the table, the picker's options or the example.
    shown = " ".join(
        [*map(str, table.to_dicts()), *_picker(at).options, *_examples(at), *(m.value for m in at.markdown)]
    )
    ids = [*simulated_day.workspaces, *(d for ids in simulated_day.destinations.values() for d in ids)]
    assert [name for name in ids if name in shown] == []
    assert not any(markdown.value.startswith("**What to do:**") for markdown in at.markdown)
