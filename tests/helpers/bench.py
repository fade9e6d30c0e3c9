"""Running ``python -m bench`` from the tests, against the test server."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers.paths import REPO_ROOT


def run_bench(*args: str, admin_url: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` with the test server as its maintenance database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GW_")}
    env["GW_BENCH_DATABASE_URL"] = admin_url
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )
