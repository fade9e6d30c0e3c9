"""What the dashboard reads and does, as JSON-ready values.

Reads use the statements in ``queries.admin``; every change goes through ``WorkerUtils``
(the schema's own functions) or the ``recovery`` module, exactly as the CLI does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from graphile_worker_cli import cron, db, job, job_input, recovery, worker_utils
from graphile_worker_cli.admin import params, series
from graphile_worker_cli.cron import store as cron_store
from graphile_worker_cli.errors import BadInputError, JobNotFoundError
from graphile_worker_cli.job import Job
from graphile_worker_cli.queries import Query
from graphile_worker_cli.queries import admin as queries
from graphile_worker_cli.queries import history as history_queries

STATES = params.STATES
ACTIONS = ("run_now", "reschedule", "complete", "fail", "cancel")
MAINTENANCE = ("migrate", "cleanup", "force_unlock", "sweep")
DEFAULT_FAIL_REASON = "permanently failed from the gw admin dashboard"


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _zero() -> dict[str, int]:
    return dict.fromkeys((*STATES, "total"), 0)


class AdminService:
    """The dashboard's operations on one schema, through one WorkerUtils."""

    def __init__(
        self, worker_utils: worker_utils.WorkerUtils, crontabs: Sequence[cron.Crontab] = ()
    ) -> None:
        self.utils = worker_utils
        self.schema = worker_utils.schema
        self.crontabs = {item.identifier: item for item in crontabs}

    async def _fetch(self, query: Query, *args: Any) -> list[asyncpg.Record]:
        with db.database_errors(self.schema):
            async with self.utils.pool.acquire() as conn:
                rows: list[asyncpg.Record] = await conn.fetch(query.sql(self.schema), *args)
        return rows

    # -- reading

    async def overview(self) -> dict[str, Any]:
        """Job counts by state, overall, per task and per named queue."""
        total = _zero()
        by_task: dict[str, dict[str, int]] = {}
        by_queue: dict[str, dict[str, int]] = {}
        for row in await self._fetch(queries.OVERVIEW):
            state, count = row["state"], row["count"]
            groups = [total, by_task.setdefault(row["task_identifier"] or "", _zero())]
            if row["queue_name"] is not None:
                groups.append(by_queue.setdefault(row["queue_name"], _zero()))
            for group in groups:
                group[state] += count
                group["total"] += count
        return {
            "counts": total,
            "by_task": [{"task": name, **counts} for name, counts in sorted(by_task.items())],
            "by_queue": [{"queue": name, **counts} for name, counts in sorted(by_queue.items())],
        }

    async def list_jobs(self, filters: params.JobFilters) -> dict[str, Any]:
        """One page of jobs, newest first, with the number of jobs that match."""
        args = (filters.state, filters.task, filters.queue, filters.key, filters.error_pattern())
        rows = await self._fetch(queries.LIST_JOBS, *args, filters.limit, filters.offset)
        (counted,) = await self._fetch(queries.COUNT_JOBS, *args)
        return {
            "jobs": [_job_row(row) for row in rows],
            "total": counted[0],
            "limit": filters.limit,
            "offset": filters.offset,
        }

    async def job(self, job_id: int) -> dict[str, Any]:
        """One job with its payload; JobNotFoundError when there is none."""
        found = await self.utils.get_job(job_id)
        (now,) = await self._fetch(queries.NOW)
        return job_json(found, job.job_state(found, now[0]).value)

    async def queues(self) -> list[dict[str, Any]]:
        return [
            {
                "queue": row["queue_name"],
                "job_count": row["job_count"],
                "locked_at": iso(row["locked_at"]),
                "locked_by": row["locked_by"],
            }
            for row in await self._fetch(queries.QUEUES)
        ]

    async def _history_state(self) -> tuple[bool, bool, datetime]:
        """Whether the history exists, whether its per-minute rollup does, and now."""
        (row,) = await self._fetch(history_queries.HISTORY_STATE, self.schema)
        return bool(row["present"]), bool(row["rolled"]), row["now"]

    async def history(self, filters: params.HistoryFilters) -> dict[str, Any]:
        """The newest entries of the job history (``available`` false before gw migration
        2: then there are none)."""
        present, _rolled, _now = await self._history_state()
        entries = await self.utils.list_history(
            task=filters.task, failed=filters.failed, limit=filters.limit
        ) if present else []
        return {"available": present, "entries": [history_json(e) for e in entries]}

    async def charts(self, window: str) -> dict[str, Any]:
        """The chart series of a window (``params.WINDOWS``), one point per bucket: jobs
        completed and failed for good and their queue wait p50/p95 (from the history),
        and the queue depth (from the samples, the largest of each bucket)."""
        seconds, bucket = params.WINDOWS[window]
        present, rolled, now = await self._history_state()
        result: dict[str, Any] = {
            "available": present, "window": window, "window_seconds": seconds,
            "bucket_seconds": bucket, "now": iso(now), "outcomes": [], "wait": [],
            "depth": [],
        }
        if not present:
            return result
        minutes = history_queries.HISTORY_MINUTES if rolled else (
            history_queries.HISTORY_MINUTES_UNROLLED
        )
        rows = await self._fetch(minutes, seconds, list(history_queries.WAIT_EDGES))
        for point in series.buckets(rows, bucket):
            t = iso(point.start)
            result["outcomes"].append(
                {"t": t, "completed": point.completed, "failed": point.failed}
            )
            result["wait"].append(
                {"t": t, "p50": _number(point.wait_p50), "p95": _number(point.wait_p95)}
            )
        for row in await self._fetch(history_queries.DEPTH_SERIES, seconds, bucket):
            result["depth"].append({
                "t": iso(row["bucket"]),
                **{name: row[name] for name in ("ready", "scheduled", "locked", "failed")},
            })
        return result

    async def workers(self) -> dict[str, Any]:
        """Registered gw workers with heartbeats, and lock holders that never registered."""
        with db.database_errors(self.schema):
            has_registry = await recovery.registry_exists(self.utils.pool, self.schema)
        registered = await self.utils.list_active_workers() if has_registry else []
        known = {worker.id for worker in registered}
        holders = [
            {
                "id": row["id"],
                "jobs_held": row["jobs_held"],
                "oldest_lock_at": iso(row["oldest_lock_at"]),
            }
            for row in await self._fetch(queries.LOCK_HOLDERS)
            if row["id"] not in known
        ]
        return {
            "registry": has_registry,
            "workers": [_worker_json(worker) for worker in registered],
            "unregistered_lock_holders": holders,
        }

    async def crontabs_json(self) -> dict[str, Any]:
        """Known crontabs; the next run needs the crontab item (given to create_app)."""
        with db.database_errors(self.schema):
            known = await cron_store.fetch_known_crontabs(self.utils.pool, self.schema)
        now = datetime.now(UTC)
        listed = []
        for row in known:
            item = self.crontabs.get(row.identifier)
            runs = item.next_runs(now, 1) if item else []
            listed.append({
                "id": row.identifier,
                "task": item.task_identifier if item else None,
                "pattern": item.pattern if item else None,
                "known_since": iso(row.known_since),
                "last_execution": iso(row.last_execution),
                "next_run": iso(runs[0]) if runs else None,
                "in_crontab": item is not None,
            })
        registered = {row.identifier for row in known}
        return {
            "crontab_loaded": bool(self.crontabs),
            "crontabs": listed,
            "not_yet_known": sorted(set(self.crontabs) - registered),
        }

    # -- changing jobs

    async def existing(self, ids: Sequence[int]) -> dict[int, str]:
        """State of each job that exists among ``ids``."""
        return {row["id"]: row["state"] for row in await self._fetch(queries.JOB_STATES, ids)}

    async def act(self, action: str, ids: list[int], body: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one action to jobs; jobs a worker holds are left alone (``skipped``), but
        for ``cancel``, which asks their worker to stop them (see ``cancel_jobs``)."""
        if action not in ACTIONS:
            raise BadInputError(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}")
        if action == "cancel":
            return _cancellations_json(await self.utils.cancel_jobs(ids))
        if action == "run_now":
            changed = await self._run_now(ids)
        elif action == "reschedule":
            changed = await self._reschedule(ids, body)
        elif action == "complete":
            changed = await self.utils.complete_jobs(ids)
        else:
            reason = params.optional_text(body, "reason") or DEFAULT_FAIL_REASON
            changed = await self.utils.permanently_fail_jobs(ids, reason)
        done = sorted(job.id for job in changed)
        return {
            "action": action,
            "changed": done,
            "skipped": sorted(set(ids) - set(done)),
        }

    async def _run_now(self, ids: list[int]) -> list[Job]:
        """run_at = now; failed jobs also get a fresh set of attempts, so they run again."""
        states = await self.existing(ids)
        (now,) = await self._fetch(queries.NOW)
        failed = [i for i in ids if states.get(i) == "failed"]
        others = [i for i in ids if states.get(i) not in (None, "failed")]
        changed: list[Job] = []
        if failed:
            changed += await self.utils.reschedule_jobs(failed, run_at=now[0], attempts=0)
        if others:
            changed += await self.utils.reschedule_jobs(others, run_at=now[0])
        return changed

    async def _reschedule(self, ids: list[int], body: Mapping[str, Any]) -> list[Job]:
        options = job_input.RescheduleJobOptions(
            run_at=params.optional_time(body, "run_at"),
            priority=params.optional_int(body, "priority"),
            attempts=params.optional_int(body, "attempts"),
            max_attempts=params.optional_int(body, "max_attempts"),
        )
        if options == job_input.RescheduleJobOptions():
            raise BadInputError(
                "nothing to reschedule: expected at least one of run_at, priority, attempts, "
                "max_attempts"
            )
        return await self.utils.reschedule_jobs(ids, options)

    async def remove_by_key(self, key: str) -> dict[str, Any]:
        removed = await self.utils.remove_job(key)
        if removed is None:
            raise JobNotFoundError(f"no job with key {key!r}")
        return {"removed": removed.id, "key": key}

    # -- maintenance

    async def maintain(self, operation: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if operation == "migrate":
            await self.utils.migrate()
            return {"operation": operation, "ok": True}
        if operation == "cleanup":
            tasks = params.string_list(body, "tasks") or list(job_input.DEFAULT_CLEANUP_TASKS)
            keep = params.string_list(body, "keep")
            deleted = await self.utils.cleanup(tasks, keep)
            return {"operation": operation, "deleted": {str(k): v for k, v in deleted.items()}}
        if operation == "force_unlock":
            worker_ids = params.string_list(body, "worker_ids", required=True)
            await self.utils.force_unlock_workers(worker_ids)
            return {"operation": operation, "worker_ids": worker_ids}
        if operation == "sweep":
            dry_run = body.get("dry_run", True)
            if not isinstance(dry_run, bool):
                raise BadInputError(f"invalid dry_run {dry_run!r}: expected true or false")
            options = recovery.SweepStaleWorkersOptions(
                threshold=params.optional_seconds(body, "threshold"), dry_run=dry_run
            )
            result = await self.utils.sweep_stale_workers(options)
            return {"operation": operation, **dataclasses.asdict(result)}
        raise BadInputError(
            f"unknown maintenance operation {operation!r}: expected one of "
            f"{', '.join(MAINTENANCE)}"
        )


def _cancellations_json(results: list[job_input.JobCancellation]) -> dict[str, Any]:
    """``cancel``: changed = cancelled, requested or marked; each job's outcome besides."""
    untouched = (job_input.CancelOutcome.ALREADY_FAILED, job_input.CancelOutcome.NOT_FOUND)
    return {
        "action": "cancel",
        "changed": sorted(r.job_id for r in results if r.outcome not in untouched),
        "skipped": sorted(r.job_id for r in results if r.outcome in untouched),
        "outcomes": [
            {"job_id": r.job_id, "outcome": r.outcome.value, "worker_id": r.worker_id}
            for r in results
        ],
    }


def history_json(entry: job.JobHistoryEntry) -> dict[str, Any]:
    values = dataclasses.asdict(entry)
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = iso(value)
    return values


def _number(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _job_row(row: asyncpg.Record) -> dict[str, Any]:
    """A row of the jobs list: no payload, and only the start of last_error."""
    return {
        "id": row["id"],
        "task": row["task_identifier"],
        "queue": row["queue_name"],
        "state": row["state"],
        "priority": row["priority"],
        "run_at": iso(row["run_at"]),
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "last_error_excerpt": row["last_error_excerpt"],
        "last_error_truncated": bool(row["last_error_truncated"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "key": row["key"],
        "locked_at": iso(row["locked_at"]),
        "locked_by": row["locked_by"],
        "revision": row["revision"],
    }


def job_json(found: Job, state: str) -> dict[str, Any]:
    return {
        "id": found.id,
        "task": found.task_identifier,
        "queue": found.queue_name,
        "state": state,
        "payload": found.payload,
        "priority": found.priority,
        "run_at": iso(found.run_at),
        "attempts": found.attempts,
        "max_attempts": found.max_attempts,
        "last_error": found.last_error,
        "created_at": iso(found.created_at),
        "updated_at": iso(found.updated_at),
        "key": found.key,
        "locked_at": iso(found.locked_at),
        "locked_by": found.locked_by,
        "revision": found.revision,
        "flags": sorted(name for name, on in (found.flags or {}).items() if on),
    }


def _worker_json(worker: recovery.ActiveWorkerRow) -> dict[str, Any]:
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "version": worker.version,
        "tasks": worker.tasks,
        "started_at": iso(worker.started_at),
        "last_heartbeat_at": iso(worker.last_heartbeat_at),
        "age": worker.age,
        "heartbeat_age": worker.heartbeat_age,
        "heartbeat_interval": worker.heartbeat_interval,
        "threshold": worker.threshold,
        "late": worker.late,
        "session_alive": worker.session_alive,
        "stale": worker.stale,
        "longest_stall": worker.longest_stall,
        "jobs_held": worker.jobs_held,
        "queues_held": worker.queues_held,
        "pool_connections": worker.pool_connections,
        "session_connections": worker.session_connections,
    }
