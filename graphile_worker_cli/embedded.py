"""The embedded PostgreSQL server, used when no database is configured anywhere (no URL,
no PG* variable).

pgserver (the ``embedded`` extra) ships PostgreSQL binaries and runs a server on a Unix
socket in the data directory. Facts this module relies on:

- Several processes may use one data directory at once: pgserver takes an inter-process
  lock, starts the server only when none is running there, keeps a list of the processes
  using it, and stops it when the last one leaves. A process killed with SIGKILL stays on
  that list, so before joining we drop the ids of processes that no longer exist.
- As root, pgserver runs PostgreSQL as a system user ``pgserver`` (created with useradd
  when missing) and makes the data directory's parents traversable by others.
- Starting is blocking (initdb takes seconds the first time), so the async variant runs it
  in a thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from graphile_worker_cli import config, conninfo
from graphile_worker_cli.errors import EmbeddedDatabaseError, EmbeddedExtraMissingError

log = logging.getLogger("gw.embedded")

NO_DATABASE = "no database configured (DATABASE_URL, --connection or a PG* variable)"
MISSING_EXTRA_MESSAGE = (
    f"{NO_DATABASE} and the embedded server needs the extra: "
    "pip install 'graphile-worker-cli[embedded]'"
)
_PIDS_FILE = ".handle_pids.json"

# One pgserver handle per data directory in this process, shared by nested users.
_lock = threading.Lock()
_servers: dict[Path, tuple[Any, int]] = {}


def _import_pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import time when XDG_RUNTIME_DIR is unset; harmless.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise EmbeddedExtraMissingError(MISSING_EXTRA_MESSAGE) from None
    if logging.getLogger("pgserver").level == logging.NOTSET:
        # pgserver logs every step at INFO and dumps the server log on failure; our error
        # message points at the log file instead.
        logging.getLogger("pgserver").setLevel(logging.CRITICAL)
    return pgserver


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_processes(pgserver: Any, data_dir: Path) -> None:
    """Drop processes that died without leaving from pgserver's list of server users.

    Otherwise the server would never be stopped again: each later process would see
    a dead "other user" and leave the server running when it exits.
    """
    pids_file = data_dir / _PIDS_FILE
    with pgserver.PostgresServer._lock:
        try:
            pids = json.loads(pids_file.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(pids, list):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _process_exists(pid)]
        if alive != pids:
            pids_file.write_text(json.dumps(alive))


def _failure(data_dir: Path, error: BaseException) -> EmbeddedDatabaseError:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    server_log = data_dir / "log"
    hint = f"; see {server_log}" if server_log.exists() else ""
    return EmbeddedDatabaseError(
        f"could not start the embedded PostgreSQL server in {data_dir}: {detail}{hint}"
    )


def start(data_dir: Path) -> str:
    """Start (or join) the embedded server in ``data_dir``; return its URL. Blocking.

    Each call must be matched by one ``stop(data_dir)``.
    """
    data_dir = data_dir.expanduser().resolve()
    with _lock:
        entry = _servers.get(data_dir)
        if entry is not None:
            server, users = entry
            _servers[data_dir] = (server, users + 1)
            return str(server.get_uri())
        pgserver = _import_pgserver()
        try:
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            if data_dir.exists():
                _forget_dead_processes(pgserver, data_dir)
            # pgserver caches a handle per directory even after this process left the
            # server; a stale handle would not register us as a user again.
            pgserver.PostgresServer._instances.pop(data_dir, None)
            server = pgserver.get_server(data_dir, cleanup_mode="stop")
            url = str(server.get_uri())
        except (OSError, subprocess.SubprocessError, RuntimeError, AssertionError) as error:
            raise _failure(data_dir, error) from error
        _servers[data_dir] = (server, 1)
    _announce(data_dir)
    return url


def _announce(data_dir: Path) -> None:
    """Say, in one line on stderr, that the embedded server is in use: as a log record
    when logging is set up (gw run, gw migrate, an application), else printed (the
    commands that do not log), so no command starts it silently."""
    message = f"{NO_DATABASE}: using the embedded PostgreSQL server in {data_dir}"
    if log.hasHandlers():
        log.warning(message, extra={"gw": {"data_dir": str(data_dir)}})
    else:
        sys.stderr.write(f"note: {message}\n")


def stop(data_dir: Path) -> None:
    """Leave the embedded server; it stops when no process uses it any more. Blocking."""
    data_dir = data_dir.expanduser().resolve()
    with _lock:
        entry = _servers.get(data_dir)
        if entry is None:
            return
        server, users = entry
        if users > 1:
            _servers[data_dir] = (server, users - 1)
            return
        del _servers[data_dir]
        try:
            server.cleanup()
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("could not stop the embedded PostgreSQL server in %s: %s", data_dir, error)


@asynccontextmanager
async def database_url(settings: config.Settings) -> AsyncIterator[str]:
    """Yield the configured URL; without one, ``conninfo.FROM_ENVIRONMENT`` when a PG*
    variable names a server; else start the embedded server and yield its URL."""
    configured = settings.database_url or conninfo.url_from_environment()
    if configured:
        yield configured
        return
    data_dir = settings.embedded_data_dir
    url = await asyncio.to_thread(start, data_dir)
    try:
        yield url
    finally:
        # Shielded so a cancelled caller still stops the server it started.
        await asyncio.shield(asyncio.to_thread(stop, data_dir))


@contextmanager
def database_url_sync(settings: config.Settings) -> Iterator[str]:
    """``database_url`` for code without an event loop."""
    configured = settings.database_url or conninfo.url_from_environment()
    if configured:
        yield configured
        return
    url = start(settings.embedded_data_dir)
    try:
        yield url
    finally:
        stop(settings.embedded_data_dir)
