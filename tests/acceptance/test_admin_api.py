"""``gw admin`` as a real process: refusing unsafe settings, serving until SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from typing import Any

import pytest


def _gw(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphile_worker_cli", "admin", *args],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_gw_admin_refuses_public_bind_without_auth() -> None:
    result = _gw("--host", "0.0.0.0", "-c", "postgres://nobody@127.0.0.1:1/x")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "without authentication" in lines[0]
    assert "Traceback" not in result.stderr
    bad = _gw("--basic-auth", "nopassword")
    assert bad.returncode == 2
    assert "expected user:password" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_gw_admin_refuses_a_short_token(where: str) -> None:
    args = ["--host", "0.0.0.0", "-c", "postgres://nobody@127.0.0.1:1/x"]
    if where == "flag":
        result = _gw(*args, "--token", "hunter2")
    else:
        result = _gw(*args, env={"GW_ADMIN_TOKEN": "hunter2"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "error: admin token too short (7 characters): expected at least 16, such as the "
        "output of python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    )


async def test_gw_admin_serves_until_terminated(db_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "graphile_worker_cli", "admin", "--port", "0", "--read-only",
        "-c", db_url.replace("postgres@", "postgres:hidden@"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        banner = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
        assert found, banner
        assert "(read-only)" in banner
        base = found.group(0)

        def get(path: str) -> dict[str, Any]:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                return dict(json.load(response))

        session = await asyncio.to_thread(get, "api/session")
        assert session["read_only"] is True
        assert session["database"] is not None and "hidden" not in session["database"]
        overview = await asyncio.to_thread(get, "api/overview")
        assert overview["counts"]["total"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0
