"""Task "index_records": a batch job. The payload is a JSON array of records; each record
gets its own result, and only the records that failed are retried (as the job's new
payload).

    gw add-job index_records '[{"id": 1, "title": "Intro"}, {"id": 2, "title": ""}]'
"""

from __future__ import annotations

from collections.abc import Sequence

from graphile_worker_cli.context import WorkerContext
from graphile_worker_cli.tasks import BatchTaskHandler


class IndexRecord(BatchTaskHandler):
    IDENTIFIER = "index_records"

    id: int
    title: str

    @classmethod
    async def run_batch(cls, items: list[IndexRecord], ctx: WorkerContext) -> Sequence[object]:
        results: list[object] = []
        for item in items:
            if not item.title.strip():
                results.append(ValueError(f"record {item.id} has an empty title"))
                continue
            # A real task would send the record to a search index here.
            ctx.logger.info("indexed record %d", item.id)
            results.append(None)
        return results
