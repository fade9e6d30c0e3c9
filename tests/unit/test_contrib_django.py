"""The Django integration's settings without Django running: a ``DATABASES`` entry becomes
gw's connection string."""

from __future__ import annotations

import pytest

from graphile_worker_cli.contrib.django import conf
from graphile_worker_cli.errors import ConfigError


def test_database_url_from_django_settings() -> None:
    engine = "django.db.backends.postgresql"
    assert conf.database_url({
        "ENGINE": engine, "NAME": "shop", "USER": "app", "PASSWORD": "p@ss:w/rd",
        "HOST": "db.internal", "PORT": 6432,
        "OPTIONS": {"sslmode": "require", "server_side_binding": True},
    }) == "postgres://app:p%40ss%3Aw%2Frd@db.internal:6432/shop?sslmode=require"
    assert conf.database_url({
        "ENGINE": "django.contrib.gis.db.backends.postgis", "NAME": "geo", "USER": "",
        "HOST": "/var/run/postgresql",
    }) == "postgres:///geo?host=%2Fvar%2Frun%2Fpostgresql"
    with pytest.raises(ConfigError, match=r"DATABASES\['legacy'\] uses "
                       r"django.db.backends.sqlite3: gw needs PostgreSQL"):
        conf.database_url({"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}, "legacy")
