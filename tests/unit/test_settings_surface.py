"""One definition of gw's settings: the settings model (config.Settings). Every field is a
TOML key with a ``GW_`` variable and a row in docs/configuration.md (flag and default
included), every ``gw run`` flag sets exactly the key of that row, the defaults ``gw run
--help`` quotes are the model's, and worker.toml.example lists every key. A setting added
in one place and forgotten in another fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.exceptions import Exit
from click.testing import CliRunner

from graphile_worker_cli import config, durations
from graphile_worker_cli.cli import common, run_cmd
from tests.helpers.paths import REPO_ROOT

CONFIGURATION = REPO_ROOT / "docs" / "configuration.md"
EXAMPLE = REPO_ROOT / "worker.toml.example"
# `gw run` flags that are not settings: which file to read, what to do (--once, the
# one-shot maintenance modes), how much to log.
NOT_SETTINGS = {
    "--config", "--once", "--schema-only", "--cleanup", "--verbose", "--quiet", "--help"
}
# Keys a gw run flag changes without setting them: -v/-q move the log level up or down.
INDIRECT_FLAGS = {"log_level": "-v"}
ROW = re.compile(r"^\| `(\w+)` \|(.*)\|$", re.M)


def _run_command() -> Any:
    return run_cmd.run_command


def _options() -> list[Any]:
    """The options of ``gw run`` (its click parameters)."""
    return [p for p in _run_command().params if p.param_type_name == "option"]


def _long_name(option: Any) -> str:
    return str(next(name for name in option.opts if name.startswith("--")))


def _sample(option: Any) -> list[str]:
    """Arguments that give this option a value (not checked: settings are never built)."""
    if option.is_flag:
        return [_long_name(option)]
    return [_long_name(option), "1"]


def _keys_set_by(args: list[str], monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The settings keys ``gw run ARGS`` hands to the settings loader."""
    seen: dict[str, Any] = {}

    def capture(
        connection: str | None, schema: str | None, config_path: Path | None, **overrides: Any
    ) -> config.Settings:
        seen.update(overrides, database_url=connection, schema=schema)
        raise Exit(0)

    monkeypatch.setattr(common, "load_settings", capture)
    result = CliRunner().invoke(run_cmd.run_command, args)
    assert result.exit_code == 0, result.output
    return {key for key, value in seen.items() if value is not None}


def _flag_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Each settings flag of ``gw run`` → the one key it sets."""
    baseline = _keys_set_by([], monkeypatch)
    assert baseline == set(), f"gw run sets {baseline} without any flag"
    flags: dict[str, str] = {}
    for option in _options():
        name = _long_name(option)
        if name in NOT_SETTINGS:
            continue
        keys = _keys_set_by(_sample(option), monkeypatch)
        assert len(keys) == 1, f"{name} sets {keys or 'no setting'}; expected one key"
        flags[name] = keys.pop()
    return flags


def _doc_rows() -> dict[str, tuple[str, str, str]]:
    rows: dict[str, tuple[str, str, str]] = {}
    for key, rest in ROW.findall(CONFIGURATION.read_text()):
        environment, flag, default = (cell.strip() for cell in rest.split("|")[:3])
        assert key not in rows, f"docs/configuration.md has two rows for {key}"
        rows[key] = (environment, flag, default)
    return rows


def _default_text(key: str) -> str | None:
    """The model's default as docs and help spell it; None for no default."""
    value = config.FIELDS[key].default
    if value is None:
        return None
    if key in config.DURATION_KEYS:
        return durations.format_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[]" if not value else repr(value)
    return str(value)


def test_every_run_flag_sets_one_settings_key_and_errors_name_that_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags = _flag_keys(monkeypatch)
    assert set(flags.values()) <= set(config.KEYS)
    assert len(set(flags.values())) == len(flags), "two flags set one key"
    for name, key in flags.items():
        info = config.FIELDS[key]
        if info.annotation is not bool:  # a --no-x switch cannot carry a bad value
            assert config.option_name(key) == name, (
                f"a bad {key} would be reported as option {config.option_name(key)}, "
                f"but the flag is {name}"
            )


def test_docs_have_one_row_per_key_with_its_variable_flag_and_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = _doc_rows()
    assert set(rows) == set(config.KEYS), (
        f"missing rows: {sorted(set(config.KEYS) - set(rows))}; "
        f"rows for no key: {sorted(set(rows) - set(config.KEYS))}"
    )
    flag_of = {key: name for name, key in _flag_keys(monkeypatch).items()}
    for key, (environment, flag_cell, default_cell) in rows.items():
        assert f"`{config.env_var(key)}`" in environment, f"{key}: environment column"
        flag = flag_of.get(key, INDIRECT_FLAGS.get(key))
        if flag is None:
            assert "gw run" not in flag_cell, f"{key}: docs name a gw run flag it does not have"
        else:
            assert re.search(rf"{re.escape(flag)}\b", flag_cell), f"{key}: flag {flag} not in docs"
        default = _default_text(key)
        if default is None:
            assert default_cell.startswith("none"), f"{key}: no default, docs say {default_cell}"
        else:
            assert default_cell.startswith(f"`{default}`"), (
                f"{key}: default is {default}, docs say {default_cell}"
            )


def test_run_help_quotes_the_models_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = _flag_keys(monkeypatch)
    quoted = re.compile(r"\((?:default|default:) ([^),;]+)[);]|\[default: ([^\]]+)\]")
    for option in _options():
        key = flags.get(_long_name(option))
        found = quoted.search(option.help or "")
        if key is None or found is None or _default_text(key) is None:
            continue  # no default in the model: the help describes the fallback
        text = (found.group(1) or found.group(2)).split(":")[0].strip()
        if key in config.DURATION_KEYS:  # any spelling of the same duration
            text = durations.format_duration(durations.parse_duration(text))
        assert text == _default_text(key), (
            f"{_long_name(option)} help says default {text}, the model says {_default_text(key)}"
        )


def test_worker_toml_example_lists_every_key() -> None:
    text = EXAMPLE.read_text()
    listed = set(re.findall(r"^#? ?(\w+) = ", text, re.M))
    assert set(config.KEYS) <= listed, f"not in worker.toml.example: {set(config.KEYS) - listed}"
    assert listed <= set(config.KEYS), f"not settings keys: {listed - set(config.KEYS)}"
