"""Django integration: jobs added in the current transaction, and ``manage.py gw``.

``INSTALLED_APPS += ["graphile_worker_cli.contrib.django"]``, then::

    from django.db import transaction
    from graphile_worker_cli.contrib import django as gw

    with transaction.atomic():
        order = Order.objects.create(...)
        gw.add_job("send_receipt", {"order_id": order.id})

``manage.py gw run``, ``manage.py gw add-job ...``: gw's CLI on the project's database.
Settings: ``GRAPHILE_WORKER`` (see ``conf``). docs/integrations.md has the full recipe.
"""

from __future__ import annotations

from graphile_worker_cli.contrib.django.jobs import (
    add_batch_job,
    add_job,
    add_jobs,
    add_raw_job,
    complete_jobs,
    connection,
    remove_job,
    worker_utils,
)

__all__ = [
    "add_batch_job",
    "add_job",
    "add_jobs",
    "add_raw_job",
    "complete_jobs",
    "connection",
    "remove_job",
    "worker_utils",
]
