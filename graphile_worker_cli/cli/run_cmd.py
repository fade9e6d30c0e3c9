"""``gw run``: settings from flags, then the library runner (``graphile_worker_cli.runner``)
runs the worker until it is told to stop; its errors become one line and an exit code."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from click.exceptions import Exit

from graphile_worker_cli.cli import common
from graphile_worker_cli.cli.commands import command, option, path_type

if TYPE_CHECKING:
    from graphile_worker_cli import config, logs, runner
else:
    logs = common.lazy_module("graphile_worker_cli.logs")
    runner = common.lazy_module("graphile_worker_cli.runner")
from graphile_worker_cli.errors import EXIT_USAGE, GraphileWorkerError


@command("run", short_help="Run a worker until stopped (--once: until no job is runnable).")
@common.database_options
@option("--tasks", "tasks_dir", type=path_type(),
        help="Directory of task files (default ./tasks when present).")
@option("--tasks-module", multiple=True,
        help="Python module that defines tasks (repeatable).")
@option("--concurrency", "--jobs", "-j", type=int,
        help="Jobs run at once (default 10).")
@option("--max-pool-size", "-m", type=int,
        help="Most database connections the worker's pool opens (default 10).")
@option("--poll-interval",
        help="How often to look for due jobs (default 2s).")
@option("--once", is_flag=True,
        help="Run the jobs runnable now, then exit.")
@option("--schema-only", is_flag=True,
        help="Migrate the schema, then exit.")
@option("--cleanup",
        help="Run these cleanup tasks, then exit: a comma-separated list of GC_JOB_QUEUES, "
        "GC_TASK_IDENTIFIERS, DELETE_PERMAFAILED_JOBS.")
@option("--database-wait",
        help="At start, wait this long for an unreachable database (a container started before "
        "PostgreSQL), e.g. 60s (default 0s).")
@option("--no-migrate", is_flag=True,
        help="Do not migrate the schema on start.")
@option("--forbidden-flag", multiple=True,
        help="Skip jobs with this flag (repeatable).")
@option("--crontab", type=path_type(),
        help="Crontab file (default ./crontab when present).")
@option("--shutdown-grace-period",
        help="How long running jobs may finish after a stop signal (default 30s).")
@option("--task-timeout",
        help="How long a job may run unless its task sets a timeout (default: no limit).")
@option("--task-max-concurrency", multiple=True, metavar="TASK=N",
        help="At most N jobs of TASK at once in each worker process, whatever the task "
        "declares (repeatable).")
@option("--history-retention",
        help="Keep a record of each job completed or failed for good this long, e.g. 7d "
        "(default: off).")
@option("--shutdown-abort-timeout",
        help="After the grace period, how long aborted jobs may take to return before they are "
        "cancelled (default 5s).")
@option("--heartbeat-interval",
        help="How often this worker records that it is alive (default 10s).")
@option("--sweep-interval",
        help="How often to look for dead workers (default 30s).")
@option("--sweep-threshold",
        help="Heartbeat age after which a gw worker is dead (default 60s).")
@option("--recovery-delay",
        help="Delay before jobs of a dead worker run again (default 0s).")
@option("--direct-database-url",
        help="A direct PostgreSQL URL for the worker's liveness session (needed behind "
        "PgBouncer in transaction mode).")
@option("--jobs-vacuum-threshold", type=int,
        help="Vacuum the jobs table (one worker of the fleet at a time) once this many dead "
        "rows built up, about two per finished job; 0: never (default 50000).")
@option("--no-worker-recovery", is_flag=True,
        help="No heartbeats and no sweeping of dead workers.")
@option("--local-queue-size", type=int,
        help="Jobs fetched at once and kept ready for free slots; 0 = off (default 0).")
@option("--local-queue-ttl",
        help="Hand back local-queue jobs not started within this (default 60s).")
@option("--local-queue-refetch-delay",
        help="After a short fetch, wait about this long before the next one (default 0s).")
@option("--local-queue-refetch-delay-threshold", type=int,
        help="Only a fetch that gets at most this many jobs starts the refetch delay (default 0).")
@option("--local-queue-refetch-delay-max-abort-threshold", type=int,
        help="Up to this many announced jobs cut the refetch delay short (default 5 x local queue "
        "size).")
@option("--complete-job-batch-delay",
        help="Collect completions this long, then write them in one statement (default 0s: what "
        "finished meanwhile still goes together).")
@option("--fail-job-batch-delay",
        help="Collect failures this long, then write them in one statement (default 0s).")
@option("--no-prepared-statements", is_flag=True,
        help="Do not cache prepared statements (PgBouncer transaction mode).")
@option("--processes", type=int,
        help="Worker processes run under one supervisor (default 1).")
@option("--log-format",
        help="auto, rich, plain or json.")
@option("--metrics-port", type=int,
        help="Serve Prometheus metrics on this port (needs the metrics extra).")
@option("--metrics-host",
        help="Address the metrics endpoint binds to (default 0.0.0.0).")
@option("--verbose", "-v", count=True,
        help="More logs (repeat for more).")
@option("--quiet", "-q", count=True,
        help="Fewer logs (repeat for fewer).")
def run_command(
    connection: str | None, schema: str | None, config_path: Path | None,
    tasks_dir: Path | None, tasks_module: tuple[str, ...], concurrency: int | None,
    max_pool_size: int | None, poll_interval: str | None, once: bool, schema_only: bool,
    cleanup: str | None, database_wait: str | None, no_migrate: bool,
    forbidden_flag: tuple[str, ...], crontab: Path | None, shutdown_grace_period: str | None,
    task_timeout: str | None, task_max_concurrency: tuple[str, ...],
    history_retention: str | None, shutdown_abort_timeout: str | None,
    heartbeat_interval: str | None, sweep_interval: str | None, sweep_threshold: str | None,
    recovery_delay: str | None, direct_database_url: str | None,
    jobs_vacuum_threshold: int | None, no_worker_recovery: bool,
    local_queue_size: int | None, local_queue_ttl: str | None,
    local_queue_refetch_delay: str | None, local_queue_refetch_delay_threshold: int | None,
    local_queue_refetch_delay_max_abort_threshold: int | None,
    complete_job_batch_delay: str | None, fail_job_batch_delay: str | None,
    no_prepared_statements: bool, processes: int | None, log_format: str | None,
    metrics_port: int | None, metrics_host: str | None, verbose: int, quiet: int,
) -> None:
    """Run a worker: fetch jobs, run them, until SIGINT/SIGTERM (or, with --once, until
    no job is runnable)."""
    settings = common.load_settings(
        connection, schema, config_path,
        tasks=tasks_dir,
        tasks_modules=list(tasks_module) or None,
        concurrency=concurrency,
        max_pg_conn=max_pool_size,
        poll_interval=poll_interval,
        migrate=False if no_migrate else None,
        database_wait=database_wait,
        forbidden_flags=list(forbidden_flag) or None,
        crontab=crontab,
        shutdown_grace_period=shutdown_grace_period,
        task_timeout=task_timeout,
        task_max_concurrency=list(task_max_concurrency) or None,
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
        raise Exit(code)


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
