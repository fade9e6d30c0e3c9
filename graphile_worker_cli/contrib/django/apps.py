"""The Django app: add ``"graphile_worker_cli.contrib.django"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class GraphileWorkerConfig(AppConfig):
    name = "graphile_worker_cli.contrib.django"
    label = "graphile_worker"
    verbose_name = "Graphile Worker"
