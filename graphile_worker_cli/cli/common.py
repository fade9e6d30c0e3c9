"""What every command shares: the common options, settings loading, running a coroutine
with gw's errors turned into one line and an exit code, and output helpers."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from click.exceptions import Exit

from graphile_worker_cli.cli.commands import option, path_type
from graphile_worker_cli.errors import EXIT_FAILURE, GraphileWorkerError

if TYPE_CHECKING:
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from graphile_worker_cli import config

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

connection_option = option(
    "--connection", "-c",
    help="PostgreSQL URL (default: DATABASE_URL, else the PG* variables, else an embedded "
    "server).",
)
schema_option = option(
    "--schema", "-s",
    help="Graphile Worker schema (default graphile_worker; env GRAPHILE_WORKER_SCHEMA).",
)
config_option = option(
    "--config", "config_path", type=path_type(),
    help="TOML config file (default ./worker.toml when present).",
)
json_option = option("--json", "json_output", is_flag=True, help="Print JSON for machines.")


def database_options(function: F) -> F:
    """-c/--connection, -s/--schema and --config (as ``connection``, ``schema``,
    ``config_path``): the options of every command that opens the database."""
    return connection_option(schema_option(config_option(function)))


_consoles: dict[str, Console] = {}


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, imported when one of its attributes is first used.

    Command modules name the library modules they call this way, so that ``gw --help`` (which
    registers every command) and each command load only what they run.
    """
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def __getattr__(name: str) -> Any:
    """``stdout`` / ``stderr``: rich consoles, made (and rich imported) on first use — a
    worker that never prints to them does not pay for the import at start-up."""
    if name in ("stdout", "stderr"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Output to a pipe or file is as wide as its longest line (within reason) rather than the
# 80 columns rich assumes: a table row stays one line for grep, and nothing is cut.
_PIPE_WIDTH = 4000


def _console(name: str) -> Console:
    console = _consoles.get(name)
    if console is None:
        import os

        from rich.console import Console

        stream = sys.stderr if name == "stderr" else sys.stdout
        wide = not _is_terminal(stream) and not os.environ.get("COLUMNS")
        console = _consoles[name] = Console(
            stderr=name == "stderr", width=_PIPE_WIDTH if wide else None
        )
    return console


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def table(*columns: str, **options: Any) -> Table:
    """A rich table whose cells wrap (folding long words) in a narrow terminal instead of
    ending in "…": ids, names, keys, URLs and times are never cut."""
    from rich.table import Column, Table

    return Table(*(Column(name, overflow="fold") for name in columns), **options)


def load_settings(
    connection: str | None, schema: str | None, config_path: Path | None, **overrides: Any
) -> config.Settings:
    """Settings from every source, with these CLI values on top (None means not given).

    A bad value anywhere is one error line and exit code 2, never a traceback.
    """
    from graphile_worker_cli import config

    try:
        return config.load_settings(
            config_path, {"database_url": connection, "schema": schema, **overrides}
        )
    except GraphileWorkerError as error:
        fail(error.message, error.exit_code)


def fail(message: str, exit_code: int = EXIT_FAILURE) -> NoReturn:
    """Print one error line to stderr and exit."""
    # The message is escaped: it may quote user text with brackets (TOML tables, lists).
    from rich.markup import escape

    _console("stderr").print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True
    )
    raise Exit(exit_code)


def run(
    coroutine: Coroutine[Any, Any, T],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run a coroutine (on a loop from ``loop_factory`` if given); a GraphileWorkerError
    becomes one line on stderr and its exit code."""
    import asyncio

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coroutine)
    except GraphileWorkerError as error:
        fail(error.message, error.exit_code)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str, indent=2) + "\n")
