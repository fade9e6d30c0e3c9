"""``gw run``: load tasks (and a crontab), then run a worker until it is told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from graphile_worker_cli import config, db, embedded, hooks, logs, migrate, tasks
from graphile_worker_cli.cli import common
from graphile_worker_cli.errors import EXIT_USAGE, BadInputError
from graphile_worker_cli.worker import ShutdownSignal, WorkerOptions, threads
from graphile_worker_cli.worker import processes as processes_mod
from graphile_worker_cli.worker.shutdown import os_signal_handlers

if TYPE_CHECKING:
    from graphile_worker_cli import cron

T = TypeVar("T")

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
    database_wait: Annotated[
        str | None,
        typer.Option("--database-wait",
                     help="At start, wait this long for an unreachable database (a "
                     "container started before PostgreSQL), e.g. 60s [default: 0s].",
                     show_default=False),
    ] = None,
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
    direct_database_url: Annotated[
        str | None,
        typer.Option("--direct-database-url",
                     help="A direct PostgreSQL URL for the worker's liveness session (needed "
                          "behind PgBouncer in transaction mode).", show_default=False),
    ] = None,
    no_worker_recovery: Annotated[
        bool, typer.Option("--no-worker-recovery",
                           help="No heartbeats and no sweeping of dead workers.")
    ] = False,
    local_queue_size: Annotated[
        int | None,
        typer.Option("--local-queue-size",
                     help="Jobs fetched at once and kept ready for free slots; 0 = off "
                          "(default 0).", show_default=False),
    ] = None,
    local_queue_ttl: Annotated[
        str | None,
        typer.Option("--local-queue-ttl",
                     help="Hand back local-queue jobs not started within this (default 60s).",
                     show_default=False),
    ] = None,
    local_queue_refetch_delay: Annotated[
        str | None,
        typer.Option("--local-queue-refetch-delay",
                     help="After a short fetch, wait about this long before the next one "
                          "(default 0s).", show_default=False),
    ] = None,
    complete_job_batch_delay: Annotated[
        str | None,
        typer.Option("--complete-job-batch-delay",
                     help="Collect completions this long, then write them in one statement "
                          "(default 0s: what finished meanwhile still goes together).",
                     show_default=False),
    ] = None,
    fail_job_batch_delay: Annotated[
        str | None,
        typer.Option("--fail-job-batch-delay",
                     help="Collect failures this long, then write them in one statement "
                          "(default 0s).", show_default=False),
    ] = None,
    no_prepared_statements: Annotated[
        bool, typer.Option("--no-prepared-statements",
                           help="Do not cache prepared statements (PgBouncer transaction mode).")
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option("--processes",
                     help="Worker processes run under one supervisor (default 1).",
                     show_default=False),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="auto, rich, plain or json.", show_default=False),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port",
                     help="Serve Prometheus metrics on this port (needs the metrics extra).",
                     show_default=False),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option("--metrics-host",
                     help="Address the metrics endpoint binds to [default: 0.0.0.0].",
                     show_default=False),
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
        database_wait=database_wait,
        forbidden_flags=forbidden_flag or None,
        crontab=crontab,
        shutdown_grace_period=shutdown_grace_period,
        log_format=log_format,
        heartbeat_interval=heartbeat_interval,
        sweep_interval=sweep_interval,
        sweep_threshold=sweep_threshold,
        recovery_delay=recovery_delay,
        worker_recovery=False if no_worker_recovery else None,
        direct_database_url=direct_database_url,
        local_queue_size=local_queue_size,
        local_queue_ttl=local_queue_ttl,
        local_queue_refetch_delay=local_queue_refetch_delay,
        complete_job_batch_delay=complete_job_batch_delay,
        fail_job_batch_delay=fail_job_batch_delay,
        prepared_statements=False if no_prepared_statements else None,
        processes=processes,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
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
    supervised = os.environ.get(processes_mod.CHILD_ENV) is not None
    if supervised:
        # A child of `--processes N`: the supervisor resolved the URL and migrated.
        url = os.environ.get(processes_mod.CHILD_URL_ENV) or settings.database_url
        settings = settings.model_copy(update={"database_url": url, "migrate": False})
    # Everything imported and loaded so far lives until exit: move it out of the collector's
    # reach. Full collections during the run then skip it, and so does the interpreter's
    # final collection at exit (~40 ms of `gw run --once` otherwise).
    gc.freeze()
    try:
        if settings.processes > 1 and not supervised:
            _check_plugins(settings)  # each child loads them; fail once, here, if broken
            code = common.run(run_supervisor(settings, sys.argv[1:]))
            raise typer.Exit(code)
        worker_hooks = _load_hooks(settings)
        _run(run_worker(settings, registry, crontabs, once=once, worker_hooks=worker_hooks))
    except KeyboardInterrupt:
        common.fail("interrupted", 130)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``common.run`` on uvloop when it is installed (a faster event loop for the hot path)."""
    try:
        import uvloop
    except ImportError:
        return common.run(coroutine)
    # A loop factory, not an event loop policy: policies are deprecated from Python 3.14.
    return common.run(coroutine, loop_factory=uvloop.new_event_loop)


async def run_supervisor(settings: config.Settings, argv: list[str]) -> int:
    """Resolve the database, migrate once, then run ``settings.processes`` children."""
    async with embedded.database_url(settings) as url:
        if settings.migrate:

            async def migrate_once() -> None:
                async with db.connection(url) as conn:
                    await migrate.migrate(conn, settings.schema_name)

            await db.when_reachable(migrate_once, settings.database_wait)
        env = {**os.environ, processes_mod.CHILD_URL_ENV: url}
        supervisor = processes_mod.Supervisor(
            processes_mod.child_command(argv), env, settings.processes
        )
        return await supervisor.run()


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
    from graphile_worker_cli import cron  # imported only when there is a crontab to parse

    return list(cron.parse_crontab_file(path))


def _check_plugins(settings: config.Settings) -> None:
    try:
        hooks.load_plugins(settings.plugins)
    except BadInputError as error:
        common.fail(error.message, error.exit_code)


def _load_hooks(settings: config.Settings) -> hooks.HookRegistry:
    """Plugins from settings and the metrics endpoint; a one-line error (exit 2) when one
    cannot be loaded or the port is taken. A supervised child serves metrics on
    ``metrics_port + its slot``."""
    from graphile_worker_cli.observability import setup

    slot = os.environ.get(processes_mod.CHILD_ENV)
    offset = int(slot) if slot and slot.isdigit() else 0
    try:
        return setup.hooks_from_settings(settings, metrics_offset=offset)
    except BadInputError as error:
        common.fail(error.message, error.exit_code)


async def run_worker(
    settings: config.Settings, registry: tasks.TaskRegistry, crontabs: list[cron.Crontab], *,
    once: bool, worker_hooks: hooks.HookRegistry | None = None,
) -> None:
    # Sync handlers aborted at shutdown must not keep the process alive.
    asyncio.get_running_loop().set_default_executor(
        threads.DaemonThreadExecutor(max(settings.concurrency + 4, 8))
    )
    # Signals are caught from the start: one that arrives while the embedded server starts,
    # the schema migrates or the pool opens stops start-up instead of being lost.
    stop = ShutdownSignal()
    with os_signal_handlers(lambda sig: stop.set(f"received {sig.name}")):
        async with embedded.database_url(settings) as url:
            options = WorkerOptions.from_settings(
                settings, registry, database_url=url, crontabs=crontabs, shutdown_signal=stop
            )
            if worker_hooks is not None:
                options.hooks.merge(worker_hooks)
            worker = await _unless_stopped(
                db.when_reachable(options.init, settings.database_wait), stop
            )
            if worker is None:
                log.warning("%s during start-up: stopped before running any job", stop.reason)
                return
            # The worker installs its own handlers (with its grace-period messages) while
            # it runs; a signal received before makes it wind down at once.
            if once:
                await worker.run_once()
            else:
                await worker.run()


async def _unless_stopped(starting: Coroutine[Any, Any, T], stop: ShutdownSignal) -> T | None:
    """Await ``starting`` unless ``stop`` is set first; then cancel it and return None."""
    task = asyncio.ensure_future(starting)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
