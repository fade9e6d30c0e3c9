"""``WorkerUtils.get_job(key=...)`` and its sync twin against real PostgreSQL (issue 17
item 5)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from graphile_worker_cli import SyncWorkerUtils, WorkerUtils
from graphile_worker_cli.errors import BadInputError, JobNotFoundError
from tests.helpers.worker import add_job


async def test_get_job_by_key_and_by_id(db_url: str, conn: asyncpg.Connection) -> None:
    keyed = await add_job(conn, "send", {"to": "a"}, job_key="mail:a")
    await add_job(conn, "send", {"to": "b"}, job_key="mail:b")
    async with await WorkerUtils.connect(db_url) as utils:
        job = await utils.get_job(key="mail:a")
        assert (job.id, job.key, job.payload) == (keyed, "mail:a", {"to": "a"})
        assert (await utils.get_job(keyed)).key == "mail:a"
        with pytest.raises(JobNotFoundError, match="no job with key 'missing'"):
            await utils.get_job(key="missing")
        with pytest.raises(BadInputError, match="exactly one"):
            await utils.get_job(keyed, key="mail:a")
        with pytest.raises(BadInputError, match="exactly one"):
            await utils.get_job()
        with pytest.raises(BadInputError, match="non-empty"):
            await utils.get_job(key="")


async def test_sync_get_job_by_key(db_url: str, conn: asyncpg.Connection) -> None:
    keyed = await add_job(conn, "send", {"to": "c"}, job_key="mail:c")

    def read() -> tuple[int, str | None]:
        with SyncWorkerUtils.connect(db_url) as utils:
            job = utils.get_job(key="mail:c")
            with pytest.raises(JobNotFoundError):
                utils.get_job(key="mail:zzz")
            return job.id, job.key

    assert await asyncio.to_thread(read) == (keyed, "mail:c")
