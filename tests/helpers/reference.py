"""Running the Node.js reference (graphile-worker 0.18.0, and older releases for upgrade
tests) from the committed lock file in tests/interop."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

INTEROP_DIR = Path(__file__).resolve().parent.parent / "interop"
NODE_MODULES = INTEROP_DIR / "node_modules"
RELEASES = {
    "0.18.0": NODE_MODULES / "graphile-worker" / "dist" / "cli.js",
    "0.16.6": NODE_MODULES / "graphile-worker-0-16" / "dist" / "cli.js",
    "0.13.0": NODE_MODULES / "graphile-worker-0-13" / "dist" / "cli.js",
}


def ensure_installed() -> None:
    """Install the pinned reference with ``npm ci`` if it is missing (tests must run it)."""
    if all(path.exists() for path in RELEASES.values()):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is required for the interop tests (install Node.js 20+)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=INTEROP_DIR, check=True
    )


def reference_command(*args: str, release: str = "0.18.0") -> list[str]:
    ensure_installed()
    return ["node", str(RELEASES[release]), *args]


def reference_env(schema: str = "graphile_worker") -> dict[str, str]:
    env = dict(os.environ)
    env["GRAPHILE_WORKER_SCHEMA"] = schema
    env.setdefault("NODE_NO_WARNINGS", "1")
    return env


def run_reference(
    url: str, *args: str, release: str = "0.18.0", schema: str = "graphile_worker",
    cwd: Path | None = None, timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the reference CLI to completion (for ``--schema-only`` or ``--once``)."""
    return subprocess.run(
        reference_command("-c", url, *args, release=release),
        cwd=cwd, env=reference_env(schema), capture_output=True, text=True, timeout=timeout,
    )


async def start_reference(
    url: str, *args: str, schema: str = "graphile_worker", cwd: Path | None = None,
) -> asyncio.subprocess.Process:
    """Start a long-running reference worker; the caller stops it (SIGTERM) and waits."""
    return await asyncio.create_subprocess_exec(
        *reference_command("-c", url, *args), cwd=cwd, env=reference_env(schema),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
