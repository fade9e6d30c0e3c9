"""JobRecovery and WorkerRecovered around a sweep (called by ``recovery.sweep``).

The sweep statement recovers every job of a dead worker the default way. With JobRecovery
handlers, the jobs are read first (same transaction, under the sweep lock), and each
non-default decision is applied on top of the default right after the statement, still
in the transaction: nobody ever sees the intermediate state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphile_worker_cli import job
from graphile_worker_cli.hooks import events, results
from graphile_worker_cli.hooks.registry import HookRegistry
from graphile_worker_cli.operations import Operation, Statement
from graphile_worker_cli.queries import recovery as queries

if TYPE_CHECKING:
    from graphile_worker_cli.recovery.config import ResolvedSweepConfig, SweepStaleWorkersResult


def intercepts(hooks: HookRegistry) -> bool:
    return events.JobRecovery in hooks.events


def snapshot(
    schema: str, config: ResolvedSweepConfig, sweeper_id: str | None
) -> Operation[list[job.Job]]:
    """The locked jobs of the workers a sweep would declare dead (read before it)."""
    rows = yield Statement(
        queries.JOBS_OF_DEAD_WORKERS.sql(schema),
        (
            config.threshold,
            config.resilient_sweep_threshold_multiplier,
            list(config.resilient_job_flags),
            sweeper_id,
        ),
    )
    return [job.job_from_record(row) for row in rows]


Decision = tuple[job.Job, results.JobRecoveryResult]


async def decide(
    hooks: HookRegistry, before: list[job.Job], recovered: set[int], sweeper_id: str
) -> list[Decision]:
    """What the JobRecovery handlers chose for each job the sweep recovered."""
    decisions = []
    for locked in before:
        if locked.id not in recovered or locked.locked_by is None:
            continue
        decision = await hooks.job_recovery(
            events.JobRecoveryContext(locked, sweeper_id, locked.locked_by)
        )
        decisions.append((locked, decision))
    return decisions


def apply(schema: str, decisions: list[Decision]) -> Operation[None]:
    """Each non-default decision, on top of what the sweep statement did."""
    for locked, decision in decisions:
        action = decision.action
        if action is results.RecoveryAction.RESCHEDULE:
            yield Statement(
                queries.RECOVERY_RESCHEDULE.sql(schema),
                (locked.id, decision.run_at, decision.attempts),
            )
        elif action is results.RecoveryAction.FAIL_WITH_BACKOFF:
            yield Statement(
                queries.RECOVERY_FAIL_WITH_BACKOFF.sql(schema), (locked.id, locked.attempts)
            )
        elif action is results.RecoveryAction.SKIP:
            yield Statement(
                queries.RECOVERY_SKIP.sql(schema),
                (
                    locked.id, locked.locked_by, locked.locked_at, locked.attempts,
                    locked.run_at, locked.last_error,
                ),
            )


async def recovered(
    hooks: HookRegistry, sweeper_id: str, result: SweepStaleWorkersResult
) -> None:
    if events.WorkerRecovered not in hooks.events:
        return
    await hooks.emit(
        events.WorkerRecovered,
        events.WorkerRecoveredContext(
            sweeper_id, tuple(result.worker_ids), tuple(result.recovered_job_ids)
        ),
    )
