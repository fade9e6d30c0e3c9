"""The admin API's settings checked without a database: its token."""

from __future__ import annotations

import pytest

from graphile_worker_cli import admin
from graphile_worker_cli.errors import BadInputError


def test_a_short_token_is_refused() -> None:
    with pytest.raises(BadInputError, match=r"admin token too short \(15 characters\): "
                       r"expected at least 16"):
        admin.AdminAuth(token="x" * 15)
    assert admin.AdminAuth(token="x" * 16).configured
    with pytest.raises(BadInputError, match="too short"):
        admin.AdminAuth.from_options("short", None)
