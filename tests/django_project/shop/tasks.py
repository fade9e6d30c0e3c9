"""The project's gw tasks (GRAPHILE_WORKER["tasks_modules"]): they use the ORM, since
``manage.py gw run`` loads Django first. A plain ``def`` runs in a thread."""

from typing import Any

from django.db.models.functions import Now

from graphile_worker_cli.tasks import task

from .models import Order


@task
def send_receipt(payload: dict[str, Any], ctx: object) -> None:
    Order.objects.filter(id=payload["order_id"]).update(receipt_sent_at=Now())
