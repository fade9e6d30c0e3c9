"""The recipes of docs/integrations.md and docs/testing.md, run as written: the blocks
marked ``recipe:`` are written to a folder and run on a real PostgreSQL; the blocks
marked ``django:`` must be the Django test project's files, which the tests run."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.connection_kinds import sqlalchemy_url
from tests.helpers.django_project import manage, ok, project_env
from tests.helpers.doc_recipes import INTEGRATIONS, TESTING, write_recipes
from tests.helpers.gw_process import clean_env, gw_command

S = "graphile_worker"


@pytest.fixture
async def recipes(db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> Path:
    """The recipes in a folder, their table created in the test's database."""
    folder = write_recipes(INTEGRATIONS, tmp_path / "recipes")
    await conn.execute((folder / "schema.sql").read_text())
    return folder


@pytest.fixture
def import_recipe() -> Iterator[type[_Importer]]:
    """Imports recipe modules; forgets them after the test."""
    yield _Importer
    for name in list(sys.modules):
        if name.startswith("recipe_"):
            del sys.modules[name]


class _Importer:
    @staticmethod
    def load(path: Path) -> types.ModuleType:
        name = "recipe_" + path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module


def run_once(url: str, tasks: Path) -> None:
    """``gw run --once`` on the recipes' task folder: the queued jobs really run."""
    done = subprocess.run(
        gw_command("run", "--once", "-c", url, "--tasks", str(tasks)), env=clean_env(),
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr


async def orders_and_jobs(conn: asyncpg.Connection) -> list[tuple[str, bool, int]]:
    """(note, receipt sent, jobs queued for it) per order."""
    rows = await conn.fetch(
        f"select o.note, o.receipt_sent, (select count(*) from {S}._private_jobs j"
        f" where j.payload->>'order_id' = o.id::text) as jobs from orders o order by o.id"
    )
    return [(row["note"], row["receipt_sent"], row["jobs"]) for row in rows]


# --- Django ----------------------------------------------------------------------------------

DJANGO_CLIENT = """
import json
from django.test import Client
client = Client(raise_request_exception=False)
for note in ("two books", "fraud"):
    response = client.post("/orders/", json.dumps({"note": note}),
                           content_type="application/json")
    print(response.status_code)
"""


async def test_django_view_recipe(db_url: str, conn: asyncpg.Connection) -> None:
    env = project_env(db_url)
    await ok(env, "migrate", "--verbosity", "0")
    out = await ok(env, "shell", "--verbosity", "0", "-c", DJANGO_CLIENT)
    assert out.split() == ["201", "500"]
    assert [tuple(row) for row in await conn.fetch("select note from shop_order")] == [
        ("two books",)
    ]
    assert await conn.fetchval(f"select count(*) from {S}._private_jobs") == 1
    done = await manage(env, "gw", "run", "--once")
    assert done.code == 0, done.err
    assert await conn.fetchval("select receipt_sent_at is not null from shop_order")


# --- Flask + SQLAlchemy ----------------------------------------------------------------------


def test_flask_sqlalchemy_recipe(
    db_url: str, recipes: Path, conn: asyncpg.Connection,
    import_recipe: type[_Importer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlalchemy_url(db_url, "psycopg"))
    flask_app = import_recipe.load(recipes / "flask_app.py")
    client = flask_app.app.test_client()
    created = client.post("/orders", json={"note": "two books"})
    assert created.status_code == 201
    assert client.post("/orders", json={"note": "fraud"}).status_code == 500
    with flask_app.app.app_context():
        flask_app.db.engine.dispose()
    assert asyncio.run(_orders(db_url)) == [("two books", False, 1)]
    run_once(db_url, recipes / "tasks")
    assert asyncio.run(_orders(db_url)) == [("two books", True, 0)]


async def _orders(url: str) -> list[tuple[str, bool, int]]:
    conn = await asyncpg.connect(url)
    try:
        return await orders_and_jobs(conn)
    finally:
        await conn.close()


# --- FastAPI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("recipe", "driver"), [
    ("fastapi_sqlalchemy.py", "asyncpg"), ("fastapi_psycopg.py", None),
])
def test_fastapi_recipes(
    recipe: str, driver: str | None, db_url: str, recipes: Path,
    import_recipe: type[_Importer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setenv("DATABASE_URL", sqlalchemy_url(db_url, driver) if driver else db_url)
    module = import_recipe.load(recipes / recipe)
    with TestClient(module.app) as client:
        for note in ("two books", "one pen"):
            response = client.post("/orders", json={"note": note})
            assert response.status_code == 201, response.text
        assert client.post("/orders", json={"wrong": 1}).status_code == 422
    assert asyncio.run(_orders(db_url)) == [("two books", False, 1), ("one pen", False, 1)]
    run_once(db_url, recipes / "tasks")
    assert asyncio.run(_orders(db_url)) == [("two books", True, 0), ("one pen", True, 0)]


# --- a psycopg script ------------------------------------------------------------------------


async def test_psycopg_script_recipe(
    db_url: str, recipes: Path, conn: asyncpg.Connection,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(recipes / "import_orders.py"), env=clean_env(DATABASE_URL=db_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert await orders_and_jobs(conn) == [("first", False, 1), ("second", False, 1)]
    reindex = await conn.fetch(
        f"select j.payload::text from {S}._private_jobs j join {S}._private_tasks t"
        f" on t.id = j.task_id where t.identifier = 'reindex' order by j.payload->>'shard'"
    )
    assert [json.loads(row[0]) for row in reindex] == [{"shard": n} for n in range(4)]
    await asyncio.to_thread(run_once, db_url, recipes / "tasks")
    assert await orders_and_jobs(conn) == [("first", True, 0), ("second", True, 0)]


# --- docs/testing.md -------------------------------------------------------------------------


async def test_testing_doc_example_passes_with_the_pytest_plugin(
    pg_admin_url: str, tmp_path: Path,
) -> None:
    folder = write_recipes(TESTING, tmp_path / "suite")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", cwd=folder,
        env=clean_env(GW_TEST_DATABASE_URL=pg_admin_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, out.decode()
    assert "1 passed" in out.decode()
