"""The `deliverydash` command as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.rollup import ROLLUPS
from tests.delivery.engine_process import free_port


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DELIVERYDASH_DATA_DIR": ""}
    return subprocess.run(
        [sys.executable, "-m", "deliverydash", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("cli")
    done = run("simulate", "--attempts", "20000", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    assert "Wrote 20,000 attempts" in done.stderr
    return data_dir


def test_help_names_every_subcommand() -> None:
    done = run("--help")
    assert done.returncode == 0
    for command in ("simulate", "report", "sql"):
        assert command in done.stdout


def test_report_prints_the_seed_table(day: Path) -> None:
    done = run("report", "--data-dir", str(day))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2026-11-27 UTC, scope all" in out
    for label in ("delivered on the first attempt", "answered 401 or 403", "answered 429", "92.60%"):
        assert label in out
    requests_line = next(line for line in out.splitlines() if line.startswith("requests "))
    assert requests_line.split()[1].replace(",", "").isdigit()


def test_report_over_several_days_adds_a_daily_trend(tmp_path: Path) -> None:
    for date in ("2026-11-25", "2026-11-27"):  # two simulated days with a gap between
        done = run("simulate", "--attempts", "1000", "--date", date, "--data-dir", str(tmp_path))
        assert done.returncode == 0, done.stderr
    one = run("report", "--data-dir", str(tmp_path), "--date", "2026-11-27").stdout
    week = run("report", "--data-dir", str(tmp_path), "--days", "7")
    assert week.returncode == 0, week.stderr
    assert "Days of HTTP responses: 2026-11-21 to 2026-11-27 UTC (7 days), scope all" in week.stdout
    assert "DAILY TREND" not in one
    trend = week.stdout.split("DAILY TREND (events by day received)")[1].split("\n\n")[0]
    days = [line.split()[0] for line in trend.strip().splitlines()[1:]]
    # Events received on the simulated days (a day's retries spill into the next, with no new events).
    assert days == ["2026-11-25", "2026-11-27"]
    assert _figure(week.stdout, "events received") > _figure(one, "events received")
    too_long = run("report", "--data-dir", str(tmp_path), "--days", "32")
    assert too_long.returncode == 2
    assert "at most 31 days" in too_long.stderr


def test_report_for_one_workspace(day: Path) -> None:
    workspace = run("sql", "SELECT min(workspace_id) AS w FROM attempts", "--data-dir", str(day))
    name = next(word for word in workspace.stdout.split() if word.startswith("ws_"))
    done = run("report", "--workspace", name, "--data-dir", str(day))
    assert done.returncode == 0, done.stderr
    assert f"scope workspace {name}" in done.stdout


def _figure(out: str, label: str) -> int:
    line = next(line for line in out.splitlines() if line.startswith(label))
    return int(line[len(label) :].split()[0].replace(",", ""))


def test_report_breaks_failed_dropped_and_skipped_events_down(day: Path) -> None:
    out = run("report", "--data-dir", str(day)).stdout
    for outcome, label in (
        ("FAILED", "never arrive: terminal errors"),
        ("DROPPED", "dropped: retries ran out"),
    ):
        section = out.split(outcome + ",", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        by_class = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in section}
        assert sum(by_class.values()) == _figure(out, label), (outcome, by_class)
    assert "auth" in out.split("FAILED,", 1)[1].split("\n\n", 1)[0]


def test_sql_one_shot_matches_the_row_count(day: Path) -> None:
    done = run("sql", "SELECT count(*) AS n FROM attempts", "--data-dir", str(day))
    assert done.returncode == 0, done.stderr
    assert "20000" in done.stdout


def test_sql_prompt_runs_queries_until_eof(day: Path) -> None:
    done = run("sql", "--data-dir", str(day), input="SELECT 40 + 2\n  AS answer;\nSELECT nope;\n")
    assert done.returncode == 0
    assert "42" in done.stdout
    assert "error:" in done.stderr  # the bad query is reported, the prompt goes on


def test_sql_refuses_writes_with_a_clear_message(day: Path) -> None:
    done = run("sql", "DELETE FROM attempts", "--data-dir", str(day))
    assert done.returncode == 2
    assert "read-only" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(day: Path) -> None:
    """`deliverydash sql ... | head -1`: exit status 141 as Unix tools give, no traceback."""
    command = [sys.executable, "-m", "deliverydash", "sql", "--data-dir", str(day), "--max-rows", "100000"]
    with subprocess.Popen(
        [*command, "SELECT * FROM range(100000)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith(b"shape:")
        process.stdout.close()
        errors = process.stderr.read().decode()
        assert process.wait(timeout=120) == 141, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors


def test_simulate_refuses_to_append_the_same_day(day: Path) -> None:
    done = run("simulate", "--attempts", "100", "--data-dir", str(day))
    assert done.returncode == 2
    assert "already holds a simulated 2026-11-27" in done.stderr
    assert "--replace" in done.stderr


def test_simulate_replace_overwrites(tmp_path: Path) -> None:
    for _ in range(2):
        done = run("simulate", "--attempts", "500", "--data-dir", str(tmp_path), "--replace")
        assert done.returncode == 0, done.stderr
    count = run("sql", "SELECT count(*) AS n FROM attempts", "--data-dir", str(tmp_path))
    assert "500" in count.stdout


def test_simulating_an_earlier_day_leaves_every_day_read_from_its_day_files(tmp_path: Path) -> None:
    """An earlier day's retries spill into the next day, whose change the day after's digest names
    (ingest.day_rollups): `simulate` builds that one again too."""
    from ingest.day_rollups import covered_days, day_digests, day_files
    from ingest.logstore import LocalStore

    for date in ("2026-11-28", "2026-11-27"):
        done = run("simulate", "--attempts", "2000", "--date", date, "--data-dir", str(tmp_path))
        assert done.returncode == 0, done.stderr
    store = LocalStore(tmp_path)
    digests = day_digests(store)
    assert sorted(digests) == ["2026-11-27", "2026-11-28", "2026-11-29"]
    assert covered_days(digests, day_files(store)) == set(digests)


def test_report_on_an_empty_data_dir_says_what_to_do(tmp_path: Path) -> None:
    done = run("report", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "no attempt records" in done.stderr
    assert "deliverydash simulate" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("simulate", "--attempts", "lots"), "not a whole number"),
        (("simulate", "--attempts", "0"), "must be at least 1"),
        (("simulate", "--attempts", "10", "--date", "2026-13-01"), "not a date"),
        (("report", "--workspace", "a", "--integration", "b"), "not allowed with"),
    ],
)
def test_bad_arguments_get_a_message_not_a_traceback(args: tuple[str, ...], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_the_commands_in_the_modules_order() -> None:
    from deliverydash.cli import COMMANDS

    listed = run("--help").stdout
    positions = [
        listed.index(f"\n    {command.NAME} ")
        for command in COMMANDS
        if command.NAME not in ("notifications", "destinations")
    ]
    assert positions == sorted(positions)
    assert "\n    notifications\n" in listed  # argparse puts a long name on a line of its own
    assert "\n    destinations\n" in listed


def engine_config(folder: Path, data_dir: str) -> Path:
    """An engine config whose [engine] data_dir points at `data_dir` (relative to the file's folder)."""
    config = folder / "deliverydash.toml"
    config.write_text(
        f'[engine]\ndata_dir = "{data_dir}"\nadmin_token = "a-token-for-the-tests-0123456789-0123456789"\n'
    )
    return config


@pytest.mark.parametrize("command", [("report",), ("sql", "SELECT count(*) AS n FROM attempts")])
def test_readers_take_the_data_dir_from_the_config(
    day: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = engine_config(tmp_path, str(day))
    from_config = run(*command, "--config", str(config))
    assert from_config.returncode == 0, from_config.stderr
    assert from_config.stdout == run(*command, "--data-dir", str(day)).stdout


def test_the_config_s_data_dir_is_relative_to_the_file(day: Path) -> None:
    config = engine_config(day.parent, day.name)
    done = run("sql", "SELECT count(*) AS n FROM attempts", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "20000" in done.stdout


def test_data_dir_wins_over_the_config(day: Path, tmp_path: Path) -> None:
    config = engine_config(tmp_path, "elsewhere")
    done = run("report", "--config", str(config), "--data-dir", str(day))
    assert done.returncode == 0, done.stderr
    empty = run("report", "--config", str(config))
    assert empty.returncode == 2
    assert f"no attempt records in {(tmp_path / 'elsewhere').resolve()}/attempts" in empty.stderr


@pytest.mark.parametrize("command", ["report", "sql", "notifications", "repair"])
def test_a_bad_config_is_named_not_a_traceback(tmp_path: Path, command: str) -> None:
    config = tmp_path / "deliverydash.toml"
    config.write_text("[engine]\nmax_atempts = 3\n")
    done = run(command, "--config", str(config))
    assert done.returncode == 2
    assert f"deliverydash {command}: {config}: engine.max_atempts: unknown key" in done.stderr
    assert "did you mean 'max_attempts'" in done.stderr
    assert "Traceback" not in done.stderr


def test_notifications_reads_the_config_s_data_dir(tmp_path: Path) -> None:
    config = engine_config(tmp_path, "state")
    done = run("notifications", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert f"no open notifications under {tmp_path / 'state'}" in done.stdout


def test_repair_mends_what_a_stopped_writer_left_and_report_warns_until_then(tmp_path: Path) -> None:
    done = run("simulate", "--attempts", "2000", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "nothing to repair" in run("repair", "--data-dir", str(tmp_path)).stdout
    # A log from before the day rollups, whose whole days are read from the hourly ones (a day
    # rollup would still hold the hour whose hourly rollup is lost below).
    shutil.rmtree(tmp_path / "rollups" / "by_day")
    rollup = sorted((tmp_path / "rollups" / "outcomes").rglob("*.parquet"))[0]  # the day's first hour
    attempt = tmp_path / "attempts" / rollup.relative_to(tmp_path / "rollups" / "outcomes")
    for name in ROLLUPS:  # the writer stopped after the attempt file, before any of its rollups
        (tmp_path / "rollups" / name / attempt.relative_to(tmp_path / "attempts")).unlink()
    os.utime(attempt, (1_700_000_000, 1_700_000_000))  # older than the writers' grace
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    report = run("report", "--data-dir", str(tmp_path))
    assert report.returncode == 0, report.stderr
    assert "1 attempt files are out of step with their rollups" in report.stderr
    assert "deliverydash repair" in report.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # the read wrote nothing

    repaired = run("repair", "--data-dir", str(tmp_path))
    assert repaired.returncode == 0, repaired.stderr
    assert f"{len(ROLLUPS)} built, 0 orphaned ones removed" in repaired.stdout
    assert rollup.is_file()
    again = run("report", "--data-dir", str(tmp_path))
    assert "out of step" not in again.stderr
    assert requests(again.stdout) > requests(report.stdout)  # the hour the missing rollup held


def requests(report: str) -> int:
    """The day report's count of requests started that day."""
    line = next(line for line in report.splitlines() if line.startswith("requests "))
    return int(line.split()[1].replace(",", ""))


def test_serve_refuses_several_processes_on_the_embedded_queue(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\ndata_dir = "{tmp_path / "data"}"\nadmin_token = "tok-0123456789-0123456789-0123456789"\n'
    )
    done = run("serve", "--config", str(config), "--processes", "2", "--port", "1")
    assert done.returncode == 2
    assert "--processes 2 needs a queue several processes can share" in done.stderr
    assert '[queue] backend = "postgres"' in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "queue.sqlite3").exists()  # refused before anything started


def test_serve_names_a_queue_it_cannot_use_without_a_traceback_or_the_password(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\ndata_dir = "{tmp_path / "data"}"\nadmin_token = "tok-0123456789-0123456789-0123456789"\n'
        f'[queue]\nbackend = "postgres"\n'
        f'dsn = "postgresql://dd:pw_SECRET@127.0.0.1:{port}/db?connect_timeout=2"\n'
    )
    for processes in ("1", "2"):
        done = run("serve", "--config", str(config), "--port", str(free_port()), "--processes", processes)
        assert done.returncode == 2, done.stderr
        assert "the engine did not start: cannot connect to PostgreSQL (host 127.0.0.1" in done.stderr
        assert "Traceback" not in done.stderr and "SECRET" not in done.stderr


def test_serve_refuses_a_data_directory_another_engine_holds(tmp_path: Path) -> None:
    from delivery.queue.sqlite import SqliteQueue

    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\ndata_dir = "{tmp_path / "data"}"\nadmin_token = "tok-0123456789-0123456789-0123456789"\n'
    )
    held = SqliteQueue(tmp_path / "data")
    try:
        done = run("serve", "--config", str(config), "--port", str(free_port()))
    finally:
        held.close()
    assert done.returncode == 2, done.stderr
    assert "the engine did not start" in done.stderr and 'backend = "postgres"' in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("",), "a message id is needed"),
        (("no-such-message",), "'no-such-message' is in no attempt record"),
        (("x", "--days", "0"), "must be at least 1"),
        (("x", "--date", "2026-13-01"), "not a date"),
    ],
)
def test_trace_names_bad_input_not_a_traceback(day: Path, args: tuple[str, ...], message: str) -> None:
    done = run("trace", *args, "--data-dir", str(day))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_trace_on_an_empty_data_dir_says_so(tmp_path: Path) -> None:
    done = run("trace", "some-message", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "no attempt records" in done.stderr
    assert "Traceback" not in done.stderr
