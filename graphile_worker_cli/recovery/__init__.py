"""Dead-worker recovery: a registry of live gw workers, heartbeats, and the sweep that
gives the jobs of dead registered workers back to the queue.

Only workers that registered in ``_gw_workers`` can be declared dead. Lock holders that
never registered (Node.js reference workers, old gw releases) are never swept: their
locks keep the reference's 4-hour rule. See docs/reliability.md.
"""

from __future__ import annotations

from graphile_worker_cli.recovery.config import (
    INFRASTRUCTURE_RESILIENT_FLAG,
    ResolvedSweepConfig,
    SweepStaleWorkersOptions,
    SweepStaleWorkersResult,
    WorkerRecoveryConfig,
    job_has_resilient_flag,
)
from graphile_worker_cli.recovery.registry import (
    ActiveWorkerRow,
    Executor,
    LockHolderRow,
    SchemaState,
    deregister_worker,
    force_unlock_workers,
    heartbeat,
    list_active_workers,
    list_unregistered_lock_holders,
    register_worker,
    registry_exists,
    schema_state,
    take_liveness_lock,
)
from graphile_worker_cli.recovery.runner import run_worker_recovery
from graphile_worker_cli.recovery.session import registry_connection
from graphile_worker_cli.recovery.sweep import sweep_stale_workers

__all__ = [
    "INFRASTRUCTURE_RESILIENT_FLAG",
    "ActiveWorkerRow",
    "Executor",
    "LockHolderRow",
    "ResolvedSweepConfig",
    "SchemaState",
    "SweepStaleWorkersOptions",
    "SweepStaleWorkersResult",
    "WorkerRecoveryConfig",
    "deregister_worker",
    "force_unlock_workers",
    "heartbeat",
    "job_has_resilient_flag",
    "list_active_workers",
    "list_unregistered_lock_holders",
    "register_worker",
    "registry_connection",
    "registry_exists",
    "run_worker_recovery",
    "schema_state",
    "sweep_stale_workers",
    "take_liveness_lock",
]
