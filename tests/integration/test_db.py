"""``db`` against a real server: its refusal never quotes a misread password."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from graphile_worker_cli import db
from graphile_worker_cli.errors import DatabaseConnectError
from tests.helpers.database import SECRETS


async def test_a_connection_error_does_not_quote_a_misread_password(pg_admin_url: str) -> None:
    # The un-encoded '/' makes a URL parser read "Secr3t@elsewhere/jobs" as the database
    # name, which the server's refusal then quotes.
    server = urlsplit(pg_admin_url)
    address = f"{server.hostname}:{server.port}"
    url = f"postgres://{server.username}:Sup3r@{address}/Secr3t@elsewhere/jobs"
    with pytest.raises(DatabaseConnectError) as caught:
        await db.connect(url)
    message = caught.value.message
    shown = f"postgres://{server.username}:***@elsewhere/jobs"
    assert message.startswith(f"could not connect to {shown}:")
    assert "does not exist" in message  # the server did answer: its message was scrubbed
    assert "percent-encode" in message
    for secret in SECRETS:
        assert secret not in message
