"""The ``gw`` application: a click group that imports a command's module only when that
command is looked up.

``gw add-job x`` imports click, ``cli/add_job_cmd.py`` and what the command itself runs; a
worker start-up does not pay for the admin UI, the jobs API or the tables of the other
commands.
``gw --help`` lists the commands from ``SUMMARIES`` and imports none of their modules.
``gw --version`` builds nothing.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click

    from graphile_worker_cli.cli import commands

COMMANDS = {
    "run": ("run_cmd", "run_command"),
    "migrate": ("migrate_cmd", "migrate_command"),
    "add-job": ("add_job_cmd", "add_job_command"),
    "cleanup": ("jobs_cmd", "cleanup_command"),
    "admin": ("admin_cmd", "admin_command"),
    "jobs": ("jobs_cmd", "jobs_group"),
    "config": ("config_cmd", "config_group"),
    "cron": ("cron_cmd", "cron_group"),
    "workers": ("workers_cmd", "workers_group"),
}
"""Each top-level command, in the order ``gw --help`` lists them: its module in
``graphile_worker_cli.cli`` and the click command there."""

SUMMARIES = {
    "run": "Run a worker until stopped (--once: until no job is runnable).",
    "migrate": "Migrate the schema (Graphile Worker 0.18.0, then gw's).",
    "add-job": "Queue a job and print its id.",
    "cleanup": "Delete unused task names and queues, failed jobs.",
    "admin": "Serve the admin dashboard (jobs, queues, workers, cron).",
    "jobs": "Inspect and manage queued jobs.",
    "config": "Inspect gw's configuration.",
    "cron": "Crontab tools: validate a file, list known crontabs.",
    "workers": "Inspect gw workers and recover the jobs of dead ones.",
}
"""Each command's summary as ``gw --help`` lists it, so that the list imports no command
module (tests/unit/test_cli_app.py keeps them equal to the commands' own summaries)."""

HELP = "Graphile Worker for Python: run and manage a PostgreSQL job queue."
EPILOG = (
    "The common options -c/--connection, -s/--schema and --config may also come before "
    "the command: gw -c URL jobs list."
)


def command(name: str) -> click.Command | None:
    """The top-level command ``name`` (its module imported now), or None."""
    where = COMMANDS.get(name)
    if where is None:
        return None
    module = importlib.import_module(f"graphile_worker_cli.cli.{where[0]}")
    found: click.Command = getattr(module, where[1])
    return found


def _make_app() -> commands.Group:
    import click

    from graphile_worker_cli.cli import commands

    class Application(commands.Group):
        """The root group: its commands come from ``COMMANDS`` as they are looked up."""

        def list_commands(self, ctx: click.Context) -> list[str]:
            return list(COMMANDS)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            return command(cmd_name)

        def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            with formatter.section("Commands"):
                formatter.write_dl(list(SUMMARIES.items()))

    def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            click.echo(version_line())
            ctx.exit()

    return Application(
        "gw", help=HELP, epilog=EPILOG, no_args_is_help=True,
        params=[click.Option(
            ["--version"], is_flag=True, expose_value=False, is_eager=True,
            callback=print_version,
            help="Print gw's version and the Graphile Worker protocol it speaks, and exit.",
        )],
    )


_app: commands.Group | None = None


def full_app() -> commands.Group:
    """The application (made on first use)."""
    global _app
    if _app is None:
        _app = _make_app()
    return _app


def version_line() -> str:
    """gw's version and the protocol it speaks, for ``gw --version`` and bug reports."""
    from graphile_worker_cli import __version__, protocol

    # sys.version's first word is what platform.python_version() gives ("3.11.7",
    # "3.13.0rc1"), without importing platform (~2 ms of a ~40 ms command).
    python = sys.version.split()[0]
    return (
        f"gw {__version__} (Graphile Worker {protocol.PROTOCOL_VERSION} protocol, "
        f"{protocol.LATEST_MIGRATION} migrations; Python {python})"
    )


def __getattr__(name: str) -> Any:
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Options every database command takes, which may also come before the command name
# (`gw -c URL jobs list`): each takes one value.
_COMMON_OPTIONS = frozenset({"-c", "--connection", "-s", "--schema", "--config"})


def hoist_common_options(args: list[str]) -> list[str]:
    """``args`` with common options given before the command moved after it.

    Click reads a group's options before the command name and a command's after it; gw's
    common options belong to the commands, so ``-c URL jobs list`` becomes
    ``jobs list -c URL`` (appended last, before any ``--``, so nested commands see them).
    Anything else before the command is left alone for click to judge.
    """
    leading: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name = arg.split("=", 1)[0]
        if name not in _COMMON_OPTIONS:
            break
        if "=" in arg and name.startswith("--"):
            leading.append(arg)
            index += 1
        elif index + 1 < len(args):
            leading += args[index:index + 2]
            index += 2
        else:
            break
    if not leading:
        return args
    rest = args[index:]
    if "--" in rest:
        cut = rest.index("--")
        return rest[:cut] + leading + rest[cut:]
    return rest + leading


def main() -> None:
    # In place: `gw run --processes N` hands sys.argv[1:] to its children.
    sys.argv[1:] = hoist_common_options(sys.argv[1:])
    args = sys.argv[1:]
    if args == ["--version"]:
        # Answered without building the application (or importing click at all).
        sys.stdout.write(version_line() + "\n")
        return
    if args[:1] == ["add-job"]:
        # A command of one statement whose time is mostly imports: without the cyclic
        # collector, importing click, asyncio and asyncpg runs no collection (~40 of them,
        # a few ms) and neither does the exit. What it allocates is freed by reference
        # counting or at exit. Long-running commands keep the collector.
        import gc

        gc.disable()
    full_app().main(args)
