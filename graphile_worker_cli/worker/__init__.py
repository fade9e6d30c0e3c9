"""The worker: ``WorkerOptions`` to configure, ``Worker`` to run, ``ShutdownSignal`` to stop.

Modules: ``options`` (configuration and init), ``worker`` (the fetch/run/settle loop and
its local queue), ``listen`` (LISTEN connection), ``settle`` (outcomes written in batches,
retried until they land), ``shutdown`` (shutdown signal and OS signal handlers),
``processes`` (the ``gw run --processes N`` supervisor), ``threads`` (daemon thread pool),
``backoff`` (retry delays).
"""

from __future__ import annotations

from graphile_worker_cli.worker.options import WorkerOptions, new_worker_id
from graphile_worker_cli.worker.shutdown import ShutdownSignal
from graphile_worker_cli.worker.worker import Worker

__all__ = ["ShutdownSignal", "Worker", "WorkerOptions", "new_worker_id"]
