"""``gw run``: settings from flags, then the library runner (``graphile_worker_cli.runner``)
runs the worker until it is told to stop; its errors become one line and an exit code."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from graphile_worker_cli.cli import common

if TYPE_CHECKING:
    from graphile_worker_cli import config, logs, runner
else:
    logs = common.lazy_module("graphile_worker_cli.logs")
    runner = common.lazy_module("graphile_worker_cli.runner")
from graphile_worker_cli.errors import EXIT_USAGE, GraphileWorkerError


def register(app: typer.Typer) -> None:
    app.command("run", short_help="Run a worker until stopped (--once: until no job is runnable).")(
        run_command
    )


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
        typer.Option("--concurrency", "--jobs", "-j", help="Jobs run at once (default 10).",
                     show_default=False),
    ] = None,
    max_pool_size: Annotated[
        int | None,
        typer.Option("--max-pool-size", "-m",
                     help="Most database connections the worker's pool opens (default 10).",
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
    schema_only: Annotated[
        bool, typer.Option("--schema-only", help="Migrate the schema, then exit.")
    ] = False,
    cleanup: Annotated[
        str | None,
        typer.Option("--cleanup",
                     help="Run these cleanup tasks, then exit: a comma-separated list of "
                          "GC_JOB_QUEUES, GC_TASK_IDENTIFIERS, DELETE_PERMAFAILED_JOBS.",
                     show_default=False),
    ] = None,
    database_wait: Annotated[
        str | None,
        typer.Option("--database-wait",
                     help="At start, wait this long for an unreachable database (a "
                     "container started before PostgreSQL), e.g. 60s (default 0s).",
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
    task_timeout: Annotated[
        str | None,
        typer.Option("--task-timeout",
                     help="How long a job may run unless its task sets a timeout "
                          "(default: no limit).",
                     show_default=False),
    ] = None,
    task_max_concurrency: Annotated[
        list[str] | None,
        typer.Option("--task-max-concurrency", metavar="TASK=N",
                     help="At most N jobs of TASK at once in each worker process, whatever "
                          "the task declares (repeatable).",
                     show_default=False),
    ] = None,
    history_retention: Annotated[
        str | None,
        typer.Option("--history-retention",
                     help="Keep a record of each job completed or failed for good this long, "
                          "e.g. 7d (default: off).",
                     show_default=False),
    ] = None,
    shutdown_abort_timeout: Annotated[
        str | None,
        typer.Option("--shutdown-abort-timeout",
                     help="After the grace period, how long aborted jobs may take to return "
                          "before they are cancelled (default 5s).",
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
    jobs_vacuum_threshold: Annotated[
        int | None,
        typer.Option("--jobs-vacuum-threshold",
                     help="Vacuum the jobs table (one worker of the fleet at a time) once this "
                          "many dead rows built up, about two per finished job; 0: never "
                          "(default 100000).", show_default=False),
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
    local_queue_refetch_delay_threshold: Annotated[
        int | None,
        typer.Option("--local-queue-refetch-delay-threshold",
                     help="Only a fetch that gets at most this many jobs starts the refetch "
                          "delay (default 0).", show_default=False),
    ] = None,
    local_queue_refetch_delay_max_abort_threshold: Annotated[
        int | None,
        typer.Option("--local-queue-refetch-delay-max-abort-threshold",
                     help="Up to this many announced jobs cut the refetch delay short "
                          "(default 5 x local queue size).", show_default=False),
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
                     help="Address the metrics endpoint binds to (default 0.0.0.0).",
                     show_default=False),
    ] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More logs (repeat for more).",
                          show_default=False)
    ] = 0,
    quiet: Annotated[
        int, typer.Option("--quiet", "-q", count=True, help="Fewer logs (repeat for fewer).",
                          show_default=False)
    ] = 0,
) -> None:
    """Run a worker: fetch jobs, run them, until SIGINT/SIGTERM (or, with --once, until
    no job is runnable)."""
    settings = common.load_settings(
        connection, schema, config_path,
        tasks=tasks_dir,
        tasks_modules=tasks_module or None,
        concurrency=concurrency,
        max_pg_conn=max_pool_size,
        poll_interval=poll_interval,
        migrate=False if no_migrate else None,
        database_wait=database_wait,
        forbidden_flags=forbidden_flag or None,
        crontab=crontab,
        shutdown_grace_period=shutdown_grace_period,
        task_timeout=task_timeout,
        task_max_concurrency=task_max_concurrency or None,
        history_retention=history_retention,
        shutdown_abort_timeout=shutdown_abort_timeout,
        log_format=log_format,
        heartbeat_interval=heartbeat_interval,
        sweep_interval=sweep_interval,
        sweep_threshold=sweep_threshold,
        recovery_delay=recovery_delay,
        worker_recovery=False if no_worker_recovery else None,
        direct_database_url=direct_database_url,
        jobs_vacuum_threshold=jobs_vacuum_threshold,
        local_queue_size=local_queue_size,
        local_queue_ttl=local_queue_ttl,
        local_queue_refetch_delay=local_queue_refetch_delay,
        local_queue_refetch_delay_threshold=local_queue_refetch_delay_threshold,
        local_queue_refetch_delay_max_abort_threshold=(
            local_queue_refetch_delay_max_abort_threshold
        ),
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
    if schema_only or cleanup is not None:
        _maintain(settings, schema_only=schema_only, cleanup=cleanup)
        return
    _import_from_the_working_directory()
    worker_runner = runner.Runner(
        settings, once=once, handle_signals=True, child_args=sys.argv[1:]
    )
    try:
        worker_runner.load()
        # Everything imported and loaded so far lives until exit: move it out of the
        # collector's reach. Full collections during the run then skip it, and so does the
        # interpreter's final collection at exit.
        gc.freeze()
        code = worker_runner.run_forever()
    except KeyboardInterrupt:
        common.fail("interrupted", 130)
    except GraphileWorkerError as error:
        common.fail(error.message, error.exit_code)
    if code != 0:
        raise typer.Exit(code)


def _import_from_the_working_directory() -> None:
    """Put the working directory first on ``sys.path``, as ``python -m`` does: a console
    script's path starts at its own bin directory, so ``--tasks-module myapp.tasks`` and
    ``plugins = ["myapp.plug:X"]`` would not find the project's own packages."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _maintain(settings: config.Settings, *, schema_only: bool, cleanup: str | None) -> None:
    """``--schema-only`` and ``--cleanup``: the reference's one-shot modes of its worker
    command. Both migrate first (unless ``migrate`` is off), then do their one thing."""
    from graphile_worker_cli import job_input, migrate
    from graphile_worker_cli.worker_utils import configured_worker_utils

    try:
        tasks = [job_input.cleanup_task(name.strip())
                 for name in (cleanup or "").split(",") if name.strip()]
    except GraphileWorkerError as error:
        common.fail(f"option --cleanup: {error.message}", error.exit_code)
    if cleanup is not None and not tasks:
        common.fail("option --cleanup: name at least one cleanup task", EXIT_USAGE)

    async def maintain() -> dict[job_input.CleanupTask, int]:
        if schema_only or settings.migrate:
            await migrate.migrate_configured_database(settings, what="gw run")
        if not tasks:
            return {}
        async with configured_worker_utils(settings) as worker_utils:
            return await worker_utils.cleanup(tasks)

    for task, count in common.run(maintain()).items():
        sys.stdout.write(f"{task.value}: deleted {count}\n")
