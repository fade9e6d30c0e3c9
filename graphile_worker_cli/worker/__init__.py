"""The worker: ``WorkerOptions`` to configure, ``Worker`` to run, ``ShutdownSignal`` to stop.

Modules: ``config`` (``WorkerConfig``: the settings and fluent calls), ``options``
(``WorkerOptions``: a config that builds its worker), ``worker`` (``Worker``: lifecycle,
side tasks, wind-down), ``fetch_loop`` (when to fetch and how many), ``slots`` (running
jobs and fetch demand), ``local_queue`` (jobs locked but not started), ``running`` (one
job from start to outcome), ``settle`` (outcomes written in batches, retried until they
land), ``store`` (the worker's statements, run), ``events`` (hook emission and its no-op
twin), ``listen`` (LISTEN connection), ``stale_locks`` (the 4-hour lock reset),
``fetchconn`` (the fetch session), ``shutdown`` (shutdown signal and OS signal handlers),
``processes`` (the ``gw run --processes N`` supervisor), ``threads`` (daemon thread pool),
``backoff`` (retry delays).
"""

from __future__ import annotations

from graphile_worker_cli.worker.options import WorkerOptions, new_worker_id
from graphile_worker_cli.worker.shutdown import ShutdownSignal
from graphile_worker_cli.worker.worker import Worker

__all__ = ["ShutdownSignal", "Worker", "WorkerOptions", "new_worker_id"]
