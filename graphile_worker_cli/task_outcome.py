"""What running a task came to: ``TaskSuccess`` or ``TaskFailure`` (``TaskOutcome``), and
``PermanentFailure``, the exception that fails a job for good.

A leaf module (standard library only): tasks produce outcomes, the worker settles them and
the hook records carry them, without any of them importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, Self


class _NoReplacement:
    """Marker: the failed job keeps its payload."""

    _instance: ClassVar[_NoReplacement | None] = None

    def __new__(cls) -> Self:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance  # type: ignore[return-value]

    def __repr__(self) -> str:
        return "NO_REPLACEMENT"

    def __bool__(self) -> bool:
        return False


NO_REPLACEMENT: Final = _NoReplacement()


@dataclass(frozen=True)
class TaskSuccess:
    """The job succeeded: the worker deletes it."""


@dataclass(frozen=True)
class TaskFailure:
    """The job failed: ``message`` becomes its ``last_error``.

    ``replacement_payload`` (batch jobs only) is the new payload: the failed items. ``error``
    is the exception behind the failure, if any, for logs and hooks.

    The next attempt runs after the task's backoff (the reference's ``exp(min(attempts,
    10))`` seconds unless the task sets its own), or at ``retry_at`` (a datetime; a naive one
    is UTC), or ``retry_in`` from now (seconds, a ``timedelta`` or a duration such as
    ``"1h"``). ``permanent`` fails the job for good: no attempt is left.
    """

    message: str
    replacement_payload: Any = NO_REPLACEMENT
    error: BaseException | None = field(default=None, compare=False, repr=False)
    retry_in: float | str | timedelta | None = field(default=None, kw_only=True)
    retry_at: datetime | None = field(default=None, kw_only=True)
    permanent: bool = field(default=False, kw_only=True)

    @property
    def has_replacement(self) -> bool:
        return self.replacement_payload is not NO_REPLACEMENT


class PermanentFailure(Exception):
    """Raise (or return) it from a task to fail its job for good at once: the job keeps no
    attempt (``attempts = max_attempts``, as ``permanently_fail_jobs`` leaves it) and its
    ``last_error`` is the message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


TaskOutcome = TaskSuccess | TaskFailure
"""What a task came to; the worker completes or fails the job accordingly."""
