"""Settings: defaults < TOML file < environment < CLI flags.

``load_settings`` is what the CLI calls. Each source is read and checked on its own, so a
bad value is reported against the place it came from (``worker.toml: key "concurrency"``,
``environment variable GW_CONCURRENCY``, ``option --concurrency``) in one line.

``Settings()`` built directly reads the same sources minus the CLI: ``./worker.toml`` when
present, then the environment, then its keyword arguments.

``Settings`` is a plain class whose fields carry a ``Rule`` each, checked here key by key:
every ``gw`` command loads settings at start, and a pydantic model cost more than the rest
of ``gw add-job`` put together (see docs/architecture.md, "Why not pydantic for settings").
"""

# No `from __future__ import annotations`: `_fields` reads the annotations of `Settings`,
# and evaluated ones cost nothing to read where ~40 strings cost one compile each (~1.5 ms
# of every gw command's start).
import copy
import json
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

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


@dataclass(frozen=True)
class Rule:
    """Field metadata: what a valid value is beyond its type, and how to say it."""

    expect: str | None = None
    minimum: int | None = None
    """The least value (for a table: of each of its values)."""
    maximum: int | None = None
    min_length: int = 0
    duration: bool = False
    lowercase: bool = False
    before: Callable[[Any], Any] | None = None
    """Reads other spellings of the value first (``"a=1,b=2"`` for a table)."""


Duration = Annotated[float, Rule(durations.DURATION_HELP, duration=True)]
OptionalDuration = Annotated[float | None, Rule(durations.DURATION_HELP, duration=True)]
AtLeastOne = Annotated[int, Rule("an integer >= 1", minimum=1)]
NonNegative = Annotated[int, Rule("an integer >= 0", minimum=0)]
URL = Annotated[str | None, Rule("a PostgreSQL URL")]


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
    dict[str, int],
    Rule('task identifiers with an integer >= 1 each, like {export = 1} or "export=1"',
         minimum=1, before=_task_limits),
]


class Settings:
    """Every setting of gw. TOML key = field name (``schema`` for ``schema_name``).

    ``Settings(**values)`` reads ./worker.toml (when present) and the environment, with
    ``values`` on top; ``load_settings`` is the CLI's way, with an explicit file and flags.
    A bad value raises ConfigError naming it.
    """

    database_url: URL = None
    schema_name: Annotated[str, Rule("a schema name", min_length=1)] = "graphile_worker"
    embedded_data_dir: Path = Path(".gw/pgdata")
    database_wait: Duration = 0.0

    concurrency: AtLeastOne = 10
    poll_interval: Duration = 2.0
    max_pg_conn: AtLeastOne = 10
    tasks: Path | None = None
    tasks_modules: list[str] = []  # noqa: RUF012 (never mutated: each instance gets a copy)
    crontab: Path | None = None
    forbidden_flags: list[str] = []  # noqa: RUF012
    migrate: bool = True
    shutdown_grace_period: Duration = 30.0
    shutdown_abort_timeout: Duration = 5.0
    shutdown_interrupted_job_retry_delay: Duration = 1.0
    task_timeout: OptionalDuration = None
    task_max_concurrency: TaskLimitsTable = {}  # noqa: RUF012
    history_retention: OptionalDuration = None
    log_format: Annotated[LogFormat, Rule(lowercase=True)] = "auto"
    log_level: Annotated[LogLevel, Rule(lowercase=True)] = "info"

    local_queue_size: NonNegative = 0
    local_queue_ttl: Duration = 60.0
    local_queue_refetch_delay: Duration = 0.0
    local_queue_refetch_delay_threshold: NonNegative = 0
    local_queue_refetch_delay_max_abort_threshold: Annotated[
        int | None, Rule("an integer >= 0", minimum=0)
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
    direct_database_url: URL = None
    jobs_vacuum_threshold: NonNegative = 50_000

    plugins: list[str] = []  # noqa: RUF012
    metrics_port: Annotated[
        int | None, Rule("a port number from 1 to 65535", minimum=1, maximum=65535)
    ] = None
    metrics_host: Annotated[
        str, Rule("an address to bind, like 127.0.0.1", min_length=1)
    ] = "0.0.0.0"

    _config_file: Path | None = None
    _sources: dict[str, str]

    def __init__(self, **values: Any) -> None:
        config_file = find_config_file(None)
        merged = read_toml(config_file) if config_file is not None else {}
        merged.update(read_environment())
        merged.update(check_values(
            {KEY_BY_FIELD.get(name, name): value for name, value in values.items()},
            "Settings()",
        ))
        self._assign(merged)

    @classmethod
    def defaults(cls) -> "Settings":
        """Every setting at its default: no file, no environment."""
        settings = cls.__new__(cls)
        settings._assign({})
        return settings

    def _assign(self, values: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> None:
        for key, field in FIELDS.items():
            value = values[key] if key in values else copy.copy(field.default)
            setattr(self, field.name, value)
        self._config_file = None
        self._sources = dict(sources or {})

    def replace(self, **changes: Any) -> "Settings":
        """A copy with ``changes`` (field names), each checked like a value in code."""
        updated = copy.copy(self)
        checked = check_values(
            {KEY_BY_FIELD.get(name, name): value for name, value in changes.items()},
            "Settings.replace()",
        )
        for key, value in checked.items():
            setattr(updated, FIELDS[key].name, value)
        return updated

    def values(self) -> dict[str, Any]:
        """The settings keyed by TOML key (passwords included; ``redacted`` hides them)."""
        return {key: getattr(self, field.name) for key, field in FIELDS.items()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.values() == other.values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={value!r}" for key, value in self.redacted().items())
        return f"Settings({shown})"

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
        for name, value in self.values().items():
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


@dataclass(frozen=True)
class Field:
    """One setting as declared on ``Settings``."""

    name: str
    key: str
    annotation: Any
    default: Any
    rule: Rule

    @property
    def optional(self) -> bool:
        return type(None) in get_args(self.annotation)

    @property
    def base(self) -> Any:
        """The type without ``| None``."""
        args = [arg for arg in get_args(self.annotation) if arg is not type(None)]
        if get_origin(self.annotation) in (Union, types.UnionType) and len(args) == 1:
            return args[0]
        return self.annotation


def _fields() -> dict[str, Field]:
    fields: dict[str, Field] = {}
    hints = get_type_hints(Settings, include_extras=True)
    for name, hint in hints.items():
        if name.startswith("_"):
            continue
        annotation, rule = hint, Rule()
        if get_origin(hint) is Annotated:
            annotation, *extras = get_args(hint)
            rule = next((extra for extra in extras if isinstance(extra, Rule)), rule)
        key = "schema" if name == "schema_name" else name
        fields[key] = Field(name, key, annotation, getattr(Settings, name), rule)
    return fields


FIELDS = _fields()
"""Each setting by TOML key, in declaration order."""
# TOML / display key for each field ("schema" is the one that differs from the field name).
KEY_BY_FIELD = {field.name: key for key, field in FIELDS.items()}
FIELD_BY_KEY = {key: field.name for key, field in FIELDS.items()}
KEYS = list(FIELDS)
DURATION_KEYS = frozenset(key for key, field in FIELDS.items() if field.rule.duration)
# Extra spellings accepted everywhere for a key.
_KEY_ALIASES = {"schema_name": "schema"}
# Generic environment variables, read before the GW_ ones (which win when both are set).
_GENERIC_ENV = {"DATABASE_URL": "database_url", "GRAPHILE_WORKER_SCHEMA": "schema"}


class _Invalid(Exception):
    """A value did not validate; the message says what was expected."""


def expected(key: str) -> str:
    """What a valid value for ``key`` looks like, in words."""
    field = FIELDS[key]
    return field.rule.expect or _describe_type(field.base)


def _describe_type(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(json.dumps(arg) for arg in get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation is Path:
        return "a path"
    if annotation == list[str]:
        return "a list of strings"
    return "a valid value"


def _show(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except ValueError:
        return repr(value)


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_INTEGER = re.compile(r"[+-]?\d+")


def _check_value(key: str, value: Any) -> Any:
    """Validate one value for one key; raise _Invalid naming what was expected."""
    field = FIELDS[key]
    if value is None and field.optional:
        return None
    checked = _convert(field, value)
    if checked is _INVALID:
        raise _Invalid(f"expected {expected(key)}, got {_show(value)}")
    return checked


_INVALID = object()


def _convert(field: Field, value: Any) -> Any:
    """``value`` as the field's type, or ``_INVALID``. Text is read as the environment
    gives it (``"4"`` for an integer, ``"yes"`` for true); a bool is never a number."""
    base, rule = field.base, field.rule
    if rule.before is not None:
        value = rule.before(value)
    if isinstance(value, bool) and base is not bool:
        return _INVALID
    if rule.duration:
        try:
            return durations.parse_duration(value)
        except durations.BareNumberError as error:
            if isinstance(value, str):
                raise _Invalid(error.message) from None
            return _INVALID
        except BadInputError:
            return _INVALID
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        text = value.strip().lower() if isinstance(value, str) else None
        return True if text in _TRUE else False if text in _FALSE else _INVALID
    if base is int:
        number = _integer(value)
        if number is None or (rule.minimum is not None and number < rule.minimum) or (
            rule.maximum is not None and number > rule.maximum
        ):
            return _INVALID
        return number
    if base is str:
        ok = isinstance(value, str) and len(value) >= rule.min_length
        return value if ok else _INVALID
    if base is Path:
        return Path(value) if isinstance(value, str | Path) else _INVALID
    if base == list[str]:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        return list(value) if ok else _INVALID
    if base == dict[str, int]:
        ok = isinstance(value, dict) and all(
            isinstance(name, str) and type(number) is int
            and (rule.minimum is None or number >= rule.minimum)
            for name, number in value.items()
        )
        return dict(value) if ok else _INVALID
    if get_origin(base) is Literal:
        text = value.lower() if isinstance(value, str) and rule.lowercase else value
        return text if text in get_args(base) else _INVALID
    raise TypeError(f"settings key {field.key!r}: no check for {base!r}")


def _integer(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    return None


def _canonical_key(key: str) -> str | None:
    key = _KEY_ALIASES.get(key, key)
    return key if key in FIELD_BY_KEY else None


def _unknown_key_message(key: str) -> str:
    import difflib  # only for this message

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
    import tomllib  # only when there is a file: most commands run without one

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
    if FIELDS[key].annotation == list[str]:
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
    settings = Settings.__new__(Settings)
    settings._assign(merged, sources)
    settings._config_file = config_file
    return settings
