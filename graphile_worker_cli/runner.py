"""The worker ``gw run`` starts, as a library: ``Runner`` and ``run``.

``Runner`` does what ``gw run`` does from settings: loads the tasks (directory, modules,
entry points) and the crontab, loads the plugins and the metrics endpoint, starts the
embedded database when no URL is configured, migrates, and runs one worker — or, with
``processes`` above 1, a supervisor of that many worker processes.

Two ways to use it:

- inside an asyncio application (an ASGI lifespan, say)::

      async with Runner(settings) as runner:   # started: migrated, fetching jobs
          ...                                  # leaving stops it gracefully

  ``await runner.stop()`` stops it earlier (a second call cuts the grace period short) and
  ``await runner.wait()`` waits for it to end on its own. Process signals are the
  application's: the runner installs no handler unless ``handle_signals=True``.
- from a script: ``run(...)`` or ``Runner(...).run_forever()`` blocks until SIGINT/SIGTERM
  (or, with ``once=True``, until no job is runnable), like ``gw run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from graphile_worker_cli import config, db, embedded, migrate
from graphile_worker_cli import hooks as gw_hooks
from graphile_worker_cli import tasks as gw_tasks
from graphile_worker_cli.errors import BadInputError
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
STOP_REASON = "the runner was stopped"


def load_registry(settings: config.Settings) -> gw_tasks.TaskRegistry:
    """Tasks from the directory (default ./tasks when present), the modules and the entry
    points, in one registry. Raises ``TaskLoadError`` (exit code 2)."""
    directory = settings.tasks
    if directory is None and DEFAULT_TASKS_DIR.is_dir():
        directory = DEFAULT_TASKS_DIR
    return gw_tasks.load_tasks(directory, settings.tasks_modules)


def load_crontabs(settings: config.Settings) -> list[cron.Crontab]:
    """The items of the crontab file (default ./crontab when present); none without one.
    Raises ``CrontabError`` (exit code 2)."""
    path = settings.crontab
    if path is None:
        if not DEFAULT_CRONTAB.is_file():
            return []
        path = DEFAULT_CRONTAB
    from graphile_worker_cli import cron  # imported only when there is a crontab to parse

    return list(cron.parse_crontab_file(path))


CHILD_TASKS_ENV = "GW_SUPERVISOR_TASK_HANDLERS"
"""A JSON array of ``module:qualname``: the ``task_handlers`` a supervisor's children import."""


def child_task_path(obj: object, processes: int) -> str:
    """``module:qualname`` that imports back to ``obj`` in a child process; BadInputError
    (exit code 2) when there is none, saying why."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    name = qualname if isinstance(qualname, str) else repr(obj)
    if not isinstance(module, str) or not isinstance(qualname, str):
        problem = "it has no module-level name"
    elif module == "__main__":
        problem = "it is defined in __main__ (the script being run), which a child does not run"
    elif "<locals>" in qualname or "<lambda>" in qualname:
        problem = "it is defined inside a function"
    else:
        try:
            found = _import_path(f"{module}:{qualname}")
        except Exception:  # any failure means the same: not importable
            found = None
        problem = "" if found is obj else f"{module}:{qualname} does not name it"
    if problem:
        raise BadInputError(
            f"task handler {name} cannot reach the {processes} worker processes: {problem}; "
            "expected a function or class at the top level of an importable module "
            "(or that module in tasks_modules)"
        )
    return f"{module}:{qualname}"


def _import_path(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def supervised_slot() -> int | None:
    """This process's slot when it is a child of a ``processes`` supervisor, else None."""
    slot = os.environ.get(processes_mod.CHILD_ENV)
    if slot is None:
        return None
    return int(slot) if slot.isdigit() else 0


class Runner:
    """Runs the worker ``gw run`` runs, from settings; see the module's docstring.

    ``settings``: a ``config.Settings``; without one, settings are read like ``gw run``
    reads them: ``config_file`` (default ./worker.toml when present) < the environment
    (``DATABASE_URL``, ``GW_<KEY>``) < ``overrides`` (keyword arguments named like the
    TOML keys, e.g. ``concurrency=4``). A bad value is a ``ConfigError`` naming its source.

    ``task_handlers``: task functions or handler classes to run besides those the settings
    name (``tasks`` is the settings key of the task directory, as in worker.toml);
    ``hooks``: a ``HookRegistry`` merged after the plugins the settings name.
    ``once``: run the jobs runnable now, then stop (``gw run --once``).
    ``handle_signals``: route SIGINT/SIGTERM/SIGHUP to a graceful stop (a second signal cuts
    the grace period short). On by default for ``run_forever``, off for ``async with``.
    ``child_args``: the ``gw`` arguments each child of ``processes > 1`` runs; by default
    ``run`` (with ``--once`` when ``once``), the settings passed as ``GW_`` variables.
    """

    def __init__(
        self,
        settings: config.Settings | None = None,
        *,
        config_file: Path | str | None = None,
        task_handlers: Iterable[Any] = (),
        hooks: gw_hooks.HookRegistry | None = None,
        once: bool = False,
        handle_signals: bool | None = None,
        child_args: Sequence[str] | None = None,
        **overrides: Any,
    ) -> None:
        if settings is not None and (config_file is not None or overrides):
            raise TypeError("Runner: pass settings, or config_file/overrides, not both")
        if settings is None:
            path = Path(config_file) if config_file is not None else None
            settings = config.load_settings(path, overrides)
        self.settings = settings
        self.once = once
        self._extra_tasks = list(task_handlers)
        self._extra_hooks = hooks
        self._handle_signals = handle_signals
        self._child_args = list(child_args) if child_args is not None else None
        self._slot = supervised_slot()
        if self._slot is not None:
            # A child of a supervisor: the supervisor resolved the URL and migrated.
            url = os.environ.get(processes_mod.CHILD_URL_ENV) or settings.database_url
            self.settings = settings.replace(database_url=url, migrate=False)
        self.registry: gw_tasks.TaskRegistry | None = None
        self.crontabs: list[cron.Crontab] = []
        self._worker_hooks: gw_hooks.HookRegistry | None = None
        self._stop = ShutdownSignal()
        self._task: asyncio.Task[int] | None = None
        self._started: asyncio.Future[None] | None = None
        self._supervisor: processes_mod.Supervisor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._child_tasks: list[str] = []
        """Where each child imports the ``task_handlers`` from (``module:qualname``)."""

    # -- loading ------------------------------------------------------------------------
    @property
    def supervises(self) -> bool:
        """True when this runner starts ``processes`` worker processes instead of a worker."""
        return self.settings.processes > 1 and self._slot is None

    def load(self) -> None:
        """Load the tasks, the crontab and the plugins (and bind the metrics port); called
        by ``start`` when not called before. Raises ``BadInputError`` (exit code 2): a task,
        the crontab or a plugin that cannot be loaded, no task at all, a taken port."""
        if self.registry is not None:
            return
        registry = load_registry(self.settings)
        for obj in self._extra_tasks:
            registry.add(gw_tasks.define_task(obj))
        if self.supervises and self._extra_tasks:
            self._child_tasks = [
                child_task_path(obj, self.settings.processes) for obj in self._extra_tasks
            ]
        elif self._slot is not None:
            for path in json.loads(os.environ.get(CHILD_TASKS_ENV) or "[]"):
                try:
                    handler = _import_path(path)
                except Exception as error:
                    raise BadInputError(
                        f"could not import task handler {path!r} passed to the supervisor: "
                        f"{type(error).__name__}: {error}"
                    ) from None
                registry.add(gw_tasks.define_task(handler))
        crontabs = load_crontabs(self.settings)
        if len(registry) == 0:
            raise BadInputError(NO_TASKS)
        if self.supervises:
            gw_hooks.load_plugins(self.settings.plugins)  # each child loads them; fail here once
        else:
            from graphile_worker_cli.observability import setup

            worker_hooks = setup.hooks_from_settings(
                self.settings, metrics_offset=self._slot or 0
            )
            if self._extra_hooks is not None:
                worker_hooks.merge(self._extra_hooks)
            self._worker_hooks = worker_hooks
        self.registry = registry
        self.crontabs = crontabs

    # -- asyncio use --------------------------------------------------------------------
    async def start(self) -> None:
        """Load, then start the worker (or the supervisor) in the background; returns once
        it is running: the database reachable, the schema migrated, the tasks registered.
        Raises what start-up raises (``GraphileWorkerError`` and its kinds)."""
        if self._task is not None:
            raise RuntimeError("a Runner starts once; make a new one")
        self.load()
        loop = self._loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._task = loop.create_task(self._main(), name="gw-runner")
        pending: set[asyncio.Future[Any]] = {self._started, self._task}
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self.request_stop("start-up was cancelled")  # no worker left running unowned
            raise
        if self._task.done():
            self._task.result()  # start-up failed: raise its error

    async def stop(self, reason: str = STOP_REASON) -> int:
        """Stop gracefully: fetch no more jobs, let running ones finish within the grace
        period, hand back the rest; then return like ``wait``. Calling it again (or while
        one call waits) cuts the grace period short."""
        self.request_stop(reason)
        return await self.wait()

    def request_stop(self, reason: str = STOP_REASON) -> None:
        """``stop`` without waiting; safe from any thread."""
        self._stop.set(reason)
        if self._supervisor is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._supervisor.request_stop)

    async def wait(self) -> int:
        """Wait for the runner to end (a stop, or with ``once`` an empty queue); return the
        exit code (0, or the supervisor's worst child exit code); raise what the worker
        raised (e.g. ``SchemaTooNewError``)."""
        if self._task is None:
            raise RuntimeError("the Runner was not started")
        return await asyncio.shield(self._task)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._stop.is_set():  # a second request would cut the grace period short
            self.request_stop()
        try:
            await self.wait()
        except Exception as stop_error:
            if error is None:
                raise
            if stop_error is not error:  # the body's error goes on; this one is logged
                log.error("the worker failed: %s", stop_error, exc_info=stop_error)

    # -- blocking use -------------------------------------------------------------------
    def run_forever(self) -> int:
        """Run until SIGINT/SIGTERM (with ``once``: until no job is runnable) on an event
        loop of its own (uvloop when installed); return the exit code (see ``wait``)."""
        self.load()
        return _run_loop(self._blocking_main())

    async def _blocking_main(self) -> int:
        # Sync handlers aborted at shutdown must not keep the process alive.
        asyncio.get_running_loop().set_default_executor(
            threads.DaemonThreadExecutor(max(self.settings.concurrency + 4, 8))
        )
        if self._handle_signals is None:
            self._handle_signals = True
        await self.start()
        return await self.wait()

    # -- internals ----------------------------------------------------------------------
    def _mark_started(self) -> None:
        if self._started is not None and not self._started.done():
            self._started.set_result(None)

    async def _main(self) -> int:
        try:
            if self.supervises:
                return await self._supervise()
            await self._run_worker()
            return 0
        finally:
            self._mark_started()

    async def _supervise(self) -> int:
        """Resolve the database, migrate once, then run ``processes`` children."""
        settings = self.settings
        async with embedded.database_url(settings) as url:
            if settings.migrate:

                async def migrate_once() -> None:
                    cache = db.statement_cache(settings.prepared_statements)
                    async with db.connection(url, **cache) as conn:
                        await migrate.migrate(conn, settings.schema_name)

                await db.when_reachable(migrate_once, settings.database_wait)
            env = {**os.environ, **self._child_env(), processes_mod.CHILD_URL_ENV: url}
            if self._child_tasks:
                env[CHILD_TASKS_ENV] = json.dumps(self._child_tasks)
            supervisor = processes_mod.Supervisor(
                processes_mod.child_command(self._child_argv()), env, settings.processes
            )
            self._supervisor = supervisor
            if self._stop.is_set():
                supervisor.request_stop()
            self._mark_started()
            return await supervisor.run(handle_signals=bool(self._handle_signals))

    def _child_argv(self) -> list[str]:
        if self._child_args is not None:
            return self._child_args
        return ["run", "--once"] if self.once else ["run"]

    def _child_env(self) -> dict[str, str]:
        """The settings as GW_ variables, for children started with the default arguments
        (the values themselves: passwords included, unlike ``Settings.redacted``)."""
        if self._child_args is not None:
            return {}
        env: dict[str, str] = {}
        for key in config.KEYS:
            value = getattr(self.settings, config.FIELD_BY_KEY[key])
            if value is not None:
                env[config.env_var(key)] = config.env_text(value)
        return env

    async def _run_worker(self) -> None:
        signals = (
            os_signal_handlers(lambda sig: self._stop.set(f"received {sig.name}"))
            if self._handle_signals else contextlib.nullcontext()
        )
        # Signals are caught from the start: one that arrives while the embedded server
        # starts, the schema migrates or the pool opens stops start-up instead of being lost.
        with signals:
            async with embedded.database_url(self.settings) as url:
                if self.registry is None:
                    raise RuntimeError("Runner.load() was not called")
                options = WorkerOptions.from_settings(
                    self.settings, self.registry, database_url=url, crontabs=self.crontabs,
                    shutdown_signal=self._stop,
                    listen_os_shutdown_signals=bool(self._handle_signals),
                )
                if self._worker_hooks is not None:
                    options.hooks.merge(self._worker_hooks)
                worker = await _unless_stopped(
                    db.when_reachable(options.init, self.settings.database_wait), self._stop
                )
                if worker is None:
                    log.warning(
                        "%s during start-up: stopped before running any job", self._stop.reason
                    )
                    return
                self._mark_started()
                # The worker installs its own handlers (with its grace-period messages) while
                # it runs; a signal received before makes it wind down at once.
                if self.once:
                    await worker.run_once()
                else:
                    await worker.run()


def run(
    settings: config.Settings | None = None,
    *,
    config_file: Path | str | None = None,
    task_handlers: Iterable[Any] = (),
    once: bool = False,
    **overrides: Any,
) -> int:
    """``Runner(...).run_forever()``: run the worker ``gw run`` runs, in this process, until
    SIGINT/SIGTERM (with ``once``: until no job is runnable); return the exit code."""
    return Runner(
        settings, config_file=config_file, task_handlers=task_handlers, once=once, **overrides
    ).run_forever()


def _run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on a new event loop: uvloop when installed (a faster loop for the
    hot path)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        # A loop factory, not an event loop policy: policies are deprecated from Python 3.14.
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as loop_runner:
        return loop_runner.run(coroutine)


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


__all__ = ["Runner", "load_crontabs", "load_registry", "run", "supervised_slot"]
