"""``manage.py schedule_receipt AT``: a receipt job whose run_at is ``AT`` (ISO 8601, naive
or not), printed back as the job was stored."""

from argparse import ArgumentParser
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from graphile_worker_cli.contrib import django as gw
from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.job import JobSpec


class Command(BaseCommand):
    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("at")

    def handle(self, *args: Any, **options: Any) -> None:
        run_at = datetime.fromisoformat(options["at"])
        try:
            with transaction.atomic():
                added = gw.add_job("send_receipt", {"order_id": 0}, JobSpec(run_at=run_at))
                bulk = gw.add_jobs([("send_receipt", {"order_id": 1}, JobSpec(run_at=run_at))])
        except BadInputError as error:
            raise CommandError(str(error)) from None
        assert added.run_at is not None
        self.stdout.write(f"{added.run_at.isoformat()} {bulk[0].run_at == added.run_at}")
