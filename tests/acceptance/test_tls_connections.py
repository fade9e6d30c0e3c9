"""``gw`` commands with a node-postgres TLS URL, against a throwaway cluster that requires
TLS (tests/helpers/tls_cluster.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers.gw_process import env_without_database
from tests.helpers.paths import GW
from tests.helpers.tls_cluster import cluster_url


def test_gw_commands_take_a_tls_url(
    tls_port: int, tls_certificates: Path, tmp_path: Path
) -> None:
    env = env_without_database(
        DATABASE_URL=cluster_url(tls_port, f"ssl=true&sslrootcert={tls_certificates / 'ca.crt'}")
    )
    for args in (["migrate"], ["add-job", "tls_task"], ["jobs", "list"]):
        result = subprocess.run(
            [GW, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (args, result.stderr)
        assert result.stderr == ""
    assert "tls_task" in result.stdout
