"""node-postgres's URL forms given to gw and to the reference, against a throwaway cluster
that has TLS on and refuses connections without it (tests/helpers/tls_cluster.py): where
both agree, and where gw reads ``sslmode`` as libpq does."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import reference
from tests.helpers.tls_cluster import accepted, cluster_url

pytestmark = pytest.mark.interop


def reference_accepts(target: str, cwd: Path) -> bool:
    result = subprocess.run(
        reference.reference_command("-c", target, "--schema-only"), cwd=cwd,
        env=reference.reference_env(), capture_output=True, text=True, timeout=120,
    )
    return result.returncode == 0


def test_node_postgres_url_forms_on_a_tls_server(
    tls_port: int, tls_certificates: Path, tmp_path: Path
) -> None:
    ca = tls_certificates / "ca.crt"
    # query -> (gw connects, the reference connects)
    expected = {
        f"ssl=true&sslrootcert={ca}": (True, True),
        f"ssl=1&sslrootcert={ca}": (True, True),
        "ssl=1": (False, False),  # the test CA is not one of the system's
        "ssl=no-verify": (True, True),
        "sslmode=no-verify": (True, True),
        "ssl=0": (False, False),  # the server refuses connections without TLS
        "sslmode=disable": (False, False),
        f"sslmode=verify-full&sslrootcert={ca}": (True, True),
        # libpq's reading: encrypted, certificate not checked. node-postgres reads require
        # as verify-full, and the test CA is not one it knows.
        "sslmode=require": (True, False),
        "ssl=0&sslmode=require": (True, False),  # sslmode wins over ssl in both
    }
    found = {
        query: (
            accepted(cluster_url(tls_port, query)),
            reference_accepts(cluster_url(tls_port, query), tmp_path),
        )
        for query in expected
    }
    assert found == expected
