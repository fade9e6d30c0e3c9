"""``HookRegistry``: handlers by event, and the calls the worker makes at each hook point.

Hot paths test ``registry.active`` (a plain attribute: False while nothing is registered)
or ``event in registry.events`` before building a context, so a worker without hooks
allocates nothing and awaits nothing for them.

Handlers may be plain functions or coroutine functions. An observer that raises is logged
and the others still run; an interceptor that raises counts as ``fail(its message)``
(for BeforeJobRun/AfterJobRun/BeforeJobSchedule) or DEFAULT (for JobRecovery).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from graphile_worker_cli.errors import JobScheduleFailedError, JobScheduleSkippedError
from graphile_worker_cli.hooks import results

if TYPE_CHECKING:
    # Imported where used: a registry without handlers never needs the event classes.
    from graphile_worker_cli.hooks import events

__all__ = ["Handler", "HookRegistry", "Plugin"]

log = logging.getLogger("gw.hooks")

C = TypeVar("C")
R = TypeVar("R")

Handler = Callable[[C], "Awaitable[R] | R"]
SyncTaskGuard = Callable[[], AbstractContextManager[Any]]
AnyHandler = Callable[[Any], Any]


class Plugin(Protocol):
    """Something that registers several hooks at once."""

    def register(self, registry: HookRegistry) -> None: ...


def _name(handler: AnyHandler) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def _call(handler: AnyHandler, ctx: object) -> Any:
    value = handler(ctx)
    if inspect.isawaitable(value):
        value = await value
    return value


class HookRegistry:
    """Handlers registered per event, in registration order."""

    def __init__(self) -> None:
        self._handlers: dict[type[events.Event[Any, Any]], list[AnyHandler]] = {}
        self.events: frozenset[type[events.Event[Any, Any]]] = frozenset()
        """The events that have at least one handler."""
        self.active = False
        """True once any handler is registered."""
        self.plugins: list[object] = []
        self.sync_task_guards: tuple[SyncTaskGuard, ...] = ()
        """Context managers entered around each synchronous task handler, in its thread."""

    # -- registration ---------------------------------------------------------------------
    def on(self, event: type[events.Event[C, R]], handler: Handler[C, R]) -> Self:
        """Call ``handler(context)`` at ``event``; returns the registry (chainable)."""
        from graphile_worker_cli.hooks import events

        if not (isinstance(event, type) and issubclass(event, events.Event)):
            raise TypeError(f"{event!r} is not a hook event (e.g. hooks.JobStart)")
        if not callable(handler):
            raise TypeError(f"hook handler for {event.__name__} is not callable: {handler!r}")
        self._handlers.setdefault(event, []).append(handler)
        self.events = frozenset(self._handlers)
        self.active = True
        return self

    def around_sync_task(self, guard: SyncTaskGuard) -> Self:
        """Enter ``guard()`` around every synchronous (``def``) task handler, in the thread
        the handler runs in: for per-thread state such as Django's database connections
        (``contrib.django`` closes obsolete ones before and after each job)."""
        if not callable(guard):
            raise TypeError(f"sync task guard is not callable: {guard!r}")
        self.sync_task_guards = (*self.sync_task_guards, guard)
        self.active = True
        return self

    def add_plugin(self, plugin: Plugin) -> Self:
        plugin.register(self)
        self.plugins.append(plugin)
        return self

    def merge(self, other: HookRegistry) -> Self:
        """Add every handler of ``other`` after this registry's own."""
        for event, handlers in other._handlers.items():
            for handler in handlers:
                self.on(event, handler)
        self.plugins.extend(other.plugins)
        for guard in other.sync_task_guards:
            self.around_sync_task(guard)
        return self

    def handlers(self, event: type[events.Event[Any, Any]]) -> tuple[AnyHandler, ...]:
        return tuple(self._handlers.get(event, ()))

    def is_empty(self) -> bool:
        return not self.active

    def __contains__(self, event: object) -> bool:
        return event in self.events

    def __repr__(self) -> str:
        counts = ", ".join(f"{e.__name__}: {len(h)}" for e, h in self._handlers.items())
        return f"<HookRegistry {counts or 'empty'}>"

    # -- calling --------------------------------------------------------------------------
    async def emit(self, event: type[events.Observer[C]], ctx: C) -> None:
        """Call every observer of ``event``; one that raises is logged and skipped."""
        for handler in self._handlers.get(event, ()):
            try:
                await _call(handler, ctx)
            except Exception as error:
                log.error(
                    "%s hook %s raised (ignored): %s", event.__name__, _name(handler),
                    _describe(error), exc_info=error,
                    extra={"gw": {"action": "hook_error", "event": event.__name__}},
                )

    async def _intercept(self, event: type[events.Event[Any, Any]], ctx: object) -> Any:
        """The first handler result that does not carry on (``None`` when all do). A
        handler that raises yields ``HookResult.fail``."""
        for handler in self._handlers.get(event, ()):
            try:
                outcome = await _call(handler, ctx)
            except Exception as error:
                log.warning(
                    "%s hook %s raised: %s", event.__name__, _name(handler), _describe(error),
                    extra={"gw": {"action": "hook_error", "event": event.__name__}},
                )
                return results.HookResult.fail(_describe(error))
            if outcome is None:
                continue
            if not isinstance(outcome, results.HookResult):
                return results.HookResult.fail(
                    f"{event.__name__} hook {_name(handler)} returned {outcome!r}; "
                    "expected a HookResult or None"
                )
            if outcome.is_terminal:
                return outcome
        return None

    async def before_job_run(self, ctx: events.BeforeJobRunContext) -> results.HookResult:
        from graphile_worker_cli.hooks import events

        return await self._intercept(events.BeforeJobRun, ctx) or results.HookResult.CONTINUE

    async def after_job_run(self, ctx: events.AfterJobRunContext) -> results.HookResult:
        from graphile_worker_cli.hooks import events

        return await self._intercept(events.AfterJobRun, ctx) or results.HookResult.CONTINUE

    async def before_job_schedule(self, ctx: events.BeforeJobScheduleContext) -> Any:
        """The payload to store after every BeforeJobSchedule handler had its say.

        Raises ``JobScheduleSkippedError`` (skip) or ``JobScheduleFailedError`` (fail, or a
        handler that raised)."""
        from graphile_worker_cli.hooks import events

        payload = ctx.payload
        for handler in self._handlers.get(events.BeforeJobSchedule, ()):
            current = events.BeforeJobScheduleContext(ctx.identifier, payload, ctx.spec)
            try:
                outcome = await _call(handler, current)
            except Exception as error:
                raise JobScheduleFailedError(
                    f"scheduling {ctx.identifier!r} failed in a hook: {_describe(error)}"
                ) from error
            if outcome is None:
                continue
            if not isinstance(outcome, results.JobScheduleResult):
                raise JobScheduleFailedError(
                    f"BeforeJobSchedule hook {_name(handler)} returned {outcome!r}; "
                    "expected a JobScheduleResult or None"
                )
            if outcome.action is results.Action.SKIP:
                raise JobScheduleSkippedError(f"a hook skipped scheduling {ctx.identifier!r}")
            if outcome.action is results.Action.FAIL:
                raise JobScheduleFailedError(
                    f"a hook refused to schedule {ctx.identifier!r}: {outcome.message}"
                )
            if outcome.changes_payload:
                payload = outcome.payload
        return payload

    async def job_recovery(self, ctx: events.JobRecoveryContext) -> results.JobRecoveryResult:
        from graphile_worker_cli.hooks import events

        for handler in self._handlers.get(events.JobRecovery, ()):
            try:
                outcome = await _call(handler, ctx)
            except Exception as error:
                log.error(
                    "JobRecovery hook %s raised (default recovery used): %s",
                    _name(handler), _describe(error), exc_info=error,
                )
                return results.JobRecoveryResult.DEFAULT
            if isinstance(outcome, results.JobRecoveryResult) and outcome.is_terminal:
                return outcome
            if outcome is not None and not isinstance(outcome, results.JobRecoveryResult):
                log.error(
                    "JobRecovery hook %s returned %r; expected a JobRecoveryResult or None "
                    "(default recovery used)", _name(handler), outcome,
                )
                return results.JobRecoveryResult.DEFAULT
        return results.JobRecoveryResult.DEFAULT
