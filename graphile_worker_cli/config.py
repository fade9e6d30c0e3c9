"""Settings: defaults < TOML file < environment < CLI flags.

``load_settings`` is what the CLI calls. Each source is read and checked on its own, so a
bad value is reported against the place it came from (``worker.toml: key "concurrency"``,
``environment variable GW_CONCURRENCY``, ``option --concurrency``) in one line.

``Settings()`` built directly reads the same sources minus the CLI: ``./worker.toml`` when
present, then the environment, then its keyword arguments (what pydantic-settings' classes
do; a plain pydantic model here, which every ``gw`` command imports at start, costs less).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
)
from pydantic.fields import FieldInfo

from graphile_worker_cli import durations
from graphile_worker_cli.errors import BadInputError, ConfigError

DEFAULT_CONFIG_FILE = Path("worker.toml")
ENV_PREFIX = "GW_"
SOURCE_DEFAULT = "default"
SOURCE_FILE = "file"
SOURCE_ENV = "env"
SOURCE_CLI = "cli"

LogFormat = Literal["auto", "rich", "plain", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]


class Expect:
    """Field metadata: how to say what a valid value looks like, for error messages."""

    def __init__(self, text: str) -> None:
        self.text = text


def _duration(value: Any) -> float:
    try:
        return durations.parse_duration(value)
    except BadInputError as error:
        raise ValueError(error.message) from None


def _lowercase(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Duration = Annotated[float, BeforeValidator(_duration), Expect(durations.DURATION_HELP)]
OptionalDuration = Annotated[
    float | None, BeforeValidator(lambda v: None if v is None else _duration(v)),
    Expect(durations.DURATION_HELP),
]
AtLeastOne = Annotated[int, Field(ge=1), Expect("an integer >= 1")]


def _task_limits(value: Any) -> Any:
    """``task_max_concurrency`` from its spellings: a table (TOML, code), ``TASK=N`` items
    (the repeatable flag) or their comma-separated text or a JSON object (environment)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value
        value = [item for item in text.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        limits: dict[str, Any] = {}
        for item in value:
            name, equals, number = item.rpartition("=")
            if not equals or not name.strip():
                return value  # not TASK=N: fails validation, naming what was expected
            limits[name.strip()] = int(number) if number.strip().isdigit() else number
        return limits
    return value


TaskLimitsTable = Annotated[
    dict[str, Annotated[int, Field(strict=True, ge=1)]],
    BeforeValidator(_task_limits),
    Expect('task identifiers with an integer >= 1 each, like {export = 1} or "export=1"'),
]
NonNegative = Annotated[int, Field(ge=0), Expect("an integer >= 0")]
Port = Annotated[int, Field(ge=1, le=65535), Expect("a port number from 1 to 65535")]


class Settings(BaseModel):
    """Every setting of gw. TOML key = field name (``schema`` for ``schema_name``).

    ``Settings(**values)`` reads ./worker.toml (when present) and the environment, with
    ``values`` on top; ``load_settings`` is the CLI's way, with an explicit file and flags.
    """

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, validate_default=False
    )

    database_url: Annotated[str | None, Expect("a PostgreSQL URL")] = None
    schema_name: Annotated[str, Field(alias="schema", min_length=1), Expect("a schema name")] = (
        "graphile_worker"
    )
    embedded_data_dir: Path = Path(".gw/pgdata")
    database_wait: Duration = 0.0

    concurrency: AtLeastOne = 10
    poll_interval: Duration = 2.0
    max_pg_conn: AtLeastOne = 10
    tasks: Path | None = None
    tasks_modules: list[str] = []
    crontab: Path | None = None
    forbidden_flags: list[str] = []
    migrate: bool = True
    shutdown_grace_period: Duration = 30.0
    shutdown_abort_timeout: Duration = 5.0
    shutdown_interrupted_job_retry_delay: Duration = 1.0
    task_timeout: OptionalDuration = None
    task_max_concurrency: TaskLimitsTable = {}
    history_retention: OptionalDuration = None
    log_format: Annotated[LogFormat, BeforeValidator(_lowercase)] = "auto"
    log_level: Annotated[LogLevel, BeforeValidator(_lowercase)] = "info"

    local_queue_size: NonNegative = 0
    local_queue_ttl: Duration = 60.0
    local_queue_refetch_delay: Duration = 0.0
    local_queue_refetch_delay_threshold: NonNegative = 0
    local_queue_refetch_delay_max_abort_threshold: Annotated[
        int | None, Field(ge=0), Expect("an integer >= 0")
    ] = None
    complete_job_batch_delay: Duration = 0.0
    fail_job_batch_delay: Duration = 0.0
    prepared_statements: bool = True
    processes: AtLeastOne = 1

    worker_recovery: bool = True
    heartbeat_interval: Duration = 10.0
    sweep_interval: Duration = 30.0
    sweep_threshold: Duration = 60.0
    recovery_delay: Duration = 0.0
    direct_database_url: Annotated[str | None, Expect("a PostgreSQL URL")] = None
    jobs_vacuum_threshold: NonNegative = 100_000

    plugins: list[str] = []
    metrics_port: Port | None = None
    metrics_host: Annotated[
        str, Field(min_length=1), Expect("an address to bind, like 127.0.0.1")
    ] = "0.0.0.0"

    _config_file: Path | None = PrivateAttr(None)
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        config_file = find_config_file(None)
        layers = [read_toml(config_file) if config_file is not None else {}, read_environment()]
        merged = {FIELD_BY_KEY[key]: value for layer in layers for key, value in layer.items()}
        merged.update({FIELD_BY_KEY.get(name, name): value for name, value in values.items()})
        super().__init__(**merged)

    @property
    def config_file(self) -> Path | None:
        """The TOML file ``load_settings`` read these settings from, if any."""
        return self._config_file

    @property
    def sources(self) -> dict[str, str]:
        """Where each key's value came from: default, file, env or cli.

        Recorded by ``load_settings``; settings built directly report "default" throughout.
        """
        return {name: self._sources.get(name, SOURCE_DEFAULT) for name in KEYS}

    def redacted(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict keyed by TOML key, with passwords hidden."""
        result: dict[str, Any] = {}
        for name in KEYS:
            value = getattr(self, FIELD_BY_KEY[name])
            if name in ("database_url", "direct_database_url") and value is not None:
                from graphile_worker_cli.db import redact_url

                value = redact_url(value)
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, list):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            result[name] = value
        return result


# TOML / display key for each field ("schema" is the one that differs from the field name).
KEY_BY_FIELD = {name: (info.alias or name) for name, info in Settings.model_fields.items()}
FIELD_BY_KEY = {key: name for name, key in KEY_BY_FIELD.items()}
KEYS = list(FIELD_BY_KEY)
DURATION_KEYS = frozenset(
    KEY_BY_FIELD[name]
    for name, info in Settings.model_fields.items()
    if any(getattr(meta, "text", None) == durations.DURATION_HELP for meta in info.metadata)
)
# Extra spellings accepted everywhere for a key.
_KEY_ALIASES = {"schema_name": "schema"}
# Generic environment variables, read before the GW_ ones (which win when both are set).
_GENERIC_ENV = {"DATABASE_URL": "database_url", "GRAPHILE_WORKER_SCHEMA": "schema"}


def _adapter(info: FieldInfo) -> TypeAdapter[Any]:
    """Validates one field's value alone, with the field's constraints and validators."""
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[(annotation, *info.metadata)]
    return TypeAdapter(annotation)


_ADAPTERS: dict[str, TypeAdapter[Any]] = {}


def _validator(key: str) -> TypeAdapter[Any]:
    """One key's validator, built on first use: a command checks a few keys, not all."""
    adapter = _ADAPTERS.get(key)
    if adapter is None:
        adapter = _ADAPTERS[key] = _adapter(Settings.model_fields[FIELD_BY_KEY[key]])
    return adapter


class _Invalid(Exception):
    """A value did not validate; the message says what was expected."""


def expected(key: str) -> str:
    """What a valid value for ``key`` looks like, in words."""
    info = Settings.model_fields[FIELD_BY_KEY[key]]
    for meta in info.metadata:
        if isinstance(meta, Expect):
            return meta.text
    return _describe_type(info.annotation)


def _describe_type(annotation: Any) -> str:
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, Expect):
            return meta.text
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(json.dumps(arg) for arg in get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation is Path:
        return "a path"
    if annotation == list[str]:
        return "a list of strings"
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if len(args) == 1:
        return _describe_type(args[0])
    return "a valid value"


def _show(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except ValueError:
        return repr(value)


def _check_value(key: str, value: Any) -> Any:
    """Validate one value for one key; raise _Invalid naming what was expected."""
    info = Settings.model_fields[FIELD_BY_KEY[key]]
    if isinstance(value, bool) and info.annotation is not bool:
        raise _Invalid(f"expected {expected(key)}, got {_show(value)}")
    if key in DURATION_KEYS and isinstance(value, str):
        try:
            return durations.parse_duration(value)
        except durations.BareNumberError as error:
            raise _Invalid(error.message) from None
        except BadInputError:
            raise _Invalid(f"expected {expected(key)}, got {_show(value)}") from None
    if info.annotation == list[str] and not isinstance(value, list):
        raise _Invalid(f"expected {expected(key)}, got {_show(value)}")
    try:
        return _validator(key).validate_python(value)
    except ValidationError:
        raise _Invalid(f"expected {expected(key)}, got {_show(value)}") from None


def _canonical_key(key: str) -> str | None:
    key = _KEY_ALIASES.get(key, key)
    return key if key in FIELD_BY_KEY else None


def _unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, KEYS, n=1)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    return f'unknown key "{key}" ({hint}known keys: {", ".join(KEYS)})'


# --- TOML file -------------------------------------------------------------------------


def find_config_file(config_path: Path | None) -> Path | None:
    """The file to read: the one given (it must exist), else ./worker.toml when present."""
    if config_path is not None:
        if not config_path.exists():
            raise ConfigError(f"config file {config_path} not found")
        if not config_path.is_file():
            raise ConfigError(f"config file {config_path} is not a file")
        return config_path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    """The checked values of a TOML config file, keyed by TOML key."""
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the file ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the file is not valid UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML syntax: {error}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        canonical = _canonical_key(key)
        if canonical is None:
            if isinstance(value, dict):
                # A [table] header: gw's keys live at the top level of the file.
                raise ConfigError(
                    f"{path}: unknown table [{key}] (gw's keys go at the top level, "
                    f"before any [table] header; known keys: {', '.join(KEYS)})"
                )
            raise ConfigError(f"{path}: {_unknown_key_message(key)}")
        if canonical in values:
            raise ConfigError(f'{path}: key "{key}" is given twice (also as "{canonical}")')
        if _is_bare_duration(canonical, value):
            raise ConfigError(
                f'{path}: key "{key}": {durations.bare_number_message(value, quote=chr(34))}'
            )
        try:
            checked = _check_value(canonical, value)
        except _Invalid as error:
            raise ConfigError(f'{path}: key "{key}": {error}') from None
        if isinstance(checked, Path) and not checked.is_absolute():
            # Paths in a config file are relative to that file, not to the working directory.
            checked = path.parent / checked
        values[canonical] = checked
    return values


def _is_bare_duration(key: str, value: Any) -> bool:
    """A TOML number for a duration: written without a unit, so refused as ambiguous."""
    return (
        key in DURATION_KEYS
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
    )


def check_values(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Checked values keyed by TOML key, from a mapping written in code (a framework's
    settings, e.g. Django's ``GRAPHILE_WORKER``); errors name ``where``."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        canonical = _canonical_key(key) if isinstance(key, str) else None
        if canonical is None:
            raise ConfigError(f"{where}: {_unknown_key_message(str(key))}")
        if canonical in values:
            raise ConfigError(f'{where}: key "{key}" is given twice (also as "{canonical}")')
        try:
            values[canonical] = _check_value(canonical, value)
        except _Invalid as error:
            raise ConfigError(f'{where}: key "{key}": {error}') from None
    return values


def env_text(value: Any) -> str:
    """A checked value as the text of its GW_ variable (lists as JSON arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # every float setting is a duration, and text needs a unit
        return durations.format_duration(value)
    if isinstance(value, list):
        return json.dumps([str(item) for item in value])
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


# --- environment -----------------------------------------------------------------------


def env_var(key: str) -> str:
    """The GW_ variable for a key."""
    return ENV_PREFIX + key.upper()


def _from_env_text(key: str, text: str) -> Any:
    info = Settings.model_fields[FIELD_BY_KEY[key]]
    if info.annotation == list[str]:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                return json.loads(stripped)
            except json.JSONDecodeError:
                return stripped
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return text


def read_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Checked values from DATABASE_URL, GRAPHILE_WORKER_SCHEMA and GW_<KEY> variables.

    An empty variable counts as not set. Lists are comma separated or a JSON array.
    """
    environ = os.environ if environ is None else environ
    candidates: list[tuple[str, str]] = list(_GENERIC_ENV.items())
    candidates += [(env_var(key), key) for key in KEYS]
    candidates += [(env_var(alias), key) for alias, key in _KEY_ALIASES.items()]
    values: dict[str, Any] = {}
    for variable, key in candidates:
        text = environ.get(variable)
        if text is None or text == "":
            continue
        try:
            values[key] = _check_value(key, _from_env_text(key, text))
        except _Invalid as error:
            raise ConfigError(f"environment variable {variable}: {error}") from None
    return values


# --- CLI overrides ---------------------------------------------------------------------

# Flags not spelled --<key>: the repeatable ones take one item each.
_OPTION_NAMES = {
    "database_url": "--connection",
    "schema": "--schema",
    "max_pg_conn": "--max-pool-size",
    "tasks_modules": "--tasks-module",
    "forbidden_flags": "--forbidden-flag",
    "task_max_concurrency": "--task-max-concurrency",
}


def option_name(key: str) -> str:
    """The command-line option for a key, for messages."""
    return _OPTION_NAMES.get(key, "--" + key.replace("_", "-"))


def read_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Checked CLI values, keyed by TOML key; None means the flag was not given."""
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        canonical = _canonical_key(key)
        if canonical is None:
            raise ValueError(f"load_settings: unknown settings key {key!r}")
        try:
            values[canonical] = _check_value(canonical, value)
        except _Invalid as error:
            raise ConfigError(f"option {option_name(canonical)}: {error}") from None
    return values


# --- putting it together ---------------------------------------------------------------


def load_settings(
    config_path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Settings from defaults < TOML file < environment < ``overrides`` (the CLI flags).

    Raises ConfigError (exit code 2) with one line naming the source of a bad value.
    """
    config_file = find_config_file(config_path)
    layers = [
        (SOURCE_FILE, read_toml(config_file) if config_file is not None else {}),
        (SOURCE_ENV, read_environment()),
        (SOURCE_CLI, read_overrides(overrides or {})),
    ]
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, values in layers:
        merged.update(values)
        sources.update(dict.fromkeys(values, source))
    # Every value is already checked, so this cannot fail on user input.
    settings = Settings.model_validate({FIELD_BY_KEY[key]: value for key, value in merged.items()})
    settings._config_file = config_file
    settings._sources = sources
    return settings
