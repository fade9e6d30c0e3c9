"""Debian's PgBouncer in transaction mode, started on a free port of 127.0.0.1 with a
generated configuration, in front of the test server: every database of the server, trust
auth, a pool of a few server connections per database. ``through(url, port)`` turns a
direct URL into the same URL through the pooler. The acceptance tier's fixtures start it."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.helpers.metrics import free_port

RUN_AS = "postgres"
"""Who runs PgBouncer when the tests run as root (it refuses to run as root)."""
START_TIMEOUT = 20.0


def binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )


def _config(root: Path, port: int, server_host: str, server_port: int, pool_size: int) -> str:
    return (
        "[databases]\n"
        f"* = host={server_host} port={server_port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"unix_socket_dir = {root}\n"
        "auth_type = trust\n"
        f"auth_file = {root / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\n"
        f"max_db_connections = {pool_size}\n"
        "max_client_conn = 500\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {root / 'pgbouncer.log'}\npidfile = {root / 'pgbouncer.pid'}\n"
    )


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def pgbouncer(server_url: str, *, pool_size: int = 4) -> Iterator[int]:
    """Start PgBouncer in front of ``server_url``'s server; yield its port."""
    program = binary()
    if program is None:
        raise RuntimeError("pgbouncer is not installed (scripts/test.sh installs it)")
    server = urlsplit(server_url)
    user = server.username or "root"
    root = Path(tempfile.mkdtemp(prefix="gw-pgbouncer-"))
    root.chmod(0o755)
    port = free_port()
    (root / "users.txt").write_text(f'"{user}" ""\n')
    (root / "pgbouncer.ini").write_text(
        _config(root, port, server.hostname or "127.0.0.1", server.port or 5432, pool_size)
    )
    as_root = os.geteuid() == 0
    if as_root:
        account = pwd.getpwnam(RUN_AS)
        for path in (root, root / "users.txt", root / "pgbouncer.ini"):
            os.chown(path, account.pw_uid, account.pw_gid)
    prefix = ["runuser", "-u", RUN_AS, "--"] if as_root else []
    process = subprocess.Popen(
        [*prefix, program, str(root / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = root / "pgbouncer.log"
                raise RuntimeError(
                    "pgbouncer did not start: " + (log.read_text() if log.exists() else "")
                )
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


def through(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the pooler's."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))
