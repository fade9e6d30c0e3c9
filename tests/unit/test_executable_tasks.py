"""Executable task files found in the tasks directory, and the execute bit that makes one
(tests/integration/test_executable_tasks.py runs them)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from graphile_worker_cli import tasks
from graphile_worker_cli.errors import TaskLoadError
from graphile_worker_cli.tasks import executable
from tests.helpers.task_programs import RECORD, write_program


def test_directory_finds_executables_beside_python_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "tasks"
    write_program(folder, "report.sh", RECORD)
    write_program(folder, "plain", RECORD)
    write_program(folder, "emails/digest.tar.gz", RECORD)
    write_program(folder, "notes.txt", "not executable", mode=0o644)
    write_program(folder, "both.py", "def task(payload):\n    return None\n", mode=0o755)
    write_program(folder, "both.sh", RECORD)
    write_program(folder, "_private.sh", RECORD)
    write_program(folder, "bad name.sh", RECORD)
    caplog.set_level(logging.INFO, logger="gw.tasks")
    registry = tasks.load_tasks_directory(folder)
    assert sorted(registry.identifiers()) == ["both", "emails/digest", "plain", "report"]
    assert registry["report"].handler == folder / "report.sh"
    assert not isinstance(registry["both"].handler, Path)  # the Python file wins
    messages = [record.getMessage() for record in caplog.records]
    assert f"ignoring executable {folder / 'both.sh'}: task both is both.py" in messages


def test_two_executables_for_one_task_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    write_program(folder, "sync.sh", RECORD)
    write_program(folder, "sync.rb", RECORD)
    with pytest.raises(TaskLoadError) as raised:
        tasks.load_tasks_directory(folder)
    assert raised.value.message == (
        f"{folder / 'sync.rb'} and {folder / 'sync.sh'} are both executable files for task "
        "sync; keep one (or remove the execute bit from the others)"
    )


def test_is_executable_file_reads_the_owner_execute_bit(tmp_path: Path) -> None:
    path = write_program(tmp_path, "x", "#!/bin/sh\n", mode=0o644)
    assert not executable.is_executable_file(path)
    path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    assert executable.is_executable_file(path)
    link = tmp_path / "link"
    os.symlink(path, link)
    assert executable.is_executable_file(link)
    assert not executable.is_executable_file(tmp_path)  # a directory
