"""Settings: every source, its precedence, and one-line errors naming the bad value's origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graphile_worker_cli import config
from graphile_worker_cli.errors import ConfigError
from tests.helpers.paths import REPO_ROOT

DEFAULTS = config.Settings.defaults()


pytestmark = pytest.mark.usefixtures("clean_environment")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def config_error(config_path: Path | None = None, overrides: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        config.load_settings(config_path, overrides or {})
    message = caught.value.message
    assert "\n" not in message
    assert caught.value.exit_code == 2
    return message


# Three distinct valid values per key, different from its default: a TOML literal, an
# environment string and a CLI value.
def samples(key: str) -> tuple[str, str, Any]:
    annotation = config.FIELDS[key].annotation
    if key == "database_url":
        return ('"postgres://u@one/db"', "postgres://u@two/db", "postgres://u@three/db")
    if key in config.DURATION_KEYS:
        return ('"3s"', "250ms", 7)
    if annotation is bool:
        return ("false", "true", False)
    if annotation == list[str]:
        return ('["a", "b"]', "c, d", ["e"])
    if key == "task_max_concurrency":
        return ("{ export = 1 }", "export=2,emails/send=1", ["export=3"])
    if key == "log_format":
        return ('"json"', "plain", "rich")
    if key == "log_level":
        return ('"debug"', "WARNING", "error")
    if key == "metrics_port" or annotation in (int, int | None):
        return ("3", "4", 5)
    return ('"one"', "two", "three")


@pytest.mark.parametrize("key", config.KEYS)
def test_each_source_overrides_the_lower_ones_for_every_key(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml_text, env_text, cli_value = samples(key)
    toml_file = write(tmp_path / "gw.toml", f"{key} = {toml_text}\n")
    variable = config.env_var(key)
    default = config.load_settings(None, {})
    assert default.redacted()[key] == DEFAULTS.redacted()[key]
    assert default.sources[key] == "default"

    from_file = config.load_settings(toml_file, {})
    assert from_file.sources[key] == "file"
    assert from_file.redacted()[key] != default.redacted()[key]

    monkeypatch.setenv(variable, env_text)
    from_env = config.load_settings(toml_file, {})
    assert from_env.sources[key] == "env"
    assert from_env.redacted()[key] != from_file.redacted()[key]

    from_cli = config.load_settings(toml_file, {key: cli_value})
    assert from_cli.sources[key] == "cli"
    assert from_cli.redacted()[key] != from_env.redacted()[key]


def test_values_from_each_source_are_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml_file = write(
        tmp_path / "gw.toml",
        'poll_interval = "250ms"\nconcurrency = 3\ntasks_modules = ["a", "b"]\n'
        'shutdown_grace_period = "90s"\nlog_level = "DEBUG"\n',
    )
    monkeypatch.setenv("GW_FORBIDDEN_FLAGS", "slow, big")
    monkeypatch.setenv("GW_HEARTBEAT_INTERVAL", "5m")
    monkeypatch.setenv("GW_MIGRATE", "off")
    monkeypatch.setenv("GW_PLUGINS", '["pkg.mod:Plugin", "other:P"]')
    settings = config.load_settings(toml_file, {"sweep_interval": "1h", "metrics_port": 9100})
    assert settings.poll_interval == 0.25
    assert settings.concurrency == 3
    assert settings.tasks_modules == ["a", "b"]
    assert settings.shutdown_grace_period == 90.0
    assert settings.log_level == "debug"
    assert settings.forbidden_flags == ["slow", "big"]
    assert settings.heartbeat_interval == 300.0
    assert settings.migrate is False
    assert settings.plugins == ["pkg.mod:Plugin", "other:P"]
    assert settings.sweep_interval == 3600.0
    assert settings.metrics_port == 9100
    assert settings.config_file == toml_file


def test_worker_toml_in_the_working_directory_is_read_when_present(tmp_path: Path) -> None:
    assert config.load_settings(None, {}).config_file is None
    write(tmp_path / "worker.toml", "concurrency = 7\n")
    settings = config.load_settings(None, {})
    assert settings.concurrency == 7
    assert settings.config_file == Path("worker.toml")


def test_paths_in_a_config_file_are_relative_to_that_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    toml_file = write(tmp_path / "etc" / "gw.toml", 'tasks = "tasks"\ncrontab = "/abs/crontab"\n')
    settings = config.load_settings(toml_file, {})
    assert settings.tasks == tmp_path / "etc" / "tasks"
    assert settings.crontab == Path("/abs/crontab")


def test_generic_and_gw_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://generic/db")
    monkeypatch.setenv("GRAPHILE_WORKER_SCHEMA", "from_generic")
    settings = config.load_settings(None, {})
    assert settings.database_url == "postgres://generic/db"
    assert settings.schema_name == "from_generic"
    monkeypatch.setenv("GW_DATABASE_URL", "postgres://specific/db")
    monkeypatch.setenv("GW_SCHEMA", "from_gw")
    settings = config.load_settings(None, {})
    assert settings.database_url == "postgres://specific/db"
    assert settings.schema_name == "from_gw"
    assert config.load_settings(None, {"schema_name": "cli"}).schema_name == "cli"


def test_an_empty_environment_variable_counts_as_not_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "")
    monkeypatch.setenv("GW_CONCURRENCY", "")
    settings = config.load_settings(None, {})
    assert settings.database_url is None
    assert settings.concurrency == 10


def test_settings_built_directly_read_the_environment_and_worker_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "worker.toml", "concurrency = 7\nmax_pg_conn = 3\n")
    monkeypatch.setenv("GW_CONCURRENCY", "8")
    settings = config.Settings(poll_interval="1s")
    assert (settings.concurrency, settings.max_pg_conn, settings.poll_interval) == (8, 3, 1.0)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nope.toml")
    assert "nope.toml" in message and "not found" in message


def test_unknown_toml_key_names_the_file_the_key_and_the_known_keys(tmp_path: Path) -> None:
    toml_file = write(tmp_path / "worker.toml", "concurency = 10\n")
    message = config_error(toml_file)
    assert message.startswith(f'{toml_file}: unknown key "concurency" (did you mean "concurrency"?')
    assert "known keys: database_url, schema," in message


def test_a_toml_table_is_rejected_with_a_hint(tmp_path: Path) -> None:
    message = config_error(write(tmp_path / "w.toml", "[worker]\nconcurrency = 1\n"))
    assert message.startswith(f"{tmp_path / 'w.toml'}: unknown table [worker]")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('concurrency = "ten"', 'key "concurrency": expected an integer >= 1, got "ten"'),
        ("concurrency = 0", 'key "concurrency": expected an integer >= 1, got 0'),
        ("processes = 0", 'key "processes": expected an integer >= 1, got 0'),
        ("concurrency = true", 'key "concurrency": expected an integer >= 1, got true'),
        ("metrics_port = 70000", 'key "metrics_port": expected a port number from 1 to 65535'),
        ('migrate = "perhaps"', 'key "migrate": expected true or false, got "perhaps"'),
        ('tasks_modules = "a"', 'key "tasks_modules": expected a list of strings, got "a"'),
        ('log_format = "xml"', 'key "log_format": expected one of "auto", "rich", "plain", "json"'),
        (
            'poll_interval = "2 fortnights"',
            'key "poll_interval": expected a duration like 250ms, 2s, 5m, 1h or 1d, '
            'got "2 fortnights"',
        ),
        ("poll_interval = -1", 'key "poll_interval": expected a duration'),
    ],
)
def test_wrong_toml_value_names_the_file_the_key_and_what_was_expected(
    tmp_path: Path, line: str, expected: str
) -> None:
    toml_file = write(tmp_path / "worker.toml", line + "\n")
    assert config_error(toml_file).startswith(f"{toml_file}: {expected}")


def test_invalid_toml_syntax_names_the_file_and_the_line(tmp_path: Path) -> None:
    toml_file = write(tmp_path / "worker.toml", "concurrency = 4\nschema = \n")
    message = config_error(toml_file)
    assert message.startswith(f"{toml_file}: invalid TOML syntax:")
    assert "line 2" in message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GW_CONCURRENCY", "ten", 'expected an integer >= 1, got "ten"'),
        ("GW_POLL_INTERVAL", "soon", "expected a duration like 250ms"),
        ("GW_MIGRATE", "perhaps", 'expected true or false, got "perhaps"'),
        ("GW_METRICS_PORT", "0", "expected a port number from 1 to 65535"),
        ("GW_LOG_LEVEL", "loud", 'expected one of "debug", "info", "warning", "error"'),
    ],
)
def test_wrong_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert config_error().startswith(f"environment variable {variable}: {expected}")


def test_wrong_cli_value_names_the_option() -> None:
    message = config_error(None, {"concurrency": 0})
    assert message == "option --concurrency: expected an integer >= 1, got 0"
    assert config_error(None, {"poll_interval": "x"}).startswith(
        "option --poll-interval: expected a duration"
    )


def test_an_unknown_override_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="concurency"):
        config.load_settings(None, {"concurency": 1})


def test_redacted_hides_the_password_and_keys_by_toml_key() -> None:
    settings = config.load_settings(
        None, {"database_url": "postgres://app:s3cret@db:5432/jobs", "tasks": "t"}
    )
    values = settings.redacted()
    assert values["database_url"] == "postgres://app:***@db:5432/jobs"
    assert "s3cret" not in repr(values)
    assert values["schema"] == "graphile_worker"
    assert values["tasks"] == "t"
    assert list(values) == config.KEYS


def test_every_key_is_in_the_example_and_the_docs_and_the_example_holds_the_defaults(
    tmp_path: Path,
) -> None:
    root = REPO_ROOT
    example = root / "worker.toml.example"
    docs = (root / "docs" / "configuration.md").read_text()
    text = example.read_text()
    for key in config.KEYS:
        assert f"{key} = " in text, key
        assert f"`{key}`" in docs, key
        assert f"`{config.env_var(key)}`" in docs, key
    # With every commented-out "# key = value" line enabled, the example still holds
    # exactly the defaults (the None defaults are the commented ones).
    enabled = "\n".join(
        line[2:]
        if line.startswith("# ") and " = " in line and line[2:].split(" ")[0] in config.KEYS
        else line
        for line in text.splitlines()
    )
    settings = config.load_settings(write(tmp_path / "example.toml", text), {})
    assert settings.redacted() == {
        **DEFAULTS.redacted(),
        "embedded_data_dir": str(tmp_path / ".gw" / "pgdata"),
    }
    assert set(settings.sources.values()) == {"file", "default"}
    everything = config.load_settings(write(tmp_path / "all.toml", enabled), {})
    assert set(everything.sources.values()) == {"file"}
