"""The unit tier's guard (tests/unit/conftest.py): every way out is refused and recorded,
and database fixtures are refused."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import subprocess

import psycopg
import psycopg2
import pytest

from tests.helpers.outside_world import OutsideWorld, OutsideWorldRefused


def test_connections_are_refused_and_recorded(outside_world: OutsideWorld) -> None:
    with pytest.raises(OutsideWorldRefused, match=r"open a connection to \('127.0.0.1', 5432\)"):
        socket.create_connection(("127.0.0.1", 5432), timeout=1)

    async def open_asyncio_connection() -> None:
        await asyncio.open_connection("127.0.0.1", 5432)

    with pytest.raises(OutsideWorldRefused, match="tests/integration"):
        asyncio.run(open_asyncio_connection())
    with pytest.raises(OutsideWorldRefused, match="psycopg connection"):
        psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres")
    with pytest.raises(OutsideWorldRefused, match="psycopg2 connection"):
        psycopg2.connect("postgres://postgres@127.0.0.1:5432/postgres")
    assert len(outside_world.attempts) == 4
    outside_world.attempts.clear()  # refused as expected: this test itself passes


def test_processes_are_refused_and_recorded(outside_world: OutsideWorld) -> None:
    with pytest.raises(OutsideWorldRefused, match="start the process 'gw --version'"):
        subprocess.run(["gw", "--version"], check=False)

    async def start_asyncio_process() -> None:
        await asyncio.create_subprocess_exec("gw", "--version")

    with pytest.raises(OutsideWorldRefused, match="tests/acceptance"):
        asyncio.run(start_asyncio_process())
    with pytest.raises(OutsideWorldRefused, match=r"os\.fork\(\)"):
        os.fork()
    with pytest.raises(OutsideWorldRefused, match="start the process"):
        multiprocessing.get_context("spawn").Process(target=print).start()
    with pytest.raises(OutsideWorldRefused, match="run 'true'"):
        os.system("true")
    assert len(outside_world.attempts) == 5
    outside_world.attempts.clear()


def test_database_fixtures_are_refused(request: pytest.FixtureRequest) -> None:
    with pytest.raises(pytest.fail.Exception, match="a unit test asked for a database"):
        request.getfixturevalue("db_url")
