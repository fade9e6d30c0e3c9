"""The reference's spellings on ``gw run`` (-s, --jobs, -m), durations that must carry a
unit, common options before the command, and help and usage errors that read well."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.exceptions import Exit
from click.testing import CliRunner

from graphile_worker_cli import config, durations
from graphile_worker_cli.cli import common
from graphile_worker_cli.cli.app import app, hoist_common_options
from graphile_worker_cli.errors import BadInputError, ConfigError

pytestmark = pytest.mark.usefixtures("clean_environment")

BARE = "2000: add a unit, e.g. 2000ms or 2000s"


def _overrides_of_run(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``gw run ARGS`` hands to the settings loader (nothing is run)."""
    seen: dict[str, Any] = {}

    def capture(
        connection: str | None, schema: str | None, config_path: Path | None, **overrides: Any
    ) -> config.Settings:
        seen.update(overrides, database_url=connection, schema=schema)
        raise Exit(0)

    monkeypatch.setattr(common, "load_settings", capture)
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 0, result.output
    return {key: value for key, value in seen.items() if value is not None}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-s", "jobs_schema"], {"schema": "jobs_schema"}),
        (["--jobs", "4"], {"concurrency": 4}),
        (["-j", "4"], {"concurrency": 4}),
        (["--concurrency", "4"], {"concurrency": 4}),
        (["-m", "7"], {"max_pg_conn": 7}),
        (["--max-pool-size", "7"], {"max_pg_conn": 7}),
    ],
)
def test_run_takes_the_references_spellings(
    args: list[str], expected: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _overrides_of_run(args, monkeypatch) == expected


def test_a_bad_max_pool_size_is_reported_against_its_flag() -> None:
    with pytest.raises(ConfigError, match=r"^option --max-pool-size: expected an integer >= 1"):
        config.load_settings(None, {"max_pg_conn": 0})


def test_a_bare_number_is_refused_with_both_readings_in_a_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        config.load_settings(None, {"poll_interval": "2000"})
    assert caught.value.message == f"option --poll-interval: {BARE}"
    assert caught.value.exit_code == 2


def test_a_bare_number_is_refused_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_SHUTDOWN_GRACE_PERIOD", "2000")
    with pytest.raises(ConfigError) as caught:
        config.load_settings(None, {})
    assert caught.value.message == f"environment variable GW_SHUTDOWN_GRACE_PERIOD: {BARE}"


@pytest.mark.parametrize("number", ["2000", "2.5"])
def test_a_bare_number_is_refused_in_toml(tmp_path: Path, number: str) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(f"poll_interval = {number}\n")
    with pytest.raises(ConfigError) as caught:
        config.load_settings(path, {})
    assert caught.value.message == (
        f'{path}: key "poll_interval": {number}: add a unit, e.g. "{number}ms" or "{number}s"'
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("2000ms", 2.0), ("2s", 2.0), ("0.5s", 0.5), ("0", 0.0), ("1m", 60.0)]
)
def test_durations_with_a_unit_and_zero_alone_are_accepted(text: str, seconds: float) -> None:
    assert durations.parse_duration(text) == seconds


def test_numbers_given_in_code_are_seconds() -> None:
    assert durations.parse_duration(2) == 2.0
    assert config.check_values({"poll_interval": 0.5}, "code")["poll_interval"] == 0.5


def test_the_delay_of_add_job_needs_a_unit_too() -> None:
    with pytest.raises(BadInputError, match=r"^5: add a unit"):
        durations.parse_duration("5")


def test_settings_handed_to_child_processes_keep_their_unit() -> None:
    settings = config.load_settings(None, {"poll_interval": "250ms"})
    text = config.env_text(settings.poll_interval)
    assert text == "250ms"
    assert durations.parse_duration(text) == 0.25


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-c", "URL", "jobs", "list"], ["jobs", "list", "-c", "URL"]),
        (["--connection=URL", "-s", "x", "add-job", "t"], ["add-job", "t", "--connection=URL",
                                                           "-s", "x"]),
        (["--config", "w.toml", "run", "--once"], ["run", "--once", "--config", "w.toml"]),
        (["-c", "URL", "add-job", "t", "--", "-1"], ["add-job", "t", "-c", "URL", "--", "-1"]),
        (["jobs", "list", "-c", "URL"], ["jobs", "list", "-c", "URL"]),
        (["--version"], ["--version"]),
        (["-c"], ["-c"]),
    ],
)
def test_common_options_before_the_command_are_moved_after_it(
    args: list[str], expected: list[str]
) -> None:
    assert hoist_common_options(args) == expected


def test_common_options_before_the_command_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    args = hoist_common_options(["-c", "postgres://h/db", "-s", "other", "run", "--once"])
    assert _overrides_of_run(args[1:], monkeypatch) == {
        "database_url": "postgres://h/db", "schema": "other"
    }


@pytest.mark.parametrize("args", [["run", "--bogus"], ["--bogus"], ["jobs", "list", "--nope"]])
def test_an_unknown_option_is_one_error_line_and_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no such option:")
    assert "--help" in lines[0]


def test_the_command_list_is_not_cut_at_80_columns() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    commands = result.stdout.split("Commands:")[1]
    assert "..." not in commands and "…" not in commands
    assert "Run a worker until stopped (--once: until no job is runnable)." in result.stdout


@pytest.mark.parametrize("command", [["run"], ["migrate"], ["jobs", "list"], ["add-job"],
                                     ["workers", "list"], ["cron", "check"], ["admin"]])
def test_help_has_no_type_metavars_on_flags_and_no_stray_periods(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout
    assert not re.search(r" \.$", result.stdout, re.M)
    verbose = [line for line in result.stdout.splitlines() if "--verbose" in line]
    for line in verbose:
        assert "<int>" not in line and "[default" not in line
