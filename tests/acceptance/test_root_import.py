"""``import graphile_worker_cli`` stays cheap: the root resolves its names lazily."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_root_loads_no_submodule() -> None:
    code = (
        "import sys, graphile_worker_cli; "
        "print(sorted(m for m in sys.modules if m.startswith('graphile_worker_cli.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "[]"
