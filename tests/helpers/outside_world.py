"""Shutting a test off from the outside world: the unit tier's guard (tests/unit/conftest.py).

Connections (sockets, uvloop, the libpq drivers) and processes (subprocess, asyncio,
multiprocessing, ``os.fork``/``spawn``/``exec``/``system``) are refused where they start:
``OutsideWorldRefused`` is raised and the attempt is recorded, so the test fails even when
the code under test swallows the error.
"""

from __future__ import annotations

import _posixsubprocess
import os
import socket
import subprocess
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

WHERE_INSTEAD = "move it to tests/integration (database) or tests/acceptance (processes)"


class OutsideWorldRefused(OSError):
    """Raised where a unit test reached for a connection or a process. An ``OSError``, as a
    refused connection or a missing executable would be, so callers clean up as they would
    for one (and a caller that swallows it still fails the test: the attempt is recorded)."""


class OutsideWorld:
    """What the running test tried to reach; refusing records it, then raises."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, what: str) -> NoReturn:
        self.attempts.append(what)
        raise OutsideWorldRefused(f"a unit test may not {what}: {WHERE_INSTEAD}")

    def refusing(self, what: Callable[..., str]) -> Callable[..., NoReturn]:
        def refused(*args: Any, **kwargs: Any) -> NoReturn:
            self.refuse(what(*args, **kwargs))

        return refused


def _argv(args: Any) -> str:
    if isinstance(args, str | bytes | os.PathLike):
        return repr(os.fsdecode(args))
    return repr(" ".join(os.fsdecode(arg) for arg in args))


def shut_network(world: OutsideWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    connect = world.refusing(lambda _sock, address: f"open a connection to {address!r}")
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    # uvloop and libpq connect below Python's socket module: refuse them at their entry.
    try:
        import uvloop
    except ImportError:
        pass
    else:
        monkeypatch.setattr(uvloop, "new_event_loop",
                            world.refusing(lambda: "start a uvloop event loop"))
    try:
        import psycopg
    except ImportError:
        pass
    else:
        # Both connection classes, and the module's connect(), open through this one.
        monkeypatch.setattr(psycopg.BaseConnection, "_connect_gen", classmethod(
            world.refusing(lambda _cls, *a, **k: "open a psycopg connection")))
    try:
        import psycopg2
    except ImportError:
        pass
    else:
        monkeypatch.setattr(psycopg2, "_connect",
                            world.refusing(lambda *a, **k: "open a psycopg2 connection"))


def shut_processes(world: OutsideWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "_execute_child", world.refusing(
        lambda _popen, args, *rest: f"start the process {_argv(args)}"))
    fork_exec = world.refusing(lambda args, *rest: f"start the process {_argv(args)}")
    monkeypatch.setattr(_posixsubprocess, "fork_exec", fork_exec)  # multiprocessing
    for name in ("fork", "forkpty"):
        monkeypatch.setattr(os, name, world.refusing(lambda name=name: f"call os.{name}()"))
    for name in ("posix_spawn", "posix_spawnp", "execv", "execve"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, world.refusing(
                lambda path, *rest, name=name: f"call os.{name}({os.fsdecode(path)!r})"))
    monkeypatch.setattr(os, "system", world.refusing(lambda command: f"run {command!r}"))
