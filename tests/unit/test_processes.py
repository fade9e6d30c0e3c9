"""``gw run --processes N``'s supervisor without processes: the exit code it reports."""

from __future__ import annotations

import sys

import pytest

from graphile_worker_cli.errors import ConfigError
from graphile_worker_cli.worker import processes


def test_worst_exit_code() -> None:
    assert processes._worst([0, 0]) == 0
    assert processes._worst([0, 1]) == 1
    assert processes._worst([1, 57, 2]) == 57
    assert processes._worst([0, -9]) == 137


def test_child_command_defaults_to_gw_and_takes_a_json_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(processes.CHILD_COMMAND_ENV, raising=False)
    assert processes.child_command(["run"]) == [
        sys.executable, "-m", "graphile_worker_cli", "run"
    ]
    monkeypatch.setenv(processes.CHILD_COMMAND_ENV, '["py", "manage.py", "gw"]')
    assert processes.child_command(["run", "--once"]) == [
        "py", "manage.py", "gw", "run", "--once"
    ]
    for bad in ("not json", "[]", '"manage.py"', "[1]"):
        monkeypatch.setenv(processes.CHILD_COMMAND_ENV, bad)
        with pytest.raises(ConfigError, match="must be a JSON array of strings"):
            processes.child_command(["run"])
