"""The benchmark's own databases: one template per side (migrated by that side), a fresh
clone for every measurement, all dropped at the end of the run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench import procs, profiles
from graphile_worker_cli import db, migrate
from tests.helpers import reference

DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT = 10.0
STATEMENT_TIMEOUT = 300.0  # a bound on every statement the harness itself runs
MIGRATE_TIMEOUT = 180.0


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT, command_timeout=STATEMENT_TIMEOUT)


def admin_url() -> str:
    return os.environ.get("GW_BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


class Databases:
    """Creates databases named ``gwbench_<run>_<n>`` and drops every one of them on close."""

    def __init__(self, admin: str) -> None:
        self.admin = admin
        self.run_id = uuid.uuid4().hex[:8]
        self._created: list[str] = []
        self._templates: dict[str, str] = {}

    async def _execute(self, sql: str) -> None:
        conn = await connect(self.admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self, label: str, template: str | None = None) -> str:
        name = f"gwbench_{self.run_id}_{len(self._created)}_{label}"
        clause = f" TEMPLATE {db.escape_identifier(template)}" if template else ""
        await self._execute(f"CREATE DATABASE {db.escape_identifier(name)}{clause}")
        self._created.append(name)
        return with_database(self.admin, name)

    async def template(self, side: str) -> str:
        """The name of a database migrated by ``side`` ("gw" or "reference"), made once."""
        if side not in self._templates:
            url = await self.create(f"tpl_{side}")
            if side == "reference":
                await migrate_with_reference(url)
            else:
                await migrate_with_gw(url)
            await _add_bench_tables(url)
            self._templates[side] = urlsplit(url).path.lstrip("/")
        return self._templates[side]

    @contextlib.asynccontextmanager
    async def fresh(self, side: str, label: str) -> AsyncIterator[str]:
        """A new database cloned from ``side``'s migrated template, dropped after use."""
        url = await self.create(f"{side}_{label}", template=await self.template(side))
        try:
            yield url
        finally:
            await self.drop(url)

    async def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        await self._execute(f"DROP DATABASE IF EXISTS {db.escape_identifier(name)} WITH (FORCE)")
        if name in self._created:
            self._created.remove(name)

    async def close(self) -> None:
        for name in reversed(list(self._created)):
            await self.drop(with_database(self.admin, name))
        self._templates.clear()


async def migrate_with_reference(url: str) -> None:
    result = await procs.run(
        reference.reference_command("-c", url, "--schema-only"),
        env=reference.reference_env(profiles.SCHEMA),
        timeout=MIGRATE_TIMEOUT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the reference could not migrate the database: {result.tail()}")


async def migrate_with_gw(url: str) -> None:
    conn = await connect(url)
    try:
        await asyncio.wait_for(migrate.migrate(conn, profiles.SCHEMA), MIGRATE_TIMEOUT)
    finally:
        await conn.close()


async def _add_bench_tables(url: str) -> None:
    conn = await connect(url)
    try:
        await conn.execute(
            "create table public.bench_latency ("
            " job_id bigint primary key, started_at timestamptz not null);"
            "create table public.bench_enqueued ("
            " job_id bigint primary key, enqueued_at timestamptz not null);"
        )
    finally:
        await conn.close()
