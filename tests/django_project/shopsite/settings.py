"""Settings of the test project: the database comes from GW_TEST_DJANGO_DATABASE_URL (and,
for the ``other`` alias, GW_TEST_DJANGO_OTHER_URL); GW_TEST_DJANGO_GRAPHILE_WORKER (JSON)
is merged into GRAPHILE_WORKER; GW_TEST_DJANGO_SETTINGS (JSON) overrides top-level
settings (USE_TZ, TIME_ZONE, CONN_MAX_AGE of every database)."""

import json
import os
from typing import Any
from urllib.parse import unquote, urlsplit


def database(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


SECRET_KEY = "test-project-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "shop",
    "graphile_worker_cli.contrib.django",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": database(os.environ["GW_TEST_DJANGO_DATABASE_URL"])}
if os.environ.get("GW_TEST_DJANGO_OTHER_URL"):
    DATABASES["other"] = database(os.environ["GW_TEST_DJANGO_OTHER_URL"])

GRAPHILE_WORKER = {
    "schema": "graphile_worker",
    "tasks_modules": ["shop.tasks"],
    "concurrency": 2,
}
GRAPHILE_WORKER.update(json.loads(os.environ.get("GW_TEST_DJANGO_GRAPHILE_WORKER", "{}")))

_overrides = json.loads(os.environ.get("GW_TEST_DJANGO_SETTINGS", "{}"))
USE_TZ = _overrides.get("USE_TZ", USE_TZ)
TIME_ZONE = _overrides.get("TIME_ZONE", "UTC")
if "CONN_MAX_AGE" in _overrides:
    for _database in DATABASES.values():
        _database["CONN_MAX_AGE"] = _overrides["CONN_MAX_AGE"]
ROOT_URLCONF = "shopsite.urls"
ALLOWED_HOSTS = ["testserver"]
