"""``gw run``: load tasks (and a crontab), then run a worker until it is told to stop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from graphile_worker_cli import config, cron, embedded, logs, tasks
from graphile_worker_cli.cli import common
from graphile_worker_cli.errors import EXIT_USAGE, BadInputError
from graphile_worker_cli.worker import WorkerOptions, threads

log = logging.getLogger("gw.worker")

DEFAULT_TASKS_DIR = Path("tasks")
DEFAULT_CRONTAB = Path("crontab")
NO_TASKS = (
    "no tasks found: pass --tasks DIR (a directory of task files) or --tasks-module MODULE, "
    "set `tasks`/`tasks_modules` in worker.toml, or create ./tasks"
)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)


def run_command(
    connection: common.ConnectionOption = None,
    schema: common.SchemaOption = None,
    config_path: common.ConfigOption = None,
    tasks_dir: Annotated[
        Path | None,
        typer.Option("--tasks", help="Directory of task files (default ./tasks when present).",
                     show_default=False),
    ] = None,
    tasks_module: Annotated[
        list[str] | None,
        typer.Option("--tasks-module", help="Python module that defines tasks (repeatable).",
                     show_default=False),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-j", help="Jobs run at once (default 10).",
                     show_default=False),
    ] = None,
    poll_interval: Annotated[
        str | None,
        typer.Option("--poll-interval", help="How often to look for due jobs (default 2s).",
                     show_default=False),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run the jobs runnable now, then exit.")
    ] = False,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Do not migrate the schema on start.")
    ] = False,
    forbidden_flag: Annotated[
        list[str] | None,
        typer.Option("--forbidden-flag", help="Skip jobs with this flag (repeatable).",
                     show_default=False),
    ] = None,
    crontab: Annotated[
        Path | None,
        typer.Option("--crontab", help="Crontab file (default ./crontab when present).",
                     show_default=False),
    ] = None,
    shutdown_grace_period: Annotated[
        str | None,
        typer.Option("--shutdown-grace-period",
                     help="How long running jobs may finish after a stop signal (default 30s).",
                     show_default=False),
    ] = None,
    heartbeat_interval: Annotated[
        str | None,
        typer.Option("--heartbeat-interval",
                     help="How often this worker records that it is alive (default 10s).",
                     show_default=False),
    ] = None,
    sweep_interval: Annotated[
        str | None,
        typer.Option("--sweep-interval",
                     help="How often to look for dead workers (default 30s).",
                     show_default=False),
    ] = None,
    sweep_threshold: Annotated[
        str | None,
        typer.Option("--sweep-threshold",
                     help="Heartbeat age after which a gw worker is dead (default 60s).",
                     show_default=False),
    ] = None,
    recovery_delay: Annotated[
        str | None,
        typer.Option("--recovery-delay",
                     help="Delay before jobs of a dead worker run again (default 0s).",
                     show_default=False),
    ] = None,
    no_worker_recovery: Annotated[
        bool, typer.Option("--no-worker-recovery",
                           help="No heartbeats and no sweeping of dead workers.")
    ] = False,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="auto, rich, plain or json.", show_default=False),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
    quiet: Annotated[int, typer.Option("--quiet", "-q", count=True, help="Fewer logs.")] = 0,
) -> None:
    """Run a worker: fetch jobs, run them, until SIGINT/SIGTERM (or, with --once, until
    no job is runnable)."""
    settings = common.load_settings(
        connection, schema, config_path,
        tasks=tasks_dir,
        tasks_modules=tasks_module or None,
        concurrency=concurrency,
        poll_interval=poll_interval,
        migrate=False if no_migrate else None,
        forbidden_flags=forbidden_flag or None,
        crontab=crontab,
        shutdown_grace_period=shutdown_grace_period,
        log_format=log_format,
        heartbeat_interval=heartbeat_interval,
        sweep_interval=sweep_interval,
        sweep_threshold=sweep_threshold,
        recovery_delay=recovery_delay,
        worker_recovery=False if no_worker_recovery else None,
    )
    logs.configure(
        fmt=settings.log_format,
        level=logs.level_from_verbosity(verbose, quiet, default=settings.log_level),
    )
    try:
        registry = load_registry(settings)
        crontabs = load_crontabs(settings)
    except BadInputError as error:
        common.fail(error.message, error.exit_code)
    if len(registry) == 0:
        common.fail(NO_TASKS, EXIT_USAGE)
    try:
        common.run(run_worker(settings, registry, crontabs, once=once))
    except KeyboardInterrupt:
        common.fail("interrupted", 130)


def load_registry(settings: config.Settings) -> tasks.TaskRegistry:
    """Tasks from the directory, the modules and the entry points, in one registry."""
    directory = settings.tasks
    if directory is None and DEFAULT_TASKS_DIR.is_dir():
        directory = DEFAULT_TASKS_DIR
    return tasks.load_tasks(directory, settings.tasks_modules)


def load_crontabs(settings: config.Settings) -> list[cron.Crontab]:
    path = settings.crontab
    if path is None:
        if not DEFAULT_CRONTAB.is_file():
            return []
        path = DEFAULT_CRONTAB
    return list(cron.parse_crontab_file(path))


async def run_worker(
    settings: config.Settings, registry: tasks.TaskRegistry, crontabs: list[cron.Crontab], *,
    once: bool,
) -> None:
    # Sync handlers aborted at shutdown must not keep the process alive.
    asyncio.get_running_loop().set_default_executor(
        threads.DaemonThreadExecutor(max(settings.concurrency + 4, 8))
    )
    async with embedded.database_url(settings) as url:
        options = WorkerOptions.from_settings(
            settings, registry, database_url=url, crontabs=crontabs
        )
        worker = await options.init()
        if once:
            await worker.run_once()
        else:
            await worker.run()
