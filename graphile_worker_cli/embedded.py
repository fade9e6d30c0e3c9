"""SKELETON — the embedded PostgreSQL (pgserver) owner replaces this."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from graphile_worker_cli import config
from graphile_worker_cli.errors import EmbeddedDatabaseError


@asynccontextmanager
async def database_url(settings: config.Settings) -> AsyncIterator[str]:
    """Yield the configured URL, or start an embedded server when none is configured."""
    if settings.database_url:
        yield settings.database_url
        return
    raise EmbeddedDatabaseError("no database configured and the embedded server is not ready yet")
    yield ""
