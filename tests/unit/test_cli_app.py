"""The root ``gw`` group: ``gw --help`` lists every command with its own summary while
importing none of the command modules."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from graphile_worker_cli.cli import app


def test_the_help_summaries_name_every_command_in_order() -> None:
    assert list(app.SUMMARIES) == list(app.COMMANDS)


@pytest.mark.parametrize("name", list(app.COMMANDS))
def test_each_listed_summary_is_the_commands_own(name: str) -> None:
    found = app.command(name)
    assert found is not None
    assert app.SUMMARIES[name] == found.get_short_help_str()


def test_the_help_lists_the_summaries(monkeypatch: pytest.MonkeyPatch) -> None:
    # A command module imported while the list is printed would fail here.
    for module, _ in app.COMMANDS.values():
        monkeypatch.setitem(sys.modules, f"graphile_worker_cli.cli.{module}", None)
    result = CliRunner().invoke(app.full_app(), ["--help"])
    assert result.exit_code == 0, result.output
    for name, summary in app.SUMMARIES.items():
        assert f"  {name:<8} {summary}" in result.output
