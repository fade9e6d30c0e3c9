"""``manage.py place_order``: an order and its receipt job in one ``atomic()`` block."""

import tempfile
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connections, transaction

from graphile_worker_cli.contrib import django as gw
from graphile_worker_cli.job import JobSpec

from ...models import Order


class PaymentDeclined(Exception):
    pass


class Command(BaseCommand):
    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--fail", action="store_true", help="raise inside the block")
        parser.add_argument("--hold", help="commit only once this file exists")
        parser.add_argument("--using", default="default")
        parser.add_argument("--count-round-trips", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["using"]
        try:
            with transaction.atomic(using=using):
                order = Order.objects.using(using).create(note="two books")
                spec = JobSpec(queue_name="receipts", job_key=f"receipt:{order.id}",
                               max_attempts=3)

                def add() -> int:
                    return gw.add_job(
                        "send_receipt", {"order_id": order.id}, spec, using=using
                    ).id

                if options["count_round_trips"]:
                    job_id, trips = _traced(connections[using].connection, add)
                    self.stdout.write(f"round trips {trips}")
                else:
                    job_id = add()
                self.stdout.write(f"queued {job_id} {order.id}")
                self.stdout.flush()
                if options["hold"]:
                    _wait_for(Path(options["hold"]))
                if options["fail"]:
                    raise PaymentDeclined
        except PaymentDeclined:
            self.stdout.write("rolled back")
            return
        self.stdout.write("committed")


def _traced(conn: Any, action: Any) -> tuple[int, int]:
    """``action()``'s result and its round trips on the psycopg connection under Django's
    (the server's ReadyForQuery messages in libpq's protocol trace)."""
    import psycopg

    with tempfile.TemporaryFile() as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            result = action()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        lines = trace.read().decode(errors="replace").splitlines()
    return result, sum(1 for line in lines if line.startswith("B") and "ReadyForQuery" in line)


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
