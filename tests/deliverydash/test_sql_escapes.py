"""The SQL escape suite against `deliverydash sql`: a query given as an argument, and queries at a prompt."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.queries.conftest import copy_log, fixture_rows, publish
from tests.queries.escapes import (
    BOMBS,
    ESCAPES,
    PROCESS_LIMIT,
    SECRET,
    Case,
    Measured,
    Places,
    ids,
    make_places,
    measured,
    tree,
)

COMMAND = [sys.executable, "-m", "deliverydash", "sql"]
#: Rows enough for the wide result to reach the byte cap.
BOMB_OPTIONS = ["--max-rows", "100000"]
ENV = {"DELIVERYDASH_DATA_DIR": ""}


@pytest.fixture(scope="module")
def fixture_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture log, published once for this module (read-only: its fixtures copy it)."""
    data_dir = tmp_path_factory.mktemp("cli-escapes-log")
    publish(fixture_rows(), data_dir)
    return data_dir


@pytest.fixture(scope="module")
def places(fixture_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Places:
    data_dir = copy_log(fixture_log, tmp_path_factory.mktemp("cli-escapes-data"))
    return make_places(tmp_path_factory.mktemp("cli-escapes"), data_dir)


def sql(places: Places, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args, "--data-dir", str(places.data_dir)],
        capture_output=True,
        text=True,
        input=input,
        cwd=places.workdir,  # where DuckDB's default temp directory `.tmp` would be
        env={**os.environ, **ENV},
        timeout=120,
        check=False,
    )


def errors(stderr: str) -> list[str]:
    """The prompt's error messages, in order (a message may run over several lines)."""
    return [block.strip() for block in re.split(r"^error: ", stderr, flags=re.MULTILINE)[1:]]


def prompt_input(cases: list[Case], places: Places) -> str:
    return "".join(places.fill(case.sql) + ";\n" for case in cases) + "SELECT 42 AS answer;\n"


@dataclass(frozen=True)
class OneShot:
    """One escape given as an argument, in places of its own: what the command said, and the
    places' tree before and after."""

    done: subprocess.CompletedProcess[str]
    before: dict[str, tuple[int, int]]
    after: dict[str, tuple[int, int]]


@pytest.fixture(scope="module")
def one_shots(fixture_log: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, OneShot]:
    """Every escape as a one-shot `deliverydash sql`, each in a copy of the places of its own, so the
    processes run side by side (one per core): each is a separate process that starts in about a
    second, and a case's changes stay in its own places."""
    root = tmp_path_factory.mktemp("cli-one-shots")
    data_dir = copy_log(fixture_log, root / "data")

    def run_one(case: Case) -> OneShot:
        own = root / case.id
        places = make_places(own, shutil.copytree(data_dir, own / "data"))
        before = tree(places.data_dir, places.outside, places.workdir)
        done = sql(places, places.fill(case.sql))
        return OneShot(done, before, tree(places.data_dir, places.outside, places.workdir))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(ids(ESCAPES), pool.map(run_one, ESCAPES), strict=True))


@pytest.mark.parametrize("case", ESCAPES, ids=ids(ESCAPES))
def test_one_shot_refuses_an_escape_and_changes_nothing(one_shots: dict[str, OneShot], case: Case) -> None:
    done = one_shots[case.id].done
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("deliverydash sql: ")
    assert re.search(case.refusal, done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert one_shots[case.id].after == one_shots[case.id].before


def test_the_prompt_refuses_every_escape_changes_nothing_and_goes_on(places: Places) -> None:
    before = tree(places.data_dir, places.outside, places.workdir)
    done = sql(places, input=prompt_input(ESCAPES, places))
    assert done.returncode == 0, done.stderr
    refused = errors(done.stderr)
    assert len(refused) == len(ESCAPES), done.stderr
    for case, message in zip(ESCAPES, refused, strict=True):
        assert re.search(case.refusal, message), (case.id, message)
    assert "42" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert tree(places.data_dir, places.outside, places.workdir) == before


@pytest.mark.parametrize("bomb", BOMBS, ids=ids(BOMBS))
def test_one_shot_stops_a_bomb_within_its_limit(places: Places, bomb: Case) -> None:
    done = measured(
        [
            *COMMAND,
            bomb.sql,
            *BOMB_OPTIONS,
            f"--timeout={bomb.timeout_s}",
            "--data-dir",
            str(places.data_dir),
        ],
        cwd=places.workdir,
        env=ENV,
    )
    assert done.returncode == 2, done.stdout
    assert bomb.refusal in done.stderr, done.stderr
    assert done.peak_bytes < PROCESS_LIMIT, f"{done.peak_bytes / 2**30:.2f} GiB"


@pytest.fixture(scope="module")
def prompt_bombs(places: Places) -> list[tuple[list[Case], Measured]]:
    """The bombs at a prompt, one prompt per time limit, each then given a query that should still run."""
    sessions = []
    for timeout_s in sorted({bomb.timeout_s for bomb in BOMBS}):
        bombs = [bomb for bomb in BOMBS if bomb.timeout_s == timeout_s]
        done = measured(
            [*COMMAND, *BOMB_OPTIONS, f"--timeout={timeout_s}", "--data-dir", str(places.data_dir)],
            cwd=places.workdir,
            env=ENV,
            input=prompt_input(bombs, places),
        )
        sessions.append((bombs, done))
    return sessions


def test_the_prompt_stops_every_bomb_and_goes_on(prompt_bombs: list[tuple[list[Case], Measured]]) -> None:
    for bombs, done in prompt_bombs:
        assert done.returncode == 0, done.stderr
        refused = errors(done.stderr)
        assert len(refused) == len(bombs), done.stderr
        for bomb, message in zip(bombs, refused, strict=True):
            assert bomb.refusal in message, (bomb.id, message)
        assert "42" in done.stdout
        assert done.peak_bytes < PROCESS_LIMIT, f"{done.peak_bytes / 2**30:.2f} GiB"


def test_rows_past_max_rows_are_neither_fetched_nor_printed(places: Places) -> None:
    done = sql(places, "SELECT i FROM range(1000000000000) t(i)", "--max-rows", "3")
    assert done.returncode == 0, done.stderr
    assert "shape: (3, 1)" in done.stdout
    assert "more than 3 rows: the first 3 shown" in done.stderr


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ("--memory-limit=plenty", "--memory-limit: not a size"),
        ("--memory-limit=1MB", "too small"),
        ("--timeout=0", "must be more than 0"),
        ("--max-rows=0", "must be at least 1"),
    ],
)
def test_bad_limits_are_named(places: Places, option: str, problem: str) -> None:
    done = sql(places, "SELECT 1", option)
    assert done.returncode == 2
    assert problem in done.stderr
    assert "Traceback" not in done.stderr


def test_the_limits_are_in_the_help() -> None:
    done = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, check=True)
    for option in ("--timeout", "--max-rows", "--memory-limit"):
        assert option in done.stdout
