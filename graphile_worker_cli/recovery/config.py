"""Settings and result types of dead-worker recovery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphile_worker_cli.errors import ConfigError

INFRASTRUCTURE_RESILIENT_FLAG = "infrastructure_resilient"
"""Job flag: the job may hold its worker's event loop or host for a long time (a long CPU
stretch, a slow external system), so its worker gets a longer sweep threshold
(``sweep_threshold`` times ``resilient_sweep_threshold_multiplier``) before being declared dead."""

DEFAULT_RESILIENT_MULTIPLIER = 5


class _HasFlags(Protocol):
    @property
    def flags(self) -> Mapping[str, Any] | None: ...


def job_has_resilient_flag(
    job: _HasFlags, flags: tuple[str, ...] = (INFRASTRUCTURE_RESILIENT_FLAG,)
) -> bool:
    """Whether the job carries one of the flags that extend its worker's sweep threshold."""
    job_flags = job.flags or {}
    return any(job_flags.get(flag) for flag in flags)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRecoveryConfig:
    """Dead-worker recovery settings of one worker process (durations in seconds).

    - ``heartbeat_interval``: how often the worker writes its heartbeat.
    - ``sweep_interval``: how often it looks for dead workers (with ±20 % jitter).
    - ``sweep_threshold``: heartbeat age after which a registered worker is dead; never
      less than three of that worker's own heartbeat intervals.
    - ``recovery_delay``: added to run_at of every recovered job.
    - ``resilient_sweep_threshold_multiplier``: threshold multiplier for a worker holding a
      job with one of ``resilient_job_flags``.
    """

    enabled: bool = True
    heartbeat_interval: float = 10.0
    sweep_interval: float = 30.0
    sweep_threshold: float = 60.0
    recovery_delay: float = 0.0
    resilient_sweep_threshold_multiplier: int = DEFAULT_RESILIENT_MULTIPLIER
    resilient_job_flags: tuple[str, ...] = (INFRASTRUCTURE_RESILIENT_FLAG,)

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval", "sweep_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive duration, got {getattr(self, name)}")
        if self.recovery_delay < 0:
            raise ConfigError(f"recovery_delay must not be negative, got {self.recovery_delay}")
        if self.sweep_threshold <= self.heartbeat_interval:
            raise ConfigError(
                f"sweep_threshold ({self.sweep_threshold}s) must be longer than "
                f"heartbeat_interval ({self.heartbeat_interval}s), or live workers look dead"
            )
        if self.resilient_sweep_threshold_multiplier < 1:
            raise ConfigError("resilient_sweep_threshold_multiplier must be at least 1")

    @classmethod
    def from_settings(cls, settings: Any) -> WorkerRecoveryConfig:
        """From anything with the Settings field names (``config.Settings``, WorkerOptions);
        the resilient-job fields are optional there."""
        return cls(
            enabled=bool(settings.worker_recovery),
            heartbeat_interval=float(settings.heartbeat_interval),
            sweep_interval=float(settings.sweep_interval),
            sweep_threshold=float(settings.sweep_threshold),
            recovery_delay=float(settings.recovery_delay),
            resilient_sweep_threshold_multiplier=int(getattr(
                settings, "resilient_sweep_threshold_multiplier", DEFAULT_RESILIENT_MULTIPLIER
            )),
            resilient_job_flags=tuple(getattr(
                settings, "resilient_job_flags", (INFRASTRUCTURE_RESILIENT_FLAG,)
            )),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepStaleWorkersOptions:
    """One sweep's input; ``None`` takes the value from the defaults (a WorkerRecoveryConfig)."""

    threshold: float | None = None
    recovery_delay: float | None = None
    dry_run: bool = False
    resilient_sweep_threshold_multiplier: int | None = None
    resilient_job_flags: tuple[str, ...] | None = None

    def resolve(self, defaults: WorkerRecoveryConfig | None = None) -> ResolvedSweepConfig:
        base = defaults or WorkerRecoveryConfig()
        resolved = ResolvedSweepConfig(
            threshold=base.sweep_threshold if self.threshold is None else self.threshold,
            recovery_delay=(
                base.recovery_delay if self.recovery_delay is None else self.recovery_delay
            ),
            dry_run=self.dry_run,
            resilient_sweep_threshold_multiplier=(
                base.resilient_sweep_threshold_multiplier
                if self.resilient_sweep_threshold_multiplier is None
                else self.resilient_sweep_threshold_multiplier
            ),
            resilient_job_flags=(
                base.resilient_job_flags
                if self.resilient_job_flags is None
                else self.resilient_job_flags
            ),
        )
        if resolved.threshold < 0 or resolved.recovery_delay < 0:
            raise ConfigError("sweep threshold and recovery delay must not be negative")
        if resolved.resilient_sweep_threshold_multiplier < 1:
            raise ConfigError("resilient_sweep_threshold_multiplier must be at least 1")
        return resolved


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedSweepConfig:
    """Every value a sweep uses, defaults filled in."""

    threshold: float
    recovery_delay: float
    dry_run: bool
    resilient_sweep_threshold_multiplier: int
    resilient_job_flags: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepStaleWorkersResult:
    """What a sweep did (or, with ``dry_run``, would have done).

    ``skipped`` is true when another sweeper held the fleet-wide sweep lock.
    """

    worker_ids: list[str] = field(default_factory=list)
    recovered_job_ids: list[int] = field(default_factory=list)
    unlocked_queue_names: list[str] = field(default_factory=list)
    dry_run: bool = False
    skipped: bool = False

    @property
    def recovered_count(self) -> int:
        return len(self.recovered_job_ids)
