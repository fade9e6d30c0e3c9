"""``gw config show`` in-process: effective settings, sources, redaction, and config errors
as exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from graphile_worker_cli import config
from graphile_worker_cli.cli.app import app

pytestmark = pytest.mark.usefixtures("clean_environment")


def show_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["config", "show", "--json", *args], env=env)
    assert result.exit_code == 0, result.output
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def test_json_redacts_the_password_of_database_url_and_reflects_the_toml_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "worker.toml").write_text('concurrency = 3\npoll_interval = "500ms"\n')
    output = show_json(env={"DATABASE_URL": "postgres://app:hunter2@db.internal:5432/jobs"})
    assert "hunter2" not in json.dumps(output)
    assert output["config_file"] == "worker.toml"
    settings = output["settings"]
    assert settings["database_url"] == "postgres://app:***@db.internal:5432/jobs"
    assert settings["concurrency"] == 3
    assert settings["poll_interval"] == 0.5
    assert settings["max_pg_conn"] == 10
    assert list(settings) == config.KEYS
    sources = output["sources"]
    assert (sources["database_url"], sources["concurrency"], sources["max_pg_conn"]) == (
        "env",
        "file",
        "default",
    )


def test_common_options_override_everything(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('schema = "from_file"\nconcurrency = 4\n')
    output = show_json(
        "-c",
        "postgres://u:pw@h/db",
        "--schema",
        "from_flag",
        "--config",
        str(other),
        env={"GRAPHILE_WORKER_SCHEMA": "from_env"},
    )
    assert output["config_file"] == str(other)
    assert output["settings"]["database_url"] == "postgres://u:***@h/db"
    assert output["settings"]["schema"] == "from_flag"
    assert output["settings"]["concurrency"] == 4


def test_table_for_people_shows_values_sources_and_the_file(tmp_path: Path) -> None:
    (tmp_path / "worker.toml").write_text('shutdown_grace_period = "90s"\n')
    result = CliRunner().invoke(
        app, ["config", "show"], env={"DATABASE_URL": "postgres://a:secret@h/db", "COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "config file: worker.toml" in result.stdout
    assert "secret" not in result.stdout
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:] if line}
    assert rows["shutdown_grace_period"] == ["90s", "config", "file"]
    assert rows["database_url"] == ["postgres://a:***@h/db", "environment"]
    assert rows["concurrency"] == ["10", "default"]



@pytest.mark.parametrize("password", ["Sup3r#Secr3t", "Sup3r?Secr3t", "Sup3r/Secr3t"])
def test_a_malformed_url_is_shown_without_its_password(password: str) -> None:
    # An un-encoded '#', '?' or '/' ends a URL's user info early for a URL parser.
    url = f"postgres://app:{password}@db.internal:5432/jobs"
    output = show_json("-c", url)
    assert output["settings"]["database_url"] == "postgres://app:***@db.internal:5432/jobs"
    table = CliRunner().invoke(app, ["config", "show"], env={"DATABASE_URL": url, "COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "postgres://app:***@db.internal:5432/jobs" in table.stdout
    for text in (json.dumps(output), table.stdout):
        assert "Sup3r" not in text and "Secr3t" not in text

@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ("concurency = 1\n", {}, 'worker.toml: unknown key "concurency"'),
        ('concurrency = "ten"\n', {}, 'worker.toml: key "concurrency": expected an integer >= 1'),
        ("concurrency = \n", {}, "worker.toml: invalid TOML syntax:"),
        ("", {"GW_POLL_INTERVAL": "soon"}, "environment variable GW_POLL_INTERVAL: expected"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    tmp_path: Path, toml: str, env: dict[str, str], expected: str
) -> None:
    (tmp_path / "worker.toml").write_text(toml)
    result = CliRunner().invoke(app, ["config", "show"], env={**env, "COLUMNS": "500"})
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {expected}")
