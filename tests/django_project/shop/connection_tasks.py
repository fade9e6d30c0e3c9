"""Tasks that note the database server process behind their ORM connection (the tests of
connections recycled between jobs load them next to shop.tasks)."""

from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection

from graphile_worker_cli.tasks import task

from .models import Order


def _backend_pid() -> int:
    """The server process behind this thread's connection (a new one per connection)."""
    with connection.cursor() as cursor:
        cursor.execute("select pg_backend_pid()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@task
def note_connection(payload: dict[str, Any], ctx: object) -> None:
    Order.objects.create(note=f"sync {payload['n']} {_backend_pid()}")


@task
async def note_connection_async(payload: dict[str, Any], ctx: object) -> None:
    pid = await sync_to_async(_backend_pid)()
    await Order.objects.acreate(note=f"async {payload['n']} {pid}")
