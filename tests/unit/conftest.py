"""The unit tier: no database, no subprocess, no network.

Every test here runs with the outside world shut. Opening a connection (a socket, asyncio,
uvloop, the libpq drivers) or starting a process (subprocess, asyncio, multiprocessing,
``os.fork``/``spawn``/``exec``/``system``) raises ``OutsideWorldRefused`` and fails the test
even when the code under test swallows that error; asking for a database fixture fails it
too. Binding a loopback port stays allowed: it reaches nothing. A test that needs any of
this belongs in tests/integration (PostgreSQL, in-process) or tests/acceptance (processes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.outside_world import (
    WHERE_INSTEAD,
    OutsideWorld,
    shut_network,
    shut_processes,
)


@pytest.fixture(autouse=True)
def outside_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[OutsideWorld]:
    """The outside world, shut for this test; fails the test if it was reached for."""
    world = OutsideWorld()
    shut_network(world, monkeypatch)
    shut_processes(world, monkeypatch)
    yield world
    if world.attempts:
        pytest.fail(
            "this unit test reached outside the process: " + "; ".join(world.attempts)
            + f"; {WHERE_INSTEAD}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """Every database fixture (db_url, conn, empty_db_url...) starts here: refused."""
    pytest.fail(f"a unit test asked for a database: {WHERE_INSTEAD}", pytrace=False)
