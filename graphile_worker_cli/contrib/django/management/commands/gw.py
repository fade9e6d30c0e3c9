"""``manage.py gw COMMAND ...``: gw's CLI (run, add-job, jobs, migrate...) on the database
and ``GRAPHILE_WORKER`` settings of this project. Arguments go to gw untouched; Django's
settings are loaded first, so tasks (``tasks_modules``) can use the ORM.
``manage.py gw --database ALIAS COMMAND ...`` picks another ``DATABASES`` alias."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand

from graphile_worker_cli.errors import ConfigError


class Command(BaseCommand):
    help = "Run gw's CLI on this project's database: manage.py gw run, manage.py gw add-job..."

    def run_from_argv(self, argv: list[str]) -> None:
        from graphile_worker_cli.cli.app import main
        from graphile_worker_cli.contrib.django import conf
        from graphile_worker_cli.worker import processes

        args = argv[2:]
        alias = None
        if len(args) >= 2 and args[0] == "--database":
            alias, args = args[1], args[2:]
        try:
            environment = conf.cli_environment(alias)
        except ConfigError as error:
            sys.stderr.write(f"Error: {error.message}\n")
            raise SystemExit(error.exit_code) from None
        os.environ.update(environment)
        # Children of `run --processes N` are this command again: Django set up first.
        selector = ["--database", alias] if alias is not None else []
        os.environ[processes.CHILD_COMMAND_ENV] = json.dumps(
            [sys.executable, os.path.abspath(argv[0]), argv[1], *selector]
        )
        sys.argv = [f"{os.path.basename(argv[0])} {argv[1]}", *args]
        main()

    def handle(self, *args: Any, **options: Any) -> None:
        """Not reached: run_from_argv hands every argument to gw."""
