"""``gw config show`` and ``gw --version`` as real processes: a missing config file is one
line and exit 2; the version names gw, the protocol and the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import GW

pytestmark = pytest.mark.usefixtures("clean_environment")


def test_missing_config_file_exits_2_without_a_traceback(tmp_path: Path) -> None:
    completed = subprocess.run(
        [str(GW), "config", "show", "--config", "missing.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.strip() == "error: config file missing.toml not found"


def test_version_names_gw_and_the_protocol_and_matches_the_package() -> None:
    from importlib.metadata import version

    import graphile_worker_cli

    result = subprocess.run(
        [sys.executable, "-m", "graphile_worker_cli", "--version"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"gw {version('graphile-worker-cli')} (Graphile Worker 0.18.0")
    assert "20 migrations" in result.stdout
    assert graphile_worker_cli.__version__ == version("graphile-worker-cli")
