"""What a handler's return value (or exception) means for the job: ``task_outcome`` for a
task's return value (a list returned for an array payload is one result per item, as in
the reference), ``item_error`` and ``batch_outcome`` for ``BatchTaskHandler`` jobs, and the
messages stored as ``last_error``."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from graphile_worker_cli.task_outcome import (
    PermanentFailure,
    TaskFailure,
    TaskOutcome,
    TaskSuccess,
)

if TYPE_CHECKING:
    import pydantic

MAX_REPORTED_ERRORS = 5
BATCH_FAILURES = "Batch failures:\n"
"""How ``last_error`` starts when some items of an array payload failed (the reference's
words), followed by one line per failed item."""

log = logging.getLogger("gw.tasks")


def describe_error(error: BaseException) -> str:
    """The one-line-ish ``last_error`` for an exception: ``TypeName: message``."""
    name = type(error).__name__
    try:
        text = str(error).strip()
    except Exception:  # a broken __str__ must not break the worker
        text = "<message unavailable>"
    return f"{name}: {text}" if text else name


def describe_validation_error(identifier: str, error: pydantic.ValidationError) -> str:
    problems = []
    for detail in error.errors()[:MAX_REPORTED_ERRORS]:
        location = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"]
        problems.append(f'field "{location}": {message}' if location else message)
    more = error.error_count() - MAX_REPORTED_ERRORS
    if more > 0:
        problems.append(f"and {more} more")
    return f'invalid payload for task "{identifier}": ' + "; ".join(problems)


def failure_of(error: BaseException) -> TaskFailure:
    """The job's failure for an exception its task raised or returned: for good with the
    message alone for a ``PermanentFailure``, else ``TypeName: message``."""
    if isinstance(error, PermanentFailure):
        return TaskFailure(error.message, error=error, permanent=True)
    return TaskFailure(describe_error(error), error=error)


_SUCCESS = TaskSuccess()  # frozen and fieldless: one instance serves every job


def outcome_of(identifier: str, result: object) -> TaskOutcome:
    """What a handler's return value means for the job, the payload aside: a failure for
    a ``TaskFailure`` or an exception instance, a success for anything else (``False``
    included, as in the reference)."""
    if isinstance(result, TaskFailure):
        return result
    if isinstance(result, BaseException):
        return failure_of(result)
    return _SUCCESS


async def task_outcome(identifier: str, payload: Any, result: object) -> TaskOutcome:
    """What a task's return value means for its job. For a JSON array payload, a returned
    list is the reference's batch protocol: one result per item, and the items whose result
    is an exception or a ``TaskFailure`` (or an awaitable that raises or gives one) fail,
    while the others are done. Awaitables in the list are awaited together, as the
    reference settles the promises in it."""
    if not isinstance(result, list) or not isinstance(payload, list):
        return outcome_of(identifier, result)
    results = await _settled(result)
    if len(results) != len(payload):
        log.warning(
            'task "%s" returned %d results for an array payload of %d items: treated as '
            "a success for every item (return nothing, or one result per item)",
            identifier, len(results), len(payload),
        )
        return _SUCCESS
    failed = [
        (item, message)
        for item, result in zip(payload, results, strict=True)
        if (message := _item_failure(result)) is not None
    ]
    if not failed:
        return _SUCCESS
    return TaskFailure(
        BATCH_FAILURES + "\n".join(message for _, message in failed),
        replacement_payload=[item for item, _ in failed],
    )


async def _settled(results: list[object]) -> list[object]:
    """``results`` with each awaitable replaced by its value, or by what it raised."""
    waiting: dict[int, Awaitable[object]] = {
        index: result for index, result in enumerate(results) if inspect.isawaitable(result)
    }
    if not waiting:
        return results
    values = await asyncio.gather(*waiting.values(), return_exceptions=True)
    settled = list(results)
    for index, value in zip(waiting, values, strict=True):
        settled[index] = value
    return settled


def _item_failure(result: object) -> str | None:
    """An item's line in the "Batch failures" message, or None if the item is done."""
    if isinstance(result, TaskFailure):
        return result.message
    if isinstance(result, BaseException):
        return item_message(result)
    return None


def item_message(error: BaseException) -> str:
    """An exception's line for one failed item: its message alone, as the reference writes
    an item's ``error.message`` (a whole job's failure is ``TypeName: message``)."""
    try:
        return str(error)
    except Exception:  # a broken __str__ must not break the worker
        return "<message unavailable>"


def item_error(result: object, *, whole_job: bool = False) -> str | None:
    """None if one ``BatchTaskHandler`` item's result is a success, else its message
    (``whole_job``: the item is the whole payload, and an exception is described as a
    job's failure is)."""
    if result is None or result is True or isinstance(result, TaskSuccess):
        return None
    if isinstance(result, TaskFailure):
        return result.message
    if isinstance(result, BaseException):
        return describe_error(result) if whole_job else item_message(result)
    if isinstance(result, str):
        return result or "failed"
    if result is False:
        return "item returned False"
    return None


def batch_outcome(identifier: str, payload: list[Any], errors: Sequence[str | None]) -> TaskOutcome:
    """Combine per-item errors (aligned with ``payload``) into the job's outcome; the
    message lists every failure, as the reference's "Batch failures:" message does."""
    failed = [(item, error) for item, error in zip(payload, errors, strict=True) if error]
    if not failed:
        return TaskSuccess()
    message = BATCH_FAILURES + "\n".join(error for _, error in failed)
    return TaskFailure(message, replacement_payload=[item for item, _ in failed])


def check_batch_results(identifier: str, results: object, expected: int) -> TaskOutcome | None:
    """None when ``results`` is a list of ``expected`` item results; otherwise the failure
    of the whole job (the handler failed as a whole, or broke the one-result-per-item rule).
    """
    if isinstance(results, TaskFailure):
        return results
    if isinstance(results, BaseException):
        return failure_of(results)
    rule = "expected a list with one result per item, in order"
    if isinstance(results, str | bytes) or not isinstance(results, Sequence):
        return TaskFailure(f'batch task "{identifier}" returned {type(results).__name__}; {rule}')
    if len(results) != expected:
        got = f"{len(results)} result" + ("" if len(results) == 1 else "s")
        return TaskFailure(f'batch task "{identifier}" returned {got} for {expected} items; {rule}')
    return None
