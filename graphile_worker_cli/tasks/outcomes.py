"""What a handler's return value (or exception) means for the job: ``outcome_of`` for a
single job, ``item_error`` and ``batch_outcome`` for batch jobs, and the messages stored as
``last_error``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic

from graphile_worker_cli.tasks.handlers import TaskFailure, TaskOutcome, TaskSuccess

MAX_REPORTED_ERRORS = 5


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


_SUCCESS = TaskSuccess()  # frozen and fieldless: one instance serves every job


def outcome_of(identifier: str, result: object) -> TaskOutcome:
    """What a handler's return value means for the job."""
    if result is None or result is True or isinstance(result, TaskSuccess):
        return _SUCCESS
    if isinstance(result, TaskFailure):
        return result
    if isinstance(result, BaseException):
        return TaskFailure(describe_error(result), error=result)
    if result is False:
        return TaskFailure(f'task "{identifier}" returned False')
    return _SUCCESS


def item_error(result: object) -> str | None:
    """None if one batch item's result is a success, else its error message."""
    if result is None or result is True or isinstance(result, TaskSuccess):
        return None
    if isinstance(result, TaskFailure):
        return result.message
    if isinstance(result, BaseException):
        return describe_error(result)
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
    message = "Batch failures:\n" + "\n".join(error for _, error in failed)
    return TaskFailure(message, replacement_payload=[item for item, _ in failed])


def check_batch_results(identifier: str, results: object, expected: int) -> TaskOutcome | None:
    """None when ``results`` is a list of ``expected`` item results; otherwise the failure
    of the whole job (the handler failed as a whole, or broke the one-result-per-item rule).
    """
    if isinstance(results, TaskFailure):
        return results
    if isinstance(results, BaseException):
        return TaskFailure(describe_error(results), error=results)
    rule = "expected a list with one result per item, in order"
    if isinstance(results, str | bytes) or not isinstance(results, Sequence):
        return TaskFailure(f'batch task "{identifier}" returned {type(results).__name__}; {rule}')
    if len(results) != expected:
        got = f"{len(results)} result" + ("" if len(results) == 1 else "s")
        return TaskFailure(f'batch task "{identifier}" returned {got} for {expected} items; {rule}')
    return None
