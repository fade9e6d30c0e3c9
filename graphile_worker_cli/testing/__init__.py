"""Testing your tasks: run what was queued in-process, and check what was queued.

- ``run_jobs_until_idle(url, tasks)`` runs the jobs runnable now with a real worker in
  this process (including jobs they add), until none is left, and returns each attempt's
  ``JobOutcome``. ``run_jobs_until_idle_sync`` is the blocking twin.
- ``assert_job_queued(jobs, task, payload=..., queue=..., run_at=...)`` finds the job
  that matches (a payload matches when it contains the given keys and values) or fails
  with a list of what was queued; ``matching_jobs`` returns all matches.
- ``throwaway_database`` / ``throwaway_schema``: a migrated database or schema, dropped
  afterwards. The pytest plugin (``-p graphile_worker_cli.testing.pytest_plugin``) has
  them as fixtures.

docs/testing.md shows them together.
"""

from graphile_worker_cli.testing.assertions import assert_job_queued, matching_jobs
from graphile_worker_cli.testing.databases import throwaway_database, throwaway_schema
from graphile_worker_cli.testing.runner import (
    JobOutcome,
    run_jobs_until_idle,
    run_jobs_until_idle_sync,
)

__all__ = [
    "JobOutcome",
    "assert_job_queued",
    "matching_jobs",
    "run_jobs_until_idle",
    "run_jobs_until_idle_sync",
    "throwaway_database",
    "throwaway_schema",
]
