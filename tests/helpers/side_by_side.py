"""gw and the Node reference side by side on two schemas of one database: the schemas'
names, and a schema's job rows in a form the two sides can be compared by."""

from __future__ import annotations

from typing import Any

import asyncpg

GW_SCHEMA = "graphile_worker"
NODE_SCHEMA = "graphile_worker_node"


async def job_rows(conn: asyncpg.Connection, schema: str) -> list[tuple[Any, ...]]:
    """Each job of ``schema`` by id: id, task, payload text, last error, attempts, queue
    name, and whether it is unlocked."""
    return [
        tuple(row) for row in await conn.fetch(
            f"select j.id, t.identifier, j.payload::text, j.last_error, j.attempts, "
            f"q.queue_name, j.locked_by is null from {schema}._private_jobs as j "
            f"join {schema}._private_tasks as t on t.id = j.task_id "
            f"left join {schema}._private_job_queues as q on q.id = j.job_queue_id "
            f"order by j.id"
        )
    ]
