"""A throwaway PostgreSQL cluster with TLS on, for the connection tests: a certificate
authority and a server certificate made with openssl, initdb, and a server on a free port
of 127.0.0.1 that refuses connections without TLS (the shared test server has TLS off);
and whether gw's connections to it use TLS. tests/conftest.py starts it (``tls_port``)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from graphile_worker_cli import db
from graphile_worker_cli.errors import DatabaseConnectError
from tests.helpers.metrics import free_port

SERVER_USER = "postgres"
"""Who runs the cluster when the tests run as root (PostgreSQL refuses to run as root)."""


def make_certificates(folder: Path) -> None:
    """``ca.crt``/``ca.key`` (a certificate authority) and ``server.crt``/``server.key`` (for
    localhost and 127.0.0.1, signed by it) in ``folder``."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "2", "-subj", "/CN=gw test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    bindir = subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(bindir) / name)


@contextmanager
def tls_cluster(certificates: Path) -> Iterator[int]:
    """Start the cluster; yield its port (user postgres, trust, TLS required)."""
    root = Path(tempfile.mkdtemp(prefix="gw-tls-cluster-"))
    root.chmod(0o755)
    data = root / "data"
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", SERVER_USER, "--"] if as_root else []
    port = free_port()
    try:
        for name in ("server.crt", "server.key"):
            shutil.copy(certificates / name, root / name)
        (root / "server.key").chmod(0o600)
        if as_root:
            user = pwd.getpwnam(SERVER_USER)
            for path in (root, root / "server.crt", root / "server.key"):
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(
            [*prefix, _binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
            check=True, capture_output=True, timeout=120,
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nssl = on\n"
                f"ssl_cert_file = '{root / 'server.crt'}'\n"
                f"ssl_key_file = '{root / 'server.key'}'\n"
                "fsync = off\n"
            )
        (data / "pg_hba.conf").write_text(
            "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"
        )
        subprocess.run(
            [*prefix, _binary("pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
             "-t", "60", "start"],
            check=True, capture_output=True, timeout=90,
        )
        try:
            yield port
        finally:
            subprocess.run(
                [*prefix, _binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True, timeout=60, check=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cluster_url(port: int, query: str) -> str:
    """A URL to the cluster's ``postgres`` database, with ``query`` as its parameters."""
    return f"postgres://postgres@127.0.0.1:{port}/postgres?{query}"


async def uses_tls(target: str) -> bool:
    """Whether gw's connection to ``target`` is encrypted (raises if it cannot connect)."""
    conn = await db.connect(target)
    try:
        on: bool = await conn.fetchval("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        return on
    finally:
        await conn.close()


def accepted(target: str) -> bool:
    """Whether gw connects to ``target`` (over TLS: the cluster refuses anything else)."""
    try:
        return asyncio.run(uses_tls(target))
    except DatabaseConnectError:
        return False
