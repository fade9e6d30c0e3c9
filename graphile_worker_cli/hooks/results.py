"""What interceptors return: ``HookResult``, ``JobScheduleResult``, ``JobRecoveryResult``.

Returning ``None`` from an interceptor means "carry on" (CONTINUE / keep the payload /
DEFAULT). Interceptors of one event run in registration order; the first one that does
not carry on decides, and the rest are not called.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

__all__ = ["HookResult", "JobRecoveryResult", "JobScheduleResult", "RecoveryAction"]

class Action(enum.StrEnum):
    CONTINUE = "continue"
    SKIP = "skip"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class HookResult:
    """BeforeJobRun / AfterJobRun: ``HookResult.CONTINUE``, ``HookResult.SKIP`` (complete
    the job: without running it, or whatever the handler returned) or
    ``HookResult.fail("why")`` (a failed attempt with that message)."""

    action: Action
    message: str | None = None

    CONTINUE: ClassVar[HookResult]
    SKIP: ClassVar[HookResult]

    @classmethod
    def fail(cls, message: str) -> HookResult:
        return cls(Action.FAIL, str(message))

    @property
    def is_terminal(self) -> bool:
        return self.action is not Action.CONTINUE


HookResult.CONTINUE = HookResult(Action.CONTINUE)
HookResult.SKIP = HookResult(Action.SKIP)

_UNCHANGED: Any = object()


@dataclass(frozen=True, slots=True)
class JobScheduleResult:
    """BeforeJobSchedule: ``JobScheduleResult.continue_with(payload)`` (add the job with
    this payload), ``JobScheduleResult.SKIP`` (add nothing) or
    ``JobScheduleResult.fail("why")`` (the add call raises ``JobScheduleFailedError``)."""

    action: Action
    payload: Any = _UNCHANGED
    message: str | None = None

    SKIP: ClassVar[JobScheduleResult]
    CONTINUE: ClassVar[JobScheduleResult]
    """Carry on with the payload unchanged."""

    @classmethod
    def continue_with(cls, payload: Any) -> JobScheduleResult:
        return cls(Action.CONTINUE, payload)

    @classmethod
    def fail(cls, message: str) -> JobScheduleResult:
        return cls(Action.FAIL, message=str(message))

    @property
    def changes_payload(self) -> bool:
        return self.payload is not _UNCHANGED


JobScheduleResult.SKIP = JobScheduleResult(Action.SKIP)
JobScheduleResult.CONTINUE = JobScheduleResult(Action.CONTINUE)


class RecoveryAction(enum.StrEnum):
    DEFAULT = "default"
    RESCHEDULE = "reschedule"
    FAIL_WITH_BACKOFF = "fail_with_backoff"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class JobRecoveryResult:
    """JobRecovery: what a sweep does with one job of a dead worker.

    - ``DEFAULT``: what the sweep does anyway (the attempt it was running is used, run at
      its original run_at plus the recovery delay);
    - ``reschedule(run_at, attempts=None)``: unlocked to run at ``run_at`` (attempts set
      when given, else as by default);
    - ``FAIL_WITH_BACKOFF``: counted as a failed attempt, retried after the usual
      exponential backoff (permanently failed when it was the last attempt);
    - ``SKIP``: left locked by the dead worker (the 4-hour stale-lock reset applies).
    """

    action: RecoveryAction
    run_at: datetime | None = None
    attempts: int | None = None

    DEFAULT: ClassVar[JobRecoveryResult]
    FAIL_WITH_BACKOFF: ClassVar[JobRecoveryResult]
    SKIP: ClassVar[JobRecoveryResult]

    @classmethod
    def reschedule(cls, run_at: datetime, attempts: int | None = None) -> JobRecoveryResult:
        return cls(RecoveryAction.RESCHEDULE, run_at, attempts)

    @property
    def is_terminal(self) -> bool:
        return self.action is not RecoveryAction.DEFAULT


JobRecoveryResult.DEFAULT = JobRecoveryResult(RecoveryAction.DEFAULT)
JobRecoveryResult.FAIL_WITH_BACKOFF = JobRecoveryResult(RecoveryAction.FAIL_WITH_BACKOFF)
JobRecoveryResult.SKIP = JobRecoveryResult(RecoveryAction.SKIP)
