"""gw's settings in a Django project: ``settings.GRAPHILE_WORKER`` and ``DATABASES``.

``GRAPHILE_WORKER`` is a dict of gw's TOML keys (``schema``, ``concurrency``,
``tasks_modules``...; see docs/configuration.md) plus ``database``: the alias in
``DATABASES`` that holds the queue (default ``"default"``). The database URL gw's CLI
needs is built from that alias, so no second URL is configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS

from graphile_worker_cli import config, db
from graphile_worker_cli.errors import ConfigError

SETTING = "GRAPHILE_WORKER"
WHERE = f"settings.{SETTING}"
POSTGRES_ENGINES = ("postgresql", "postgis")
"""``ENGINE`` values gw accepts end with one of these (Django's backend, or PostGIS)."""
URL_OPTIONS = (
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "application_name",
    "target_session_attrs",
)
"""Connection ``OPTIONS`` that carry over to gw's own connections; the others are
settings of Django or its driver (``pool``, ``server_side_binding``...)."""
CONNECTIONS_PLUGIN = "graphile_worker_cli.contrib.django.plugin:DjangoConnections"
"""Loaded by ``manage.py gw``: Django's connections recycled around each job."""


def raw_settings() -> dict[str, Any]:
    value = getattr(django_settings, SETTING, None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{WHERE} must be a dict of gw settings, got {type(value).__name__}")
    return dict(value)


def database_alias(alias: str | None = None) -> str:
    """``alias`` if given, else ``GRAPHILE_WORKER["database"]``, else "default"; checked."""
    if alias is None:
        alias = raw_settings().get("database", DEFAULT_DB_ALIAS)
    if not isinstance(alias, str) or alias not in django_settings.DATABASES:
        known = ", ".join(sorted(django_settings.DATABASES))
        raise ConfigError(
            f'{WHERE}: key "database": expected an alias in DATABASES ({known}), got {alias!r}'
        )
    return alias


def gw_values() -> dict[str, Any]:
    """The checked gw settings (``database`` left out); a ConfigError names the key."""
    values = {key: value for key, value in raw_settings().items() if key != "database"}
    return config.check_values(values, WHERE)


def schema() -> str:
    value = gw_values().get("schema", db.DEFAULT_SCHEMA)
    return str(value)


def database_url(database: Mapping[str, Any], alias: str = DEFAULT_DB_ALIAS) -> str:
    """A PostgreSQL URL for one ``DATABASES`` entry (a ``HOST`` that is a directory is a
    Unix socket, passed as ``?host=``)."""
    engine = str(database.get("ENGINE", ""))
    if not engine.endswith(POSTGRES_ENGINES):
        raise ConfigError(
            f"DATABASES[{alias!r}] uses {engine or 'no ENGINE'}: gw needs PostgreSQL "
            "(django.db.backends.postgresql)"
        )
    user = str(database.get("USER") or "")
    password = str(database.get("PASSWORD") or "")
    host = str(database.get("HOST") or "")
    port = str(database.get("PORT") or "")
    name = str(database.get("NAME") or "")
    options = database.get("OPTIONS") or {}
    query = {key: str(options[key]) for key in URL_OPTIONS if key in options}
    userinfo = quote(user, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    if host.startswith("/"):
        query["host"] = host
        host = ""
    netloc = (userinfo + "@" if userinfo else "") + host + (":" + port if port else "")
    url = f"postgres://{netloc}/{quote(name, safe='')}"
    return url + ("?" + urlencode(query) if query else "")


def cli_environment(alias: str | None = None) -> dict[str, str]:
    """GW_ variables that make gw's CLI use this project's settings: the database of the
    alias (default: the configured one) and every key of ``GRAPHILE_WORKER``; they
    override the process environment, and command-line flags override them."""
    alias = database_alias(alias)
    env = {config.env_var("database_url"): database_url(django_settings.DATABASES[alias], alias)}
    values = gw_values()
    # Tasks use the ORM: their connections are recycled around each job (see plugin).
    plugins = list(values.get("plugins", []))
    if CONNECTIONS_PLUGIN not in plugins:
        values["plugins"] = [CONNECTIONS_PLUGIN, *plugins]
    for key, value in values.items():
        if key != "database_url":
            env[config.env_var(key)] = config.env_text(value)
    return env
