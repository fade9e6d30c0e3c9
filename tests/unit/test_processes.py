"""``gw run --processes N``'s supervisor without processes: the exit code it reports."""

from __future__ import annotations

from graphile_worker_cli.worker import processes


def test_worst_exit_code() -> None:
    assert processes._worst([0, 0]) == 0
    assert processes._worst([0, 1]) == 1
    assert processes._worst([1, 57, 2]) == 57
    assert processes._worst([0, -9]) == 137
