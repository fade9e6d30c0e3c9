"""``TaskDefinition``: one type-erased task the worker can call with a context.

``define_task`` turns a handler class or a function into a definition: it works out how
to validate the payload, whether to run in a thread, and how to read the return value.
Calling a definition never raises (except ``asyncio.CancelledError`` when the worker
cancels the job): every problem, any ``BaseException`` included, becomes a ``TaskFailure``
whose message is the job's ``last_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from graphile_worker_cli.context import WorkerContext
from graphile_worker_cli.durations import parse_duration
from graphile_worker_cli.errors import BadInputError, TaskLoadError
from graphile_worker_cli.task_outcome import TaskFailure, TaskOutcome, TaskSuccess
from graphile_worker_cli.tasks import marks, outcomes

if TYPE_CHECKING:
    from graphile_worker_cli.tasks import handlers

# pydantic (and the handler classes built on it) are imported by the definitions that
# validate a payload: a worker whose tasks take plain JSON never loads it.

Runner = Callable[[WorkerContext], Awaitable[TaskOutcome]]


class TaskDefinition:
    """A task the worker can run: ``await definition(ctx) -> TaskOutcome``."""

    def __init__(
        self, identifier: str, runner: Runner, *, source: str, handler: object, batch: bool
    ) -> None:
        self.identifier = identifier
        self.source = source
        """Where it was defined, for error messages (a file, a module, an entry point)."""
        self.handler = handler
        """The class or function this definition wraps."""
        self.batch = batch
        self._runner = runner
        self.timeout: float | None = None
        """Seconds each run may take (None: the worker's ``task_timeout``)."""
        self.backoff: marks.Backoff | None = None
        """The wait before the next attempt, given the attempts made (None: the
        reference's exponential backoff)."""
        self.max_concurrency: int | None = None
        """The most jobs of this task one worker runs at once (None: no limit but the
        worker's concurrency)."""

    async def __call__(self, ctx: WorkerContext) -> TaskOutcome:
        try:
            return await self._runner(ctx)
        except asyncio.CancelledError as error:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the worker cancelled the job (shutdown): it hands the job back
            # Raised by the task's own code (or a cancelled future it awaited): a failure.
            return TaskFailure(outcomes.describe_error(error), error=error)
        except BaseException as error:
            # KeyboardInterrupt, SystemExit, GeneratorExit... from job code are that job's
            # failure: letting them through would crash the worker and strand the job.
            return outcomes.failure_of(error)

    def __repr__(self) -> str:
        return f"<TaskDefinition {self.identifier!r} from {self.source}>"


class _InvalidPayload(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _validator(identifier: str, validate: Callable[[Any], Any]) -> Callable[[Any], Any]:
    import pydantic

    def checked(payload: Any) -> Any:
        try:
            return validate(payload)
        except pydantic.ValidationError as error:
            raise _InvalidPayload(outcomes.describe_validation_error(identifier, error)) from error

    return checked


async def _call(
    function: Callable[..., Any], args: tuple[Any, ...], ctx: WorkerContext, is_async: bool
) -> Any:
    """Await an async function, or run a sync one in a thread so the loop stays free
    (``is_async``: ``_is_async(function)``, worked out once when the task is defined)."""
    if is_async:
        return await function(*args)
    ctx.bind_loop(asyncio.get_running_loop())
    guards = ctx.hooks.sync_task_guards if ctx.hooks is not None else ()
    if guards:
        result = await asyncio.to_thread(_guarded, guards, function, args)
    else:
        result = await asyncio.to_thread(function, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _guarded(
    guards: Sequence[Callable[[], contextlib.AbstractContextManager[Any]]],
    function: Callable[..., Any],
    args: tuple[Any, ...],
) -> Any:
    """``function(*args)`` inside the hooks' sync task guards, all on this thread."""
    with contextlib.ExitStack() as stack:
        for guard in guards:
            stack.enter_context(guard())
        return function(*args)


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 - callable objects
    return call is not None and inspect.iscoroutinefunction(call)


# Batches ------------------------------------------------------------------------------


async def _run_batch(
    identifier: str,
    payload: Any,
    validate_item: Callable[[Any], Any],
    run: Callable[[list[Any]], Awaitable[Any]],
) -> TaskOutcome:
    """Validate each item (an invalid item fails alone), run the valid ones together, and
    fail only the items that failed. A non-array payload is a batch of one item whose
    failure fails the job as is."""
    single = not isinstance(payload, list)
    raw_items: list[Any] = [payload] if single else payload
    errors: list[str | None] = [None] * len(raw_items)
    valid: list[tuple[int, Any]] = []
    for index, raw in enumerate(raw_items):
        try:
            valid.append((index, validate_item(raw)))
        except _InvalidPayload as error:
            errors[index] = error.message
    if valid:
        results = await run([item for _, item in valid])
        problem = outcomes.check_batch_results(identifier, results, len(valid))
        if problem is not None:
            return problem
        for (index, _), result in zip(valid, results, strict=True):
            errors[index] = outcomes.item_error(result, whole_job=single)
    if single:
        return TaskFailure(errors[0]) if errors[0] else TaskSuccess()
    return outcomes.batch_outcome(identifier, raw_items, errors)


# define_task --------------------------------------------------------------------------


def define_task(
    obj: object,
    identifier: str | None = None,
    *,
    batch: bool | None = None,
    source: str | None = None,
) -> TaskDefinition:
    """A definition for a TaskHandler / BatchTaskHandler subclass or a function.

    The identifier is, in order: ``identifier``, the ``@task`` mark's, the class's
    ``IDENTIFIER``, the function's ``__name__``. ``batch`` makes a function a batch task
    (``@task(batch=True)`` does the same). The timeout and backoff come from the mark
    (``@task(timeout=..., backoff=...)``) or the class (``TIMEOUT``, ``BACKOFF``), and so
    does the per-worker limit (``max_concurrency``, ``MAX_CONCURRENCY``).
    """
    definition = _define(obj, identifier, batch=batch, source=source)
    mark = marks.task_mark(obj)
    timeout = mark.timeout if mark else getattr(obj, "TIMEOUT", None)
    backoff = mark.backoff if mark else getattr(obj, "BACKOFF", None)
    if timeout is not None:
        try:
            definition.timeout = parse_duration(timeout)
        except BadInputError as error:
            raise TaskLoadError(f"{definition.source}: timeout: {error.message}") from None
        if definition.timeout <= 0:
            raise TaskLoadError(f"{definition.source}: timeout must be more than 0")
    if backoff is not None and not callable(backoff):
        raise TaskLoadError(
            f"{definition.source}: backoff must be a function of the attempts made"
        )
    definition.backoff = backoff
    limit = mark.max_concurrency if mark else getattr(obj, "MAX_CONCURRENCY", None)
    definition.max_concurrency = _max_concurrency(limit, definition.source)
    return definition


def _max_concurrency(value: object, where: str) -> int | None:
    """``value`` checked as a task's ``max_concurrency``: None, or a whole number >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TaskLoadError(
            f"{where}: max_concurrency must be a whole number of at least 1 (or None for no "
            f"limit), not {value!r}"
        )
    return value


def _define(
    obj: object,
    identifier: str | None = None,
    *,
    batch: bool | None = None,
    source: str | None = None,
) -> TaskDefinition:
    where = source or _describe_source(obj)
    if isinstance(obj, type):
        if not marks.is_handler_class(obj):
            raise TaskLoadError(
                f"{where}: {obj.__name__} is not a task; expected a TaskHandler or "
                "BatchTaskHandler subclass, or a function"
            )
        from graphile_worker_cli.tasks import handlers  # imported already: obj subclasses it

        name = identifier or marks.declared_identifier(obj)
        if not name:
            raise TaskLoadError(f'{where}: {obj.__name__} has no IDENTIFIER (e.g. "send_email")')
        if issubclass(obj, handlers.BatchTaskHandler):
            if not _overrides(obj, handlers.BatchTaskHandler, "run_batch"):
                raise TaskLoadError(f"{where}: {obj.__name__} does not define run_batch")
            return _define_batch_class(obj, name, where)
        if not issubclass(obj, handlers.TaskHandler):  # is_handler_class said it is one
            raise TaskLoadError(f"{where}: {obj.__name__} is not a TaskHandler subclass")
        if not _overrides(obj, handlers.TaskHandler, "run"):
            raise TaskLoadError(f"{where}: {obj.__name__} does not define run")
        return _define_class(obj, name, where)
    if callable(obj):
        mark = marks.task_mark(obj)
        name = identifier or (mark.identifier if mark else None) or _function_name(obj, where)
        is_batch = batch if batch is not None else bool(mark and mark.batch)
        return _define_function(obj, name, where, is_batch)
    raise TaskLoadError(
        f"{where}: {type(obj).__name__} is not a task; expected a TaskHandler or "
        "BatchTaskHandler subclass, or a function"
    )


def _overrides(cls: type, base: type, name: str) -> bool:
    """Whether a class between ``cls`` and ``base`` defines ``name``."""
    below_base = cls.__mro__[: cls.__mro__.index(base)]
    return any(name in vars(klass) for klass in below_base)


def _describe_source(obj: object) -> str:
    module = getattr(obj, "__module__", None) or "?"
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    return f"{module}.{name}"


def _function_name(function: Callable[..., Any], where: str) -> str:
    name = getattr(function, "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise TaskLoadError(f"{where}: give this task an identifier")
    return name


def _define_class(cls: type[handlers.TaskHandler], name: str, where: str) -> TaskDefinition:
    validate = _validator(name, cls.model_validate)
    is_async = _is_async(cls.run)

    async def runner(ctx: WorkerContext) -> TaskOutcome:
        try:
            handler = validate(ctx.payload)
        except _InvalidPayload as error:
            return TaskFailure(error.message, error=error.__cause__)
        result = await _call(handler.run, (ctx,), ctx, is_async)
        return await outcomes.task_outcome(name, ctx.payload, result)

    return TaskDefinition(name, runner, source=where, handler=cls, batch=False)


def _define_batch_class(
    cls: type[handlers.BatchTaskHandler], name: str, where: str
) -> TaskDefinition:
    validate = _validator(name, cls.model_validate)
    is_async = _is_async(cls.run_batch)

    async def runner(ctx: WorkerContext) -> TaskOutcome:
        async def run(items: list[Any]) -> Any:
            return await _call(cls.run_batch, (items, ctx), ctx, is_async)

        return await _run_batch(name, ctx.payload, validate, run)

    return TaskDefinition(name, runner, source=where, handler=cls, batch=True)


def _define_function(
    function: Callable[..., Any], name: str, where: str, batch: bool
) -> TaskDefinition:
    takes_ctx = _takes_context(function, where)
    payload_type = _payload_annotation(function, where)
    is_async = _is_async(function)
    if batch:
        item_type = _item_type(payload_type)
        validate_item = _validator(name, _adapter(item_type, where))

        async def batch_runner(ctx: WorkerContext) -> TaskOutcome:
            async def run(items: list[Any]) -> Any:
                args = (items, ctx) if takes_ctx else (items,)
                return await _call(function, args, ctx, is_async)

            return await _run_batch(name, ctx.payload, validate_item, run)

        return TaskDefinition(name, batch_runner, source=where, handler=function, batch=True)

    adapter = _adapter(payload_type, where)
    if adapter is _identity:  # an unannotated payload: nothing to validate

        async def plain_runner(ctx: WorkerContext) -> TaskOutcome:
            args = (ctx.job.payload, ctx) if takes_ctx else (ctx.job.payload,)
            result = await _call(function, args, ctx, is_async)
            return await outcomes.task_outcome(name, ctx.job.payload, result)

        return TaskDefinition(name, plain_runner, source=where, handler=function, batch=False)
    validate = _validator(name, adapter)

    async def runner(ctx: WorkerContext) -> TaskOutcome:
        try:
            payload = validate(ctx.payload)
        except _InvalidPayload as error:
            return TaskFailure(error.message, error=error.__cause__)
        args = (payload, ctx) if takes_ctx else (payload,)
        result = await _call(function, args, ctx, is_async)
        return await outcomes.task_outcome(name, ctx.payload, result)

    return TaskDefinition(name, runner, source=where, handler=function, batch=False)


def _takes_context(function: Callable[..., Any], where: str) -> bool:
    """True for ``f(payload, ctx)``, False for ``f(payload)``."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as error:
        raise TaskLoadError(f"{where}: cannot inspect the task function ({error})") from None
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    required = [p for p in positional if p.default is p.empty]
    if len(required) > 2 or (not positional and not variadic):
        raise TaskLoadError(
            f"{where}: a task function takes (payload) or (payload, ctx); "
            f"this one takes {signature}"
        )
    return len(positional) >= 2 or variadic


def _payload_annotation(function: Callable[..., Any], where: str) -> Any:
    """The first parameter's annotation, or Any when there is none."""
    target = function
    if not inspect.isfunction(target) and not inspect.ismethod(target):
        if isinstance(target, functools.partial):
            return Any
        target = getattr(target, "__call__", target)  # noqa: B004
    parameters = list(inspect.signature(function).parameters.values())
    if not parameters or parameters[0].annotation is inspect.Parameter.empty:
        return Any
    try:
        hints = typing.get_type_hints(target)
    except Exception as error:
        raise TaskLoadError(
            f"{where}: cannot resolve the payload annotation "
            f"{parameters[0].annotation!r} ({outcomes.describe_error(error)})"
        ) from None
    return hints.get(parameters[0].name, Any)


def _item_type(payload_type: Any) -> Any:
    """For a batch function annotated ``list[Item]`` (or Sequence), the item type."""
    if payload_type is Any:
        return Any
    args = typing.get_args(payload_type)
    origin = typing.get_origin(payload_type)
    if origin is not None and args and isinstance(origin, type) and issubclass(origin, Sequence):
        return args[0]
    return Any


def _adapter(annotation: Any, where: str) -> Callable[[Any], Any]:
    if annotation is Any or annotation is object:
        return _identity
    import pydantic

    try:
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError) as error:
        summary = str(error).splitlines()[0]
        raise TaskLoadError(
            f"{where}: the payload type {annotation!r} cannot be validated ({summary})"
        ) from None
    return adapter.validate_python


def _identity(value: Any) -> Any:
    return value


async def run_task_from_worker_ctx(handler: object, ctx: WorkerContext) -> TaskOutcome:
    """Run a handler class or function for ``ctx``'s job once, outside a registry (the
    seed's helper of the same name; handy in tests)."""
    return await define_task(handler, ctx.task_identifier)(ctx)
