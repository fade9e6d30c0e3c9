"""What running a task came to: ``TaskSuccess`` or ``TaskFailure`` (``TaskOutcome``).

A leaf module (standard library only): tasks produce outcomes, the worker settles them and
the hook records carry them, without any of them importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """

    message: str
    replacement_payload: Any = NO_REPLACEMENT
    error: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def has_replacement(self) -> bool:
        return self.replacement_payload is not NO_REPLACEMENT


TaskOutcome = TaskSuccess | TaskFailure
"""What a task came to; the worker completes or fails the job accordingly."""
