"""The test Django project (tests/django_project) run as ``manage.py`` processes on a
database given through its environment."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

from tests.helpers.gw_process import clean_env
from tests.helpers.paths import REPO_ROOT

PROJECT = REPO_ROOT / "tests" / "django_project"


@dataclass
class Done:
    code: int
    out: str
    err: str


def project_env(
    db_url: str,
    other_url: str | None = None,
    *,
    settings: dict[str, object] | None = None,
    **graphile_worker: object,
) -> dict[str, str]:
    """The environment of the project on ``db_url``; ``settings`` override Django's
    (USE_TZ, TIME_ZONE, CONN_MAX_AGE), the keywords ``GRAPHILE_WORKER``'s."""
    env = clean_env(GW_TEST_DJANGO_DATABASE_URL=db_url)
    if other_url:
        env["GW_TEST_DJANGO_OTHER_URL"] = other_url
    if settings:
        env["GW_TEST_DJANGO_SETTINGS"] = json.dumps(settings)
    if graphile_worker:
        env["GW_TEST_DJANGO_GRAPHILE_WORKER"] = json.dumps(graphile_worker)
    return env


async def manage(env: dict[str, str], *args: str, timeout: float = 60) -> Done:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", *args, cwd=PROJECT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def ok(env: dict[str, str], *args: str) -> str:
    done = await manage(env, *args)
    assert done.code == 0, f"manage.py {' '.join(args)}: {done.err}"
    return done.out
